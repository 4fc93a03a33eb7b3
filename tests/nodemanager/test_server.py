"""The daemon over real loopback sockets, with an in-memory program runner."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import msgpack
import pytest
import trio

from nodemanager import ServerConfig, errors
from nodemanager.proto import messages as m
from nodemanager.proto.client import NodeClient, open_node_client
from nodemanager.proto.wire import (
    MAX_FRAME_BYTES,
    REQUEST_DOMAIN,
    Envelope,
    frame,
    open_response,
    request_body,
    seal_request,
)
from sandbox import DEFAULT_OFFCUT, total
from seattlecore import KeyPair
from tests.support.nodes import Node
from tests.support.polling import eventually
from tests.support.worlds import SMALL


async def test_public_calls_unsigned(node: Node) -> None:
    async with node.client(None, node_key=None) as nm:
        info = await nm.get_vessels()
        assert info.node == node.server.node
        assert [v.name for v in info.vessels] == ["v1", "v2"]
        v1 = info.vessels[0]
        assert (v1.owner, v1.users, v1.status, v1.advertise) == (
            node.owner.public, (node.user.public,), "Fresh", True)
        assert await nm.get_vessel_resources("v1") == SMALL
        assert await nm.get_offcut_resources() == DEFAULT_OFFCUT
        status = await nm.get_node_status()
        assert (status.vessels, status.running, status.protocol) == (2, 0, 1)
        assert status.uptime >= 0
        with pytest.raises(errors.ClientError):
            await nm.stop_vessel("v1")


async def test_client_learns_node_key_then_signs(node: Node) -> None:
    async with node.client(node.user, node_key=None) as nm:
        assert await nm.list_files("v1") == []
        assert nm.node_key == node.server.node


async def test_a_signed_getvessels_without_the_node_key_is_one_call(node: Node) -> None:
    """The unsigned GetVessels that learns the node's key answers a GetVessels asked for
    (a public call: the same answer signed or not); any other call is signed after it."""
    async with node.client(node.user, node_key=None) as nm:
        info = await nm.get_vessels()
        assert (nm.statistics().calls, nm.node_key) == (1, node.server.node)
        assert [v.name for v in info.vessels] == ["v1", "v2"]
        assert [v.name for v in (await nm.get_vessels()).vessels] == ["v1", "v2"]
        assert nm.statistics().calls == 2
    async with node.client(node.user, node_key=None) as nm:
        assert await nm.list_files("v1") == []
        assert nm.statistics().calls == 2  # the key, then the signed ListFilesInVessel
        with pytest.raises(errors.VesselNotRunning):  # signed by the user, who may stop it
            await nm.stop_vessel("v1")


async def test_file_operations(node: Node) -> None:
    async with node.client(node.user) as nm:
        await nm.add_file("v1", "a.txt", b"one")
        await nm.add_file("v1", "a.txt", b"two")
        await nm.add_file("v1", "b.txt", b"")
        assert await nm.list_files("v1") == ["a.txt", "b.txt"]
        assert await nm.retrieve_file("v1", "a.txt") == b"two"
        await nm.delete_file("v1", "a.txt")
        assert await nm.list_files("v1") == ["b.txt"]
        with pytest.raises(errors.FileNotFound):
            await nm.retrieve_file("v1", "a.txt")
        with pytest.raises(errors.FileNotFound):
            await nm.delete_file("v1", "a.txt")
        assert await nm.list_files("v2") == []
    (node.directory / "vessels" / "v1" / "private_layer").write_bytes(b"x")
    async with node.client(node.user) as nm:
        assert await nm.list_files("v1") == ["b.txt"]


async def test_file_size_and_quota_limits(node: Node) -> None:
    quota = int(SMALL["diskused"])
    async with node.client(node.owner) as nm:
        await nm.add_file("v1", "big", b"x" * (quota - 4096))
        with pytest.raises(errors.DiskQuotaExceeded):
            await nm.add_file("v1", "more", b"y")
        await nm.add_file("v1", "big", b"z" * 10)  # replacing frees the old size
        await nm.add_file("v1", "more", b"y")
        with pytest.raises(errors.BadArguments):  # refused locally
            await nm.add_file("v1", "x", b"x" * (m.MAX_FILE_BYTES + 1))
        with pytest.raises(errors.BadArguments):
            await nm.add_file("v1", "Bad/Name", b"x")
        # and by the node, for a client that skips the local checks
        body = msgpack.packb({
            "v": 1, "op": "AddFileToVessel", "node": node.server.node.raw,
            "requester": node.owner.public.raw, "nonce": (n := os.urandom(16)),
            "ts": time.time(),
            "args": {"vessel": "v1", "filename": "big2", "data": b"x" * (m.MAX_FILE_BYTES + 1)},
        })
        envelope = Envelope(body=body, signature=node.owner.sign(REQUEST_DOMAIN, body))
        await _expect(nm, envelope.to_payload(), n, "BadArguments")


async def test_program_lifecycle(node: Node) -> None:
    async with node.client(node.user) as nm:
        with pytest.raises(errors.FileNotFound):
            await nm.start_vessel("v1", "prog.py")
        await nm.add_file("v1", "prog.py", b"log('hi')\n")
        assert await nm.start_vessel("v1", "prog.py", ["x"]) == "Started"
        with pytest.raises(errors.VesselBusy):
            await nm.start_vessel("v1", "prog.py")
        assert b"running prog.py x" in await nm.read_log("v1")
        assert (await nm.get_node_status()).running == 1
        assert await nm.stop_vessel("v1") == "Stopped"
        with pytest.raises(errors.VesselNotRunning):
            await nm.stop_vessel("v1")
        assert await nm.start_vessel("v1", "prog.py") == "Started"
        node.runner.finish("v1", code=0, reason="exited normally")
        await trio.testing.wait_all_tasks_blocked()
        (v1, _) = (await nm.get_vessels()).vessels
        assert (v1.status, v1.exit_code) == ("Terminated", 0)
        assert node.server.state.vessels["v1"].status == "Terminated"
        assert await nm.reset_vessel("v1") == "Fresh"
        assert await nm.list_files("v1") == []
        assert (await nm.get_vessels()).vessels[0].status == "Fresh"


async def test_owner_calls_and_advertising(node: Node) -> None:
    server = node.server
    generation = server.advert_generation
    assert ("v1", node.user.public) in server.advert_entries()
    async with node.client(node.owner) as nm:
        await nm.change_owner_info("v1", "lab box")
        await nm.change_advertise("v2", False)
        assert await server.wait_advert_changed(generation) > generation
        assert all(name != "v2" for name, _ in server.advert_entries())
        await nm.change_users("v1", [node.stranger.public])
        info = (await nm.get_vessels()).vessels[0]
        assert (info.owner_info, info.users) == ("lab box", (node.stranger.public,))
        await nm.change_owner("v1", node.user.public)
        info = (await nm.get_vessels()).vessels[0]
        assert (info.owner, info.owner_info) == (node.user.public, "")
        with pytest.raises(errors.Forbidden):
            await nm.change_advertise("v1", True)
    async with node.client(node.stranger) as nm:
        await nm.list_files("v1")
        with pytest.raises(errors.Forbidden):
            await nm.list_files("v2")


async def test_split_and_join_over_the_wire(node: Node) -> None:
    async with node.client(node.owner) as nm:
        await nm.add_file("v1", "gone.txt", b"x")
        wanted = "resource cpu 0.05\nresource memory 10000000\nresource diskused 500000\n" \
                 "resource messport 63101\n"
        first, second = await nm.split_vessel("v1", wanted)
        assert (first, second) == ("v3", "v4")
        names = [v.name for v in (await nm.get_vessels()).vessels]
        assert names == ["v2", "v3", "v4"]
        assert (await nm.get_vessel_resources("v4")).messport == {63101}
        assert await nm.list_files("v3") == []
        assert not (node.directory / "vessels" / "v1").exists()
        with pytest.raises(errors.NoSuchVessel):
            await nm.list_files("v1")
        joined = await nm.join_vessels("v3", "v4")
        assert joined == "v5"
        assert await nm.get_vessel_resources("v5") == SMALL
        tables = [await nm.get_vessel_resources(n) for n in ("v2", "v5")]
        state = node.server.state
        assert total(tables) + total([DEFAULT_OFFCUT] * state.offcuts_held) == total(
            [SMALL, SMALL, DEFAULT_OFFCUT, DEFAULT_OFFCUT])
        async with node.client(node.user) as user:
            with pytest.raises(errors.Forbidden):
                await user.split_vessel("v2", wanted)


def _raw(node: Node, request: m.Request, *, identity: KeyPair | None, ts: float | None = None,
         node_key: KeyPair | None = None, nonce: bytes | None = None) -> tuple[bytes, bytes]:
    nonce = nonce or os.urandom(16)
    target = node.server.node if node_key is None else node_key.public
    payload = seal_request(request, identity=identity, node=target, nonce=nonce,
                           timestamp=time.time() if ts is None else ts)
    return payload, nonce


async def _expect(nm: NodeClient, payload: bytes, nonce: bytes | None,
                  code: str) -> None:
    response = open_response(await nm.exchange(payload), node=nm.node_key, nonce=nonce or b"")
    assert (response.ok, response.code) == (False, code), response.message


async def test_every_rejection_is_an_error_response(node: Node) -> None:
    stop = m.StopVessel(vessel="v1")
    async with node.client(node.user) as nm:
        payload, nonce = _raw(node, m.ListFilesInVessel(vessel="v1"), identity=node.user)
        assert open_response(await nm.exchange(payload), node=nm.node_key, nonce=nonce).ok
        await _expect(nm, payload, nonce, "ReplayedNonce")
        body = request_body(stop, node=node.server.node, requester=node.user.public,
                            nonce=(n := os.urandom(16)), timestamp=time.time())
        forged = Envelope(body=body, signature=node.stranger.sign(REQUEST_DOMAIN, body))
        await _expect(nm, forged.to_payload(), n, "BadSignature")
        p, n = _raw(node, stop, identity=node.user, node_key=KeyPair.generate())
        await _expect(nm, p, n, "WrongNode")
        p, n = _raw(node, stop, identity=node.user, ts=time.time() - 3600)
        await _expect(nm, p, n, "OutsideTimeWindow")
        p, n = _raw(node, stop, identity=None)
        await _expect(nm, p, n, "SignatureRequired")
        p, n = _raw(node, stop, identity=node.stranger)
        await _expect(nm, p, n, "Forbidden")
        body = request_body(stop, node=node.server.node, requester=node.user.public,
                            nonce=(n := os.urandom(16)), timestamp=time.time())
        doc = msgpack.unpackb(body)
        doc["op"] = "StopVesseX"
        body = msgpack.packb(doc, use_bin_type=True)
        bad = Envelope(body=body, signature=node.user.sign(REQUEST_DOMAIN, body))
        await _expect(nm, bad.to_payload(), n, "UnknownOperation")
        body = request_body(m.ChangeAdvertise(vessel="v1", advertise=True),
                            node=node.server.node, requester=node.owner.public,
                            nonce=(n := os.urandom(16)), timestamp=time.time())
        doc = msgpack.unpackb(body)
        doc["args"]["advertise"] = 1  # an int where a bool belongs
        body = msgpack.packb(doc, use_bin_type=True)
        bad = Envelope(body=body, signature=node.owner.sign(REQUEST_DOMAIN, body))
        await _expect(nm, bad.to_payload(), n, "BadArguments")
        await _expect(nm, b"\x93garbage", None, "BadFrame")
        # the connection survives all of that
        assert await nm.list_files("v1") == []


async def test_replay_refused_after_restart_of_state(node: Node) -> None:
    async with node.client(node.owner) as nm:
        payload, nonce = _raw(node, m.ChangeOwnerInformation(vessel="v1", info="a"),
                              identity=node.owner)
        assert open_response(await nm.exchange(payload), node=nm.node_key, nonce=nonce).ok
    state = node.server.state
    state.close()
    from nodemanager.node.state import NodeState
    node.server.state = NodeState(state.path)
    async with node.client(node.owner) as nm:
        await _expect(nm, payload, nonce, "ReplayedNonce")


async def test_oversized_frame_is_refused_before_reading(node: Node) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        await stream.send_all((MAX_FRAME_BYTES + 1).to_bytes(4, "big") + b"x" * 100)
        nm = NodeClient(stream, node_key=node.server.node)
        reply = await nm._receive_frame()
        response = open_response(reply, node=node.server.node, nonce=b"")
        assert response.code == "FrameTooLarge"
        assert await stream.receive_some(10) == b""  # then the node hangs up


SHORT_TIMEOUTS = ServerConfig(idle_timeout=0.5, frame_timeout=0.3, send_timeout=1.0)
"""For the test of timeouts only: with 0.3 s per frame, an 8 MB upload on a loaded machine fails."""


@pytest.mark.parametrize("server_config", [SHORT_TIMEOUTS], ids=["short-timeouts"])
async def test_idle_and_slow_clients_are_dropped(node: Node) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        with trio.fail_after(3):
            assert await stream.receive_some(10) == b""  # idle timeout
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        await stream.send_all(frame(b"x" * 100)[:20])  # a frame that never completes
        with trio.fail_after(3):
            assert await stream.receive_some(10) == b""


async def test_many_requests_on_one_connection_and_concurrent_clients(node: Node) -> None:
    async def worker() -> None:
        async with node.client(node.user) as nm:
            for _ in range(20):
                assert await nm.get_vessel_resources("v1") == SMALL
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(worker)


async def test_client_times_out_against_a_silent_node(nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: list[trio.abc.Stream] = []

    async def silent(stream: trio.abc.Stream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    await nursery.start(trio.serve_listeners, silent, listeners)
    port = listeners[0].socket.getsockname()[1]
    async with open_node_client("127.0.0.1", port, identity=KeyPair.generate(),
                                node_key=KeyPair.generate().public, timeout=0.3) as nm:
        with pytest.raises(errors.ConnectionFailed):
            await nm.list_files("v1")
        assert nm.broken
        with pytest.raises(errors.ConnectionFailed):
            await nm.get_vessels()


async def test_a_cancelled_call_retires_its_connection(nursery: trio.Nursery) -> None:
    """A call cancelled before its answer (Ctrl-C in seash) leaves that answer in flight: the
    next call must not read it as its own, so the connection is retired (issue 25)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def silent(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    await nursery.start(trio.serve_listeners, silent, listeners)
    port = listeners[0].socket.getsockname()[1]
    async with open_node_client("127.0.0.1", port, identity=KeyPair.generate(),
                                node_key=KeyPair.generate().public, timeout=30) as nm:
        with trio.move_on_after(0.2) as scope:
            await nm.list_files("v1")
        assert scope.cancelled_caught and nm.broken
        with pytest.raises(errors.ConnectionFailed, match="unusable"):
            await nm.get_vessels()


async def test_client_reports_refused_connection() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with pytest.raises(errors.ConnectionFailed):
        async with open_node_client("127.0.0.1", port):
            pass


async def test_response_from_an_impostor_is_rejected(node: Node) -> None:
    async with node.client(node.user, node_key=KeyPair.generate().public) as nm:
        with pytest.raises(errors.BadResponse):
            await nm.list_files("v1")  # the node answers WrongNode, signed by the real key


async def test_a_slow_start_holds_up_its_own_vessel_only(node: Node) -> None:
    """A program that takes long to get ready blocks requests on its vessel, not the node."""
    node.runner.gates["v1"] = trio.Event()
    async with (node.client(node.user) as a, node.client(node.user) as b,
                node.client(node.owner) as c, node.client(node.owner) as d):
        for vessel in ("v1", "v2"):
            await a.add_file(vessel, "p.py", b"pass\n")
        order: list[str] = []
        async with trio.open_nursery() as nursery:

            async def start_v1() -> None:
                await a.start_vessel("v1", "p.py")
                order.append("v1 started")

            async def stop_v1() -> None:
                await d.stop_vessel("v1")
                order.append("v1 stopped")

            nursery.start_soon(start_v1)
            await wait_for(lambda: "v1" in node.runner.waiting)
            nursery.start_soon(stop_v1)
            with trio.fail_after(5):  # under one node-wide lock these would wait for v1
                assert await b.start_vessel("v2", "p.py") == "Started"
                await c.change_owner_info("v2", "busy elsewhere")
                await b.add_file("v2", "q.py", b"pass\n")
            assert order == [] and [v for v, *_ in node.runner.started] == ["v2"]
            node.runner.gates["v1"].set()
        assert order == ["v1 started", "v1 stopped"]  # the stop waited for the start it follows
        assert node.runner.report("v1").status == "Stopped"


async def wait_for(condition: Callable[[], bool]) -> None:
    await eventually(condition, timeout=5, interval=0.01)
