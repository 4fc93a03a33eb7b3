"""The dial-back service and the prober on loopback, against attackers written for the test.

The attacker speaks the dial-back lines with raw sockets (docs/protocol.md section 13), binds
any 127.x.y.z source address, and counts who gets dialled.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import msgpack
import pytest
import trio

from nodemanager.nat.autonat import DialBudget, DialRequest, Kind, ServerLimits
from nodemanager.nat.dialback import DialBackServer
from nodemanager.nat.observe import serve_observer
from nodemanager.nat.prober import ProbeConfig, Prober
from nodemanager.nat.reachability import Reach, ReachabilityBoard
from tests.support import attacker
from tests.support.net import closed_port
from tests.support.nodes import Node
from tests.support.polling import eventually

FAST = ProbeConfig(interval=0.5, retry=0.1, timeout=3.0, tcp_grace=0.3, udp_grace=0.3)


async def start_service(nursery: trio.Nursery, host: str = "127.0.0.1",
                        limits: ServerLimits | None = None, **kw: float) -> tuple[int, DialBackServer]:
    service = DialBackServer(DialBudget(limits or ServerLimits()), host=host, **kw)  # type: ignore[arg-type]
    port = await nursery.start(serve_observer, host, 0, service.handle)
    return port, service


class Listener:
    """A TCP listener that records every connection's first bytes."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(1):
                while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
            self.seen.append(data)


async def listen_pair(nursery: trio.Nursery, hosts: tuple[str, str]) -> tuple[int, list[Listener]]:
    """Two listeners on the same port number at two addresses."""
    for _ in range(20):
        first = trio.socket.socket()
        await first.bind((hosts[0], 0))
        port = first.getsockname()[1]
        second = trio.socket.socket()
        try:
            await second.bind((hosts[1], port))
        except OSError:
            first.close()
            second.close()
            continue
        listeners = []
        for sock in (first, second):
            sock.listen(16)
            recorder = Listener()
            nursery.start_soon(trio.serve_listeners, recorder.handle, [trio.SocketListener(sock)])
            listeners.append(recorder)
        return port, listeners
    raise AssertionError("no common free port")


async def ask_raw(service_port: int, line: bytes, source: str | None = None,
                  host: str = "127.0.0.1") -> bytes:
    """Connect (from ``source``), read the observation, send ``line``, return the answer."""
    stream = await trio.open_tcp_stream(host, service_port, local_address=source)
    async with stream:
        data = b""
        with trio.fail_after(10):
            while data.count(b"\n") < 1:
                data += await stream.receive_some(200)
            await stream.send_all(line)
            while data.count(b"\n") < 2:
                chunk = await stream.receive_some(200)
                if not chunk:
                    break
                data += chunk
    return data.split(b"\n", 1)[1]


def tcp_line(port: int, nonce: bytes | None = None) -> bytes:
    return DialRequest(Kind.TCP, port, nonce or os.urandom(16)).line()


async def test_server_dials_only_the_requesters_own_address(nursery: trio.Nursery) -> None:
    service_port, _ = await start_service(nursery)
    port, (own, victim) = await listen_pair(nursery, ("127.4.0.7", "127.4.0.8"))
    nonce = os.urandom(16)
    answer = await ask_raw(service_port, tcp_line(port, nonce), source="127.4.0.7")
    assert answer == b"seattle-dialback 1 dialed\n"
    assert len(own.seen) == 1 and nonce in own.seen[0] and b"DialBack" in own.seen[0]
    # a request naming another address is not even a request
    for bad in (b"seattle-dialback 1 tcp 127.4.0.8:%d %s\n" % (port, nonce.hex().encode()),
                b"seattle-dialback 1 tcp %d %s 127.4.0.8\n" % (port, nonce.hex().encode())):
        assert await ask_raw(service_port, bad, source="127.4.0.7") == b"seattle-dialback 1 refused bad\n"
    await trio.sleep(0.2)
    assert victim.seen == [] and len(own.seen) == 1


async def test_one_source_gets_at_most_its_share(nursery: trio.Nursery) -> None:
    service_port, service = await start_service(nursery)
    port, (own, _) = await listen_pair(nursery, ("127.4.1.7", "127.4.1.8"))
    answers = [await ask_raw(service_port, tcp_line(port), source="127.4.1.7") for _ in range(20)]
    assert answers.count(b"seattle-dialback 1 dialed\n") == 12
    assert answers[12:] == [b"seattle-dialback 1 refused rate\n"] * 8
    assert len(own.seen) == 12
    # another source still gets its dial-back, and plain observations are still served
    port2, (other, _) = await listen_pair(nursery, ("127.4.2.7", "127.4.2.8"))
    assert await ask_raw(service_port, tcp_line(port2), source="127.4.2.7") == b"seattle-dialback 1 dialed\n"
    assert len(other.seen) == 1 and service.budget.refused == 8


