"""The node's reachability prober: asks peers to dial it back and keeps the board current.

Every round it picks up to ``per_round`` peers (bootstrap peers, then DHT contacts; one per
/24 first) and asks each, over the dial-back service at the peer's DHT port, to dial back
its node manager port (TCP) and its DHT port (UDP) at the address the peer sees it at. Each
request carries a fresh random nonce; an outcome is a success only if that nonce reached the
port under test (a DialBack request on the node manager port, a ``dialback`` datagram on the
DHT port from an address the node has not sent to lately), so a lying peer can make the node
think it is private, never public. Outcomes feed one ``Confidence`` per port; observed
addresses are believed once ``MIN_AGREE`` peers agree. Rounds repeat quickly (doubling from
``retry`` up to ``max_retry``) while a port is undecided, then every ``interval`` seconds. A
node with no bootstrap peer (the first of a network) asks its DHT contacts once it has some.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from nodemanager.errors import BadResponse, ConnectionFailed
from nodemanager.nat.autonat import (
    Answer,
    Confidence,
    DialRequest,
    Kind,
    agreed_address,
    choose_servers,
    explain,
)
from nodemanager.nat.dialback import DIAL_TIMEOUT, request_dial_back
from nodemanager.nat.reachability import Reach, ReachabilityBoard

log = logging.getLogger(__name__)

MAX_OBSERVERS = 16
PROBE_INTERVAL = 900.0


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Timing of the prober (tests shorten ``interval``)."""

    interval: float = PROBE_INTERVAL
    """Seconds between rounds once both ports are decided."""
    retry: float = 2.0
    """Seconds before the second round while undecided; doubles up to ``max_retry``."""
    max_retry: float = 60.0
    per_round: int = 3
    timeout: float = DIAL_TIMEOUT + 4.0
    """Seconds for one dial-back request, answer included."""
    tcp_grace: float = 0.5
    udp_grace: float = 1.5
    """Seconds to wait for the nonce after the server said it dialled."""


class DialBackInbox:
    """Nonces the prober waits for, and the sinks through which they arrive.

    Made before the ports it watches: the node manager's server and the DHT node take a
    ``sink`` when they are built; the prober, built once the DHT runs, waits on the inbox.
    """

    def __init__(self) -> None:
        self._pending: dict[bytes, tuple[Kind, trio.Event]] = {}

    def expect(self, kind: Kind, nonce: bytes) -> trio.Event:
        """An event set once ``nonce`` reaches the port of ``kind`` (until ``forget``)."""
        arrived = trio.Event()
        self._pending[nonce] = (kind, arrived)
        return arrived

    def forget(self, nonce: bytes) -> None:
        self._pending.pop(nonce, None)

    def token_seen(self, kind: Kind, nonce: bytes) -> None:
        """A nonce reached one of our ports (called by the node manager and the DHT node)."""
        pending = self._pending.get(nonce)
        if pending is not None and pending[0] is kind:
            pending[1].set()

    def sink(self, kind: Kind) -> Callable[[bytes], None]:
        return lambda nonce: self.token_seen(kind, nonce)


class Prober:
    """Probe rounds that write ``board`` (see the module docstring); nonces arrive through
    ``inbox`` (its sinks are given to the ports under test)."""

    def __init__(self, board: ReachabilityBoard, *, ports: dict[Kind, int],
                 candidates: Callable[[], Awaitable[Sequence[tuple[str, int]]]],
                 exclude: Sequence[tuple[str, int]] = (), local: str | None = None,
                 config: ProbeConfig = ProbeConfig(), inbox: DialBackInbox | None = None) -> None:
        self.board = board
        self.ports = ports
        self.candidates = candidates
        self.exclude = tuple(exclude)
        self.local = local
        self.config = config
        self.confidence = {kind: Confidence() for kind in ports}
        self.inbox = inbox or DialBackInbox()
        self._observed: OrderedDict[str, str] = OrderedDict()
        self._recent: list[tuple[str, int]] = []
        self.rounds = 0
        self.asked = 0

    def _note_observed(self, observer: str, address: str) -> None:
        self._observed.pop(observer, None)
        self._observed[observer] = address
        while len(self._observed) > MAX_OBSERVERS:
            self._observed.popitem(last=False)

    async def probe(self, server: tuple[str, int], kind: Kind) -> bool | None:
        """One dial-back of ``kind`` by ``server``: True/False, or None (no verdict)."""
        nonce = os.urandom(16)
        arrived = self.inbox.expect(kind, nonce)
        try:
            try:
                reply = await request_dial_back(
                    server, DialRequest(kind, self.ports[kind], nonce), timeout=self.config.timeout,
                    local=self.local, on_observed=lambda ip: self._note_observed(server[0], ip))
            except (ConnectionFailed, BadResponse) as exc:
                log.info("reachability: %s", exc)
                return True if arrived.is_set() else None
            if arrived.is_set() or reply.answer is Answer.REFUSED:
                return True if arrived.is_set() else None
            grace = self.config.tcp_grace if kind is Kind.TCP else self.config.udp_grace
            with trio.move_on_after(grace):
                await arrived.wait()
            return arrived.is_set()
        finally:
            self.inbox.forget(nonce)

    async def round(self) -> None:
        """Ask up to ``per_round`` peers about every port at once, then update the board."""
        servers = choose_servers(await self.candidates(), self.config.per_round,
                                 exclude=self.exclude, recent=self._recent)
        self._recent = servers
        results: list[tuple[Kind, bool | None]] = []

        async def one(server: tuple[str, int], kind: Kind) -> None:
            results.append((kind, await self.probe(server, kind)))

        async with trio.open_nursery() as nursery:
            for server in servers:
                for kind in self.ports:
                    nursery.start_soon(one, server, kind)
        for kind, outcome in results:
            if outcome is not None:
                self.confidence[kind].add(outcome)
        self.rounds += 1
        self.asked += len(servers)
        self.publish()

    def publish(self) -> None:
        observed = agreed_address(self._observed.items())
        tcp = self.confidence.get(Kind.TCP, Confidence())
        udp = self.confidence.get(Kind.UDP, Confidence())
        self.board.update(tcp=tcp.decided, udp=udp.decided, observed=observed,
                          reason=explain(tcp, udp, observed, self.asked))

    @property
    def decided(self) -> bool:
        """Both ports decided and the observed address agreed (else rounds come sooner)."""
        return (all(c.decided is not Reach.UNKNOWN for c in self.confidence.values())
                and self.board.state.observed is not None)

    async def run(self) -> None:
        """Probe now, then again and again (see ``ProbeConfig``); never returns."""
        delay = self.config.retry
        while True:
            try:
                await self.round()
            except Exception:  # nothing a peer does may end the prober
                log.exception("reachability round failed")
            if self.decided:
                wait, delay = self.config.interval, self.config.retry
            else:
                wait, delay = delay, min(2 * delay, self.config.max_retry, self.config.interval)
            await trio.sleep(wait)
