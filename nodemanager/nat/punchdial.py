"""Hole punching wired in: the client's upgrade hook for ``dial`` and the node's relayed serve.

Client side: ``punch_upgrade(observers)`` is the ``upgrade`` hook of ``dial.dial``. Once a
relayed stream to a node is up it runs the handshake (``punch.initiate``); on success the
session uses the direct stream (path ``punched``), otherwise the relayed one (path
``relay HOST:PORT``). A handshake that broke off leaves the relayed stream unusable, so the
hook dials the relay again, without punching.

Node side: ``PunchingServe`` wraps the node's connection handler for relayed connections
(``relayclient.RelayClient``'s ``serve``): a punch preamble is answered first, and the
session is served on the direct stream (admitted under its real peer address) or on the
relayed one (admitted under the address the relay reports). It counts sessions per path
for ``GetNodeStatus`` (``punch``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import trio

from nodemanager.nat.dial import Dialed, Route, Upgrade, via_relay
from nodemanager.nat.punch import (
    MAX_OBSERVERS,
    Outcome,
    PunchBroken,
    PunchConfig,
    Responder,
    initiate,
    serve_relayed,
)
from nodemanager.nat.punchcore import Addr

log = logging.getLogger(__name__)

PUNCHED = "punched"



def pick_observers(candidates: Iterable[Addr], limit: int = MAX_OBSERVERS) -> tuple[Addr, ...]:
    """Up to ``limit`` observer addresses, one per host first (pure)."""
    unique = list(dict.fromkeys(candidates))
    hosts: set[str] = set()
    first = []
    for host, port in unique:
        if host not in hosts:
            hosts.add(host)
            first.append((host, port))
    rest = [a for a in unique if a not in first]
    return tuple((first + rest)[:limit])


def punch_upgrade(observers: Callable[[], Sequence[Addr]], config: PunchConfig | None = None,
                  on_outcome: Callable[[Outcome], None] | None = None) -> Upgrade:
    """The ``dial`` hook: try a direct connection once a relayed one is up.

    ``on_outcome`` sees every completed handshake (benchmarks count attempts with it).
    """
    async def upgrade(dialed: Dialed, route: Route) -> Dialed:
        found = pick_observers(observers())
        if not found:
            log.info("no observer known: %s stays relayed", route.address)
            return dialed
        try:
            outcome = await initiate(dialed.stream, replace(config or PunchConfig(), observers=found),
                                     route.host)
        except PunchBroken as exc:
            log.info("punch with %s broke off (%s); dialling %s again", route.address, exc,
                     dialed.relay)
            with trio.CancelScope(shield=True):
                await dialed.stream.aclose()
            assert dialed.relay is not None and route.node_key is not None
            return Dialed(await via_relay(dialed.relay, route.node_key), dialed.path)
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.direct is None:
            log.info("%s stays relayed: %s", route.address, outcome.reason)
            return dialed
        log.info("%s: direct connection (%s) in %.3f s", route.address, outcome.role,
                 outcome.elapsed)
        await dialed.stream.aclose()
        return Dialed(outcome.direct, PUNCHED)

    return upgrade


Handle = Callable[[trio.abc.Stream, str | None], Awaitable[None]]


@dataclass(slots=True)
class PunchingServe:
    """The node's ``serve`` for relayed connections: punch if asked, then ``handle``."""

    handle: Handle
    responder: Responder
    sessions: dict[str, int] = field(default_factory=lambda: {"punched": 0, "relayed": 0})

    async def __call__(self, stream: trio.abc.Stream, source: str) -> None:
        async def handle(session: trio.abc.Stream, punched: bool) -> None:
            path = PUNCHED if punched else "relayed"
            self.sessions[path] += 1
            try:  # a punched session is admitted under its real peer address
                await self.handle(session, None if punched else source)
            finally:
                self.sessions[path] -= 1

        await serve_relayed(stream, handle, self.responder, source or None)

    def set_observers(self, observers: Iterable[Addr]) -> None:
        self.responder.set_observers(pick_observers(observers))

    def status(self) -> dict[str, object]:
        """``GetNodeStatus`` ``punch``: sessions open per path and the punch counters."""
        r = self.responder
        return {"sessions": dict(self.sessions), "punched": r.punched, "failed": r.failed,
                "refused": r.refused, "active": r.limiter.active,
                "observers": [f"{h}:{p}" for h, p in r.config.observers]}
