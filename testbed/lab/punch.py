"""Punch trials without node managers: a rendezvous, observers and the two roles.

Used by tests/nodemanager/test_punch*.py and benchmarks/lab.py. The rendezvous stands in
for a relay: it pairs the two connections it gets, writes each one line ``peer <ip>\\n``
(the other's source address, as a relay reports the client's) and splices them.
In the lab each role runs in its own thread, switched into its host's network namespace
before its trio loop starts, so every socket it makes lives on that host.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from nodemanager.nat.observe import serve_observer
from nodemanager.nat.punch import Outcome, PunchBroken, PunchConfig, Responder, initiate, read_exact
from testbed.lab import net as labnet
from testbed.lab.plan import LabPlan, plan_lab

RELAY_TIMEOUT = 10.0


async def splice(a: trio.SocketStream, b: trio.SocketStream) -> None:
    """Copy bytes both ways until either side ends."""
    async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await src.receive_some(65536):
                await dst.send_all(data)
        nursery.cancel_scope.cancel()

    async with a, b, trio.open_nursery() as nursery:
        nursery.start_soon(pump, a, b)
        nursery.start_soon(pump, b, a)


async def serve_rendezvous(host: str, *,
                           task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Pair connections two by two (in arrival order) and splice each pair."""
    listeners = await trio.open_tcp_listeners(0, host=host)
    waiting: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])
        while True:
            stream = await listeners[0].accept()
            waiting.append(stream)
            if len(waiting) == 2:
                a, b = waiting
                waiting = []
                try:
                    for one, other in ((a, b), (b, a)):
                        ip = other.socket.getpeername()[0]
                        await one.send_all(f"peer {ip}\n".encode())
                except (OSError, trio.BrokenResourceError):
                    await a.aclose()
                    await b.aclose()
                    continue
                nursery.start_soon(splice, a, b)


async def join(host: str, port: int) -> tuple[trio.SocketStream, str]:
    """Connect to the rendezvous; the spliced stream and the peer's IP it reports."""
    stream = await trio.open_tcp_stream(host, port)
    line = b""
    while not line.endswith(b"\n"):
        line += await read_exact(stream, 1)
    return stream, line.decode().split()[1]


async def run_initiator(relay: tuple[str, int], config: PunchConfig) -> Outcome:
    """Join the rendezvous and punch; check the direct stream carries bytes both ways."""
    relayed, peer = await join(*relay)
    async with relayed:
        outcome = await initiate(relayed, config, peer)
        if outcome.direct is not None:
            await outcome.direct.send_all(b"ping")
            assert await read_exact(outcome.direct, 4) == b"pong"
            await outcome.direct.aclose()
        else:
            await relayed.send_all(b"over the relay")
        return outcome


async def run_responder(relay: tuple[str, int], config: PunchConfig,
                        responder: Responder | None = None) -> Outcome:
    """Join the rendezvous and answer a punch; answer ``ping`` on the direct stream."""
    relayed, peer = await join(*relay)
    responder = responder or Responder(config=config)
    async with relayed:
        assert await read_exact(relayed, 4) == b"SPNC"
        try:
            outcome = await responder.respond(relayed, peer)
        except PunchBroken as exc:
            return Outcome(direct=None, reason=f"broken: {exc}")
        if outcome.direct is not None:
            assert await read_exact(outcome.direct, 4) == b"ping"
            await outcome.direct.send_all(b"pong")
            await outcome.direct.aclose()
        else:
            assert await read_exact(relayed, 14) == b"over the relay"
        return outcome


# ---- in the lab ----

@contextmanager
def bare_lab(nodes: int = 5, nat: float = 0.6, researcher_nat: bool = True) -> Iterator[LabPlan]:
    """A lab's network with no node managers: by default node 0 and 4 public, 1 cone,
    2 symmetric, 3 cone, and the researcher behind a cone NAT."""
    public, home = labnet.claim_ranges(None, None)
    plan = plan_lab(secrets.token_hex(3), nodes, public, home, nat=nat,
                    nat_kind="mixed", researcher_nat=researcher_nat)
    labnet.write_record(plan.lab_id, plan.ranges, Path("/nonexistent"))
    try:
        labnet.apply_plan(plan)
        yield plan
    finally:
        labnet.teardown(plan.lab_id, plan.ranges)


@dataclass(slots=True)
class Services:
    """Observers and the rendezvous, each on a public host of the lab."""

    observers: tuple[tuple[str, int], ...]
    relay: tuple[str, int]


@contextmanager
def in_thread(namespace: str, main: Callable[..., Any], *args: Any) -> Iterator[list[Any]]:
    """Run ``trio.run(main, *args)`` in a thread inside ``namespace``; yields [result]."""
    result: list[Any] = []

    def body() -> None:
        with labnet.inside(namespace):
            result.append(trio.run(main, *args))

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        thread.join(timeout=30)


def start_services(plan: LabPlan) -> tuple[Services, Callable[[], None]]:
    """Observers on two public hosts, the rendezvous on the first; (services, stop)."""
    publics = [h for h in plan.nodes if h.router is None][:2]
    ready: list[tuple[str, int]] = []
    event = threading.Event()
    stops: list[trio.CancelScope] = []
    tokens: list[trio.lowlevel.TrioToken] = []

    async def serve(host: str, rendezvous: bool) -> None:
        with trio.CancelScope() as scope:
            stops.append(scope)
            tokens.append(trio.lowlevel.current_trio_token())
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_observer, host, 0)
                ready.append((host, port))
                if rendezvous:
                    ready.append((host, await nursery.start(serve_rendezvous, host)))
                event.set()

    threads = []
    for index, host in enumerate(publics):
        event.clear()

        def body(host_: Any = host, first: bool = index == 0) -> None:
            with labnet.inside(host_.namespace):
                trio.run(serve, host_.address, first)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        threads.append(thread)
        assert event.wait(10), "lab services did not start"

    def stop() -> None:
        for scope, token in zip(stops, tokens, strict=True):
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(scope.cancel, trio_token=token)
        for thread in threads:
            thread.join(timeout=10)

    observers = (ready[0], ready[2])
    return Services(observers=observers, relay=ready[1]), stop


def trial(plan: LabPlan, services: Services, initiator: str, responder: str,
          responder_state: Responder | None = None) -> tuple[Outcome, Outcome]:
    """One punch between two lab hosts (names like ``researcher`` or ``n001``)."""
    a, b = plan.host(initiator), plan.host(responder)
    config = PunchConfig(observers=services.observers)
    with (in_thread(b.namespace, run_responder, services.relay, config, responder_state) as theirs,
          in_thread(a.namespace, run_initiator, services.relay, config) as ours):
        pass
    assert ours and theirs, "a punch side did not finish"
    return ours[0], theirs[0]