async def test_a_crowd_of_sources_is_held_to_the_total(nursery: trio.Nursery) -> None:
    service_port, service = await start_service(nursery, limits=ServerLimits(total=0.6, burst=60))
    answers: list[bytes] = []

    async def one(source: str) -> None:
        with socket.socket() as closed:  # a port nobody listens on: refused at once
            closed.bind((source, 0))
            dead = closed.getsockname()[1]
        answers.append(await ask_raw(service_port, tcp_line(dead), source=source))

    async with trio.open_nursery() as crowd:
        for source in attacker.sources(100, first_octet=60):
            crowd.start_soon(one, source)
    assert len(answers) == 100
    assert service.budget.dialed == 60  # the burst (refilled at 0.6 a minute)
    assert sum(a.startswith(b"seattle-dialback 1 refused") for a in answers) == 40
    assert service.connections == 0


@pytest.mark.parametrize("garbage", [
    b"\x00" * 500, b"seattle-dialback 1 tcp 80 " + b"0" * 200, b"GET / HTTP/1.1\r\n\r\n",
    b"\xff\xfe\n", b"seattle-dialback 1 udp 1 " + b"zz" * 16 + b"\n",
])
async def test_garbage_is_refused_and_the_service_lives(nursery: trio.Nursery, garbage: bytes) -> None:
    service_port, service = await start_service(nursery)
    answer = await ask_raw(service_port, garbage)
    assert answer in (b"seattle-dialback 1 refused bad\n", b"")
    assert service.budget.dialed == 0
    port, (_own, _) = await listen_pair(nursery, ("127.4.3.7", "127.4.3.8"))
    assert await ask_raw(service_port, tcp_line(port), source="127.4.3.7") == b"seattle-dialback 1 dialed\n"


async def test_silent_clients_cannot_hold_the_service(nursery: trio.Nursery) -> None:
    limits = ServerLimits(connections=8)
    service_port, service = await start_service(nursery, limits=limits, read_timeout=0.5)
    silent = [await trio.open_tcp_stream("127.0.0.1", service_port) for _ in range(50)]
    await eventually(lambda: service.connections >= 8, timeout=5, interval=0.01)
    assert service.connections == 8  # the rest got the observation and were closed
    await eventually(lambda: not service.connections, timeout=5, interval=0.05)  # the readers time out
    for stream in silent:
        await stream.aclose()
    port, (_own, _) = await listen_pair(nursery, ("127.4.4.7", "127.4.4.8"))
    assert await ask_raw(service_port, tcp_line(port), source="127.4.4.7") == b"seattle-dialback 1 dialed\n"


# -- the node manager's port -------------------------------------------------------------

def dial_back_frame(args: dict[str, object]) -> bytes:
    return attacker.frame(attacker.pack(attacker.body("DialBack", args)))


async def test_port_accepts_dial_back_tokens_as_public_requests(node: Node) -> None:
    stream = await attacker.connect(node.port)
    async with stream:
        token = os.urandom(16)
        arrived = node.dial_backs.expect(Kind.TCP, token)
        ok = await attacker.ask(stream, dial_back_frame({"token": token}))
        assert ok["ok"] and arrived.is_set()
        again = node.dial_backs.expect(Kind.TCP, token)
        for bad in ({"token": b"x" * 15}, {"token": "0" * 32}, {}, {"token": token, "extra": 1}):
            answer = await attacker.ask(stream, dial_back_frame(bad))
            assert attacker.error_code(answer) == "BadArguments"
    assert not again.is_set()
    assert node.server.admission.statistics().trusted == 0  # earns no trust


# -- the prober --------------------------------------------------------------------------

def fixed(servers: list[tuple[str, int]]) -> Callable[[], Awaitable[list[tuple[str, int]]]]:
    async def candidates() -> list[tuple[str, int]]:
        return servers
    return candidates


async def run_prober(prober: Prober, done: Callable[[], bool], rounds: int = 6) -> None:
    for _ in range(rounds):
        if done():
            return
        await prober.round()


async def test_closed_ports_decide_private(nursery: trio.Nursery) -> None:
    started = [await start_service(nursery) for _ in range(2)]
    servers = [("127.0.0.1", port) for port, _ in started]
    services = [service for _, service in started]
    board = ReachabilityBoard()
    prober = Prober(board, ports={Kind.TCP: closed_port(), Kind.UDP: closed_port()},
                    candidates=fixed(servers), local="127.0.0.1", config=FAST)
    await prober.round()  # two servers, two failures per port: decided in one round
    assert (board.state.tcp, board.state.udp) == (Reach.PRIVATE, Reach.PRIVATE)
    assert board.state.observed is None  # both observers are one host: one vote, not two
    assert "tcp 0 of 2" in board.state.reason
    await prober.round()  # waiting only for the address: observations, no dial-backs
    assert prober.rounds == 2 and "tcp 0 of 2" in board.state.reason
    assert sum(service.budget.dialed for service in services) == 4


