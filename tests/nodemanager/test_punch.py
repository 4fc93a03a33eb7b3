"""The hole-punch handshake: its sequencing under fake time, and hostile peers on loopback.

The real simultaneous opens happen in the lab (test_punch_lab.py): on loopback a SYN to a
port with no connecting socket is answered by a reset at once, so two local sockets can
never cross SYNs. Here the network half (observation, the simultaneous open) is replaced
in the fake-time tests, and the hostile tests check what a node dials, with real sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from nodemanager.nat import punch
from nodemanager.nat import punchcore as pc
from nodemanager.nat.observe import format_observation, serve_observer
from nodemanager.nat.punch import Outcome, PunchBroken, PunchConfig, Responder
from nodemanager.proto.wire import pack, unpack
from tests.support.polling import eventually

PEER = "198.18.1.1"
NODE = "198.18.11.1"
CONFIG = PunchConfig(observers=(("198.18.10.1", 4000), ("198.18.14.1", 4000)))


def fake_network(monkeypatch: pytest.MonkeyPatch, results: dict[str, list[bool]],
                 delays: list[float] | None = None,
                 mappings: dict[str, pc.Mapping] | None = None) -> None:
    """Observation and simultaneous opens answer from scripts, one per side (by port)."""
    sides = {1: "initiator", 2: "responder"}
    calls = {"n": 0}

    async def observe(config: PunchConfig) -> tuple[int, pc.Mapping]:
        calls["n"] += 1
        side = sides[calls["n"]]
        addr = (PEER if side == "initiator" else NODE, 40000)
        return calls["n"], (mappings or {}).get(side, pc.Mapping(addr, ""))

    async def try_direct(config: PunchConfig, attempt: punch.Attempt, expect_ip: Any) -> Any:
        assert attempt.role == "simultaneous"
        if attempt.port == 1 and delays is not None:
            delays.append(attempt.delay)
        await trio.sleep(attempt.delay + 0.01)
        ok = results[sides[attempt.port]].pop(0)
        return trio.testing.memory_stream_pair()[0] if ok else None

    monkeypatch.setattr(punch, "observe_mapping", observe)
    monkeypatch.setattr(punch, "try_direct", try_direct)


async def pair(initiator: Callable[[Any], Awaitable[Outcome]],
               responder: Callable[[Any], Awaitable[Outcome]],
               latency: float = 0.04) -> tuple[Outcome, Outcome]:
    """Both roles over a relayed link that delays every chunk by ``latency`` (fake time)."""
    ours, link_a = trio.testing.memory_stream_pair()
    link_b, theirs = trio.testing.memory_stream_pair()
    out: dict[str, Outcome] = {}

    async def delayed(src: Any, dst: Any) -> None:
        """Each chunk arrives latency/2 after it was sent (pipelined, in order)."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](100)

        async def deliver() -> None:
            async for deadline, data in receive:
                await trio.sleep_until(deadline)
                await dst.send_all(data)

        async with trio.open_nursery() as inner:
            inner.start_soon(deliver)
            while data := await src.receive_some():
                await send.send((trio.current_time() + latency / 2, data))

    async def run(name: str, role: Callable[[Any], Awaitable[Outcome]], stream: Any) -> None:
        out[name] = await role(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(delayed, link_a, link_b)
        nursery.start_soon(delayed, link_b, link_a)
        async with trio.open_nursery() as roles:
            roles.start_soon(run, "i", initiator, ours)
            roles.start_soon(run, "r", responder, theirs)
        nursery.cancel_scope.cancel()
    return out["i"], out["r"]


async def respond_after_magic(stream: Any, responder: Responder | None = None) -> Outcome:
    assert await punch.read_exact(stream, 4) == pc.MAGIC
    return await (responder or Responder(config=CONFIG)).respond(stream, PEER)


async def test_third_attempt_succeeds_after_rtt_half_wait(monkeypatch: pytest.MonkeyPatch,
                                                          autojump_clock: Any) -> None:
    delays: list[float] = []
    fake_network(monkeypatch, {"initiator": [False, True, True], "responder": [True, False, True]},
                 delays)
    ours, theirs = await pair(lambda s: punch.initiate(s, CONFIG, NODE), respond_after_magic)
    assert ours.path == theirs.path == "punched"
    assert ours.attempts == theirs.attempts == 3  # one-sided successes do not count
    assert ours.rtt == pytest.approx(0.04)  # the relay's round trip
    assert delays == [pytest.approx(0.02)] * 3  # RTT/2 after sync, each attempt


async def test_failure_keeps_the_relay_for_the_protocol(monkeypatch: pytest.MonkeyPatch,
                                                         autojump_clock: Any) -> None:
    fake_network(monkeypatch, {"initiator": [False] * 3, "responder": [False] * 3})

    async def initiator(stream: Any) -> Outcome:
        outcome = await punch.initiate(stream, CONFIG, NODE)
        await stream.send_all(b"\x00\x00\x00\x05frame")
        return outcome

    async def responder(stream: Any) -> Outcome:
        outcome = await respond_after_magic(stream)
        assert await punch.read_exact(stream, 9) == b"\x00\x00\x00\x05frame"  # nothing eaten
        return outcome

    start = trio.current_time()
    ours, theirs = await pair(initiator, responder)
    assert ours.direct is None and theirs.direct is None
    assert ours.attempts == 3 and "after 3 attempt(s)" in ours.reason
    assert trio.current_time() - start < 1.0  # bounded: 3 short attempts, no timeouts


@pytest.mark.parametrize("side", ["initiator", "responder"])
async def test_symmetric_nat_is_said_and_not_punched(monkeypatch: pytest.MonkeyPatch,
                                                     autojump_clock: Any, side: str) -> None:
    why = "symmetric NAT: local port 40000 seen as ports 5, 6 by different observers"
    fake_network(monkeypatch, {"initiator": [], "responder": []},
                 mappings={side: pc.Mapping(None, why)})
    ours, _ = await pair(lambda s: punch.initiate(s, CONFIG, NODE), respond_after_magic)
    assert ours.direct is None and ours.attempts == 1 and "symmetric NAT" in ours.reason
    assert ours.reason.startswith("we cannot" if side == "initiator" else "peer cannot")


async def test_silent_peer_breaks_off_within_the_message_timeout(autojump_clock: Any) -> None:
    a, b = trio.testing.memory_stream_pair()
    start = trio.current_time()
    with pytest.raises(PunchBroken, match="no connect or stop within 5 s"):
        await Responder(config=CONFIG).respond(a, PEER)
    assert trio.current_time() - start == pytest.approx(CONFIG.message_timeout)
    del b


# ---- hostile peers, real sockets on loopback ----

class Attacker:
    """Speaks the handshake by hand over a relayed stream (not the project's initiator)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def connect(self, addrs: list[tuple[str, int]]) -> dict[str, Any]:
        body = pack({"t": "connect", "v": 1, "addrs": [list(a) for a in addrs],
                        "nonce": b"\x01" * 16, "why": ""})
        await self.raw(pc.LENGTH.pack(len(body)) + body)
        (length,) = pc.LENGTH.unpack(await punch.read_exact(self.stream, 2))
        answer: dict[str, Any] = unpack(await punch.read_exact(self.stream, length))
        return answer

    async def send(self, body: dict[str, Any]) -> None:
        data = pack(body)
        await self.raw(pc.LENGTH.pack(len(data)) + data)


async def count_connections(host: str, counter: list[int], *,
                            task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A victim: counts every TCP connection made to it."""
    async def handler(stream: trio.SocketStream) -> None:
        counter.append(1)
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host=host)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def nat_observer(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """An observer for a node "behind a NAT" on loopback: it reports the port shifted by one
    (a cone NAT that does not keep ports), so the node is not public and must dial."""
    async def answer(stream: trio.SocketStream) -> None:
        host, port = stream.socket.getpeername()[:2]
        async with stream:
            await stream.send_all(format_observation(host, port + 1))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, answer, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def test_node_never_dials_third_parties_or_low_ports() -> None:
    """A peer at 127.0.0.5 points the node at a victim at 127.0.0.9 and at port 80."""
    victim: list[int] = []
    async with trio.open_nursery() as nursery:
        victim_port = await nursery.start(count_connections, "127.0.0.9", victim)
        observer = await nursery.start(nat_observer)
        config = PunchConfig(observers=(("127.0.0.1", observer),), local_host="127.0.0.1")
        responder = Responder(config=config)
        for addrs, why in (([("127.0.0.9", victim_port)], "not the peer's address 127.0.0.5"),
                           ([("127.0.0.5", 80)], "port 80 may not be dialled")):
            a, b = trio.testing.memory_stream_pair()
            nursery.start_soon(_swallow, responder.respond(b, "127.0.0.5"))
            answer = await Attacker(a).connect(addrs)
            assert answer["addrs"] == [] and why in answer["why"]
            await Attacker(a).send({"t": "sync"})  # out of turn: the node breaks off
            await trio.sleep(0.2)

        public = Responder(config=PunchConfig(observers=(("127.0.0.1", await nursery.start(
            serve_observer, "127.0.0.1", 0)),), local_host="127.0.0.1", attempt_timeout=0.3))
        a, b = trio.testing.memory_stream_pair()  # a public node listens, it dials nobody
        nursery.start_soon(_swallow, public.respond(b, "127.0.0.5"))
        attacker = Attacker(a)
        answer = await attacker.connect([("127.0.0.9", victim_port)])
        assert answer["ready"] and answer["public"]
        await attacker.send({"t": "sync"})
        await attacker.send({"t": "result", "ok": False})
        await attacker.send({"t": "stop"})
        await eventually(lambda: public.failed != 0, timeout=2, interval=0.01)
        nursery.cancel_scope.cancel()
    assert victim == []


async def test_rate_and_concurrency_bound_what_a_peer_makes_the_node_dial() -> None:
    """Preamble after preamble aimed at the attacker's own port: at most ``burst`` dials."""
    dialled: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(count_connections, "127.0.0.5", dialled)
        observer = await nursery.start(nat_observer)
        config = PunchConfig(observers=(("127.0.0.1", observer),), local_host="127.0.0.1",
                             attempt_timeout=0.3)
        responder = Responder(config=config, limiter=pc.PunchLimiter(concurrent=4, per_minute=0.01,
                                                                     burst=3))
        answers = []
        for _ in range(6):
            a, b = trio.testing.memory_stream_pair()
            nursery.start_soon(punch.serve_relayed, b, _never_called, responder, "127.0.0.5")
            attacker = Attacker(a)
            await attacker.raw(pc.MAGIC)
            answer = await attacker.connect([("127.0.0.5", port)])
            answers.append(answer["why"])
            if answer["addrs"]:
                await attacker.send({"t": "sync"})
                await attacker.send({"t": "result", "ok": False})
        assert answers[:3] == ["", "", ""]
        assert all("over its punch rate" in why for why in answers[3:])
        await eventually(lambda: len(dialled) >= 3, timeout=5, interval=0.01)
        await trio.sleep(0.3)

        held: list[Attacker] = []  # concurrency: preambles that never go on hold a slot until they time out
        busy = Responder(config=config, limiter=pc.PunchLimiter(concurrent=2))
        for _ in range(3):
            a, b = trio.testing.memory_stream_pair()
            nursery.start_soon(_swallow, busy.respond(b, f"127.0.0.{len(held) + 20}"))
            await trio.testing.wait_all_tasks_blocked()  # in order: trio may shuffle starts
            held.append(Attacker(a))
        answer = await held[2].connect([("127.0.0.22", port)])
        assert "punches already running" in answer["why"] and answer["addrs"] == []
        nursery.cancel_scope.cancel()
    assert len(dialled) == 3
    assert responder.refused == 3


async def _swallow(coro: Awaitable[Outcome]) -> None:
    try:
        await coro
    except PunchBroken:
        pass


async def _never_called(stream: trio.abc.Stream, punched: bool) -> None:
    raise AssertionError("a broken punch must not reach the protocol handler")


@pytest.mark.parametrize("junk", [
    b"\xff\xff" + b"x" * 10,  # length above the maximum
    b"\x00\x03\xc1\xc1\xc1",  # not msgpack
    b"\x00\x05" + pack({"t": "sync"})[:5],  # a sync before any connect
])
async def test_junk_preamble_closes_the_relayed_connection_only(junk: bytes) -> None:
    a, b = trio.testing.memory_stream_pair()
    responder = Responder(config=PunchConfig())
    await a.send_all(pc.MAGIC + junk)
    with trio.fail_after(CONFIG.message_timeout + 1):
        path = await punch.serve_relayed(b, _never_called, responder, "127.0.0.5")
    assert path == "relayed"
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(10):
            await a.send_all(b"more")
            await trio.sleep(0)


async def test_too_many_attempts_break_off() -> None:
    a, b = trio.testing.memory_stream_pair()
    responder = Responder(config=PunchConfig())  # no observers: the node offers nothing
    async with trio.open_nursery() as nursery:
        result: list[BaseException] = []

        async def run() -> None:
            try:
                await responder.respond(b, "127.0.0.5")
            except PunchBroken as exc:
                result.append(exc)

        nursery.start_soon(run)
        attacker = Attacker(a)
        for _ in range(pc.MAX_ATTEMPTS):
            assert (await attacker.connect([("127.0.0.5", 5000)]))["addrs"] == []
        await attacker.send({"t": "connect", "v": 1, "addrs": [], "why": ""})
    assert "more than 3 attempts" in str(result[0])


async def test_ordinary_requests_pass_through_untouched() -> None:
    a, b = trio.testing.memory_stream_pair()
    got: list[bytes] = []

    async def handler(stream: trio.abc.Stream, punched: bool) -> None:
        assert not punched
        data = b""
        while len(data) < 9:
            data += await stream.receive_some(3)
        got.append(data)

    await a.send_all(b"\x00\x00\x00\x05frame")
    path = await punch.serve_relayed(b, handler, Responder(config=PunchConfig()), "127.0.0.5")
    assert path == "relayed" and got == [b"\x00\x00\x00\x05frame"]


async def test_a_refusing_target_gets_a_bounded_number_of_connects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that answers every SYN with a reset: at most REFUSED_RETRIES connects."""
    with trio.socket.socket() as closed:  # a port bound by nobody once this closes
        await closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    made: list[int] = []
    real = punch.punch_socket

    async def counting(host: str, port_: int) -> Any:
        made.append(port_)
        return await real(host, port_)

    monkeypatch.setattr(punch, "punch_socket", counting)
    assert await punch.connect_from("127.0.0.1", 0, ("127.0.0.1", port), timeout=10) is None
    assert len(made) == pc.REFUSED_RETRIES
