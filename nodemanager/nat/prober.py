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
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from nodemanager.errors import BadResponse, ConnectionFailed
from nodemanager.nat.autonat import (
    CONFIDENCE,
    Answer,
    Confidence,
    DialRequest,
    Kind,
    agreed_address,
    choose_servers,
    explain,
    plan_round,
)
from nodemanager.nat.dialback import DIAL_TIMEOUT, request_dial_back
from nodemanager.nat.observe import ask_observed
from nodemanager.nat.reachability import Reach, ReachabilityBoard, describe

log = logging.getLogger(__name__)

MAX_OBSERVERS = 16
QUICK_ROUNDS = 3
"""Undecided rounds that are followed by another after ``retry`` before the delay doubles."""
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
    spare: int = 3
    """Peers that may stand in, per port, for ones that refuse or cannot be asked."""
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
                 config: ProbeConfig = ProbeConfig(), inbox: DialBackInbox | None = None,
                 seed: int | None = None) -> None:
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
        self.outcomes = 0
        self._observe_rounds = 0
        self.started = 0.0
        self.decided_after: float | None = None
        self._rng = random.Random(seed)

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
            if reply.answer is Answer.FAILED:  # no connection was made: no nonce is on its way
                return False
            grace = self.config.tcp_grace if kind is Kind.TCP else self.config.udp_grace
            with trio.move_on_after(grace):
                await arrived.wait()
            return arrived.is_set()
        finally:
            self.inbox.forget(nonce)

    async def round(self) -> None:
        """Ask peers about every port at once and update the board as answers come.

        Up to ``per_round`` peers are asked first; a peer that refuses or cannot be asked is
        replaced by the next candidate (up to ``spare`` more). With fewer than
        ``CONFIDENCE`` peers to ask, the one peer is asked that many times. The round ends
        as soon as both ports are decided by at least ``CONFIDENCE`` answers of this round:
        the first agreeing answers decide, a slow or silent peer delays nobody (the
        observed address, if not agreed yet, comes from later rounds).
        """
        ranked = choose_servers(await self.candidates(), self.config.per_round + self.config.spare,
                                exclude=self.exclude, recent=self._recent)
        if (self.ports_decided and self.board.state.observed is None
                and self._observe_rounds < QUICK_ROUNDS):
            self._observe_rounds += 1
            await self._observe_only(ranked)
            return
        self._observe_rounds = 0
        first, spare = plan_round(ranked, self.config.per_round, CONFIDENCE)
        self.rounds += 1
        self._recent = list(dict.fromkeys(first))
        self.asked += len(self._recent)
        got = dict.fromkeys(self.ports, 0)
        async with trio.open_nursery() as nursery:

            async def one(server: tuple[str, int], kind: Kind) -> None:
                outcome = await self.probe(server, kind)
                if outcome is None and spare[kind]:
                    nursery.start_soon(one, spare[kind].pop(0), kind)
                    return
                if outcome is not None:
                    got[kind] += 1
                    self.confidence[kind].add(outcome)
                    self.publish()
                    if self.ports_decided and min(got.values()) >= CONFIDENCE:
                        nursery.cancel_scope.cancel()

            for server in first:
                for kind in self.ports:
                    nursery.start_soon(one, server, kind)
        self.outcomes += sum(got.values())
        self.publish()

    async def _observe_only(self, ranked: Sequence[tuple[str, int]]) -> None:
        """Both ports are decided, the address not yet agreed: ask peers only where they
        see us (no dial-back: nothing to test, no server's budget spent)."""
        self.rounds += 1

        async def one(server: tuple[str, int]) -> None:
            try:
                self._note_observed(server[0], await ask_observed(
                    *server, timeout=self.config.timeout, local=self.local))
            except (ConnectionFailed, BadResponse) as exc:
                log.info("reachability: %s", exc)

        async with trio.open_nursery() as nursery:
            for server in ranked:
                nursery.start_soon(one, server)
        self.publish()

    def publish(self) -> None:
        observed = agreed_address(self._observed.items())
        tcp = self.confidence.get(Kind.TCP, Confidence())
        udp = self.confidence.get(Kind.UDP, Confidence())
        self.board.update(tcp=tcp.decided, udp=udp.decided, observed=observed,
                          reason=explain(tcp, udp, observed, self.asked))
        if self.decided_after is None and self.ports_decided:
            self.decided_after = trio.current_time() - self.started
            log.info("reachability decided %.2f s after the prober started (%d rounds): %s",
                     self.decided_after, self.rounds, describe(self.board.state))

    @property
    def ports_decided(self) -> bool:
        return all(c.decided is not Reach.UNKNOWN for c in self.confidence.values())

    @property
    def decided(self) -> bool:
        """Both ports decided and the observed address agreed (else rounds come sooner)."""
        return (all(c.decided is not Reach.UNKNOWN for c in self.confidence.values())
                and self.board.state.observed is not None)

    async def run(self) -> None:
        """Probe now, then again and again (see ``ProbeConfig``); never returns."""
        delay = self.config.retry
        self.started = trio.current_time()
        while True:
            before = self.outcomes
            try:
                await self.round()
            except Exception:  # nothing a peer does may end the prober
                log.exception("reachability round failed")
            if self.decided:
                wait, delay = self.config.interval, self.config.retry
            elif self.outcomes == before:  # nobody could answer (busy, none known): soon again
                wait = self.config.retry * self._rng.uniform(0.5, 1.0)
            elif self.rounds <= QUICK_ROUNDS:  # answers disagreed (a loaded peer, a late nonce)
                wait = self.config.retry
            else:
                wait, delay = delay, min(2 * delay, self.config.max_retry, self.config.interval)
            await trio.sleep(wait)