async def test_open_port_decides_public(node: Node, nursery: trio.Nursery) -> None:
    servers = [("127.0.0.1", (await start_service(nursery, host=h))[0]) for h in ("127.0.0.1",) * 2]
    board = ReachabilityBoard()
    prober = Prober(board, ports={Kind.TCP: node.port}, candidates=fixed(servers),
                    local="127.0.0.1", config=FAST, inbox=node.dial_backs)
    await run_prober(prober, lambda: board.state.tcp is not Reach.UNKNOWN)
    assert board.state.tcp is Reach.PUBLIC
    assert prober.rounds <= 2


async def test_lying_servers_can_only_make_us_private(node: Node, nursery: trio.Nursery) -> None:
    """Liars answer 'dialed' without dialling, or echo our nonce back on the request
    connection itself: the node believes only nonces that reached its own port."""

    async def liar(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"seattle-observed 1 127.0.0.1 1\n")
            line = await stream.receive_some(100)
            nonce = line.split()[-1]
            await stream.send_all(b"seattle-dialback 1 dialed " + nonce + b"\n")

    lies = []
    for _ in range(2):
        listeners = await nursery.start(partial(trio.serve_tcp, liar, 0, host="127.0.0.1"))
        lies.append(("127.0.0.1", listeners[0].socket.getsockname()[1]))
    board = ReachabilityBoard()
    prober = Prober(board, ports={Kind.TCP: node.port}, candidates=fixed(lies),
                    local="127.0.0.1", config=FAST, inbox=node.dial_backs)
    await run_prober(prober, lambda: board.state.tcp is not Reach.UNKNOWN)
    assert board.state.tcp is Reach.PRIVATE
    # a forged token on the port (not one of ours, or one of another kind) counts for nothing
    prober.inbox.token_seen(Kind.TCP, os.urandom(16))
    prober.inbox.token_seen(Kind.UDP, os.urandom(16))
    assert board.state.tcp is Reach.PRIVATE


async def test_periodic_probes_follow_a_port_that_opens(nursery: trio.Nursery) -> None:
    """Re-probing: private while nothing listens; public once a port forward appears."""
    servers = [("127.0.0.1", (await start_service(nursery))[0]) for _ in range(2)]
    port = closed_port()
    board = ReachabilityBoard()
    prober = Prober(board, ports={Kind.TCP: port}, candidates=fixed(servers), local="127.0.0.1",
                    config=FAST)
    nursery.start_soon(prober.run)
    with trio.fail_after(20):
        while board.state.tcp is not Reach.PRIVATE:
            await board.wait_changed(board.generation)

    async def forwarded(stream: trio.SocketStream) -> None:
        """The test's stand-in for the port: hands the DialBack token to the prober."""
        async with stream:
            data = await attacker.read_frame(stream)
            request = msgpack.unpackb(msgpack.unpackb(data, raw=False)[0], raw=False)
            prober.inbox.sink(Kind.TCP)(request["args"]["token"])

    await nursery.start(partial(trio.serve_tcp, forwarded, port, host="127.0.0.1"))
    with trio.fail_after(20):
        while board.state.tcp is not Reach.PUBLIC:
            await board.wait_changed(board.generation)
    assert prober.rounds >= 3


async def test_first_agreeing_answers_decide_and_refusers_are_replaced(
        node: Node, nursery: trio.Nursery) -> None:
    """A round ends once two answers per port agree, without waiting for a peer that says
    nothing (its probe would take ``timeout``); a peer that refuses (busy) is replaced by a
    stand-in within the same round."""

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"seattle-observed 1 127.0.0.1 1\n")
            await trio.sleep_forever()

    async def refuser(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"seattle-observed 1 127.0.0.1 1\n")
            await stream.receive_some(100)
            await stream.send_all(b"seattle-dialback 1 refused busy\n")

    odd = []
    for handler in (refuser, silent):
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        odd.append(("127.0.0.1", listeners[0].socket.getsockname()[1]))
    honest = [("127.0.0.1", (await start_service(nursery))[0]) for _ in range(2)]
    board = ReachabilityBoard()
    config = ProbeConfig(interval=0.5, retry=0.1, timeout=3600.0, tcp_grace=0.3, per_round=3)
    prober = Prober(board, ports={Kind.TCP: node.port}, candidates=fixed([*odd, honest[0], honest[1]]),
                    local="127.0.0.1", config=config, inbox=node.dial_backs, seed=1)
    with trio.move_on_after(60) as scope:  # not a timing: without early ends it waits an hour
        await prober.round()
    assert not scope.cancelled_caught
    assert board.state.tcp is Reach.PUBLIC and prober.rounds == 1
    assert prober.confidence[Kind.TCP].tally == (2, 0)  # the refuser counted for nothing
