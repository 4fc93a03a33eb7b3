"""The node manager's announcer: keeps this node's adverts alive in the directory (trio).

The node manager owns the nursery; ``Announcer.run`` is the task. ``update(entries)`` replaces
the desired set of (vessel, user key) pairs and triggers an immediate announce; pairs that
disappear are withdrawn with tombstones, republished until the last positive record could
have expired. Timers use trio time (``MockClock`` friendly); record expiry and ``seq`` use the
wall clock passed in as ``clock``, because other machines check them.

Cadence: republish every 300 s with a 750 s TTL, as Seattle's node manager did. A record
thus survives two missed republishes (a lost round or a slow lookup) before it ages out, and
a node that stops is forgotten within 750 s. Storing nodes also re-store held records every
``refresh_interval`` (600 s), which covers holders leaving between republishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import trio

from overlay.advert import Advert, sign_advert
from overlay.errors import OverlayError
from overlay.results import Directory, PublishResult
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

REPUBLISH_INTERVAL = 300.0
RETRY_FIRST = 2.0
"""Seconds before the first retry of an announce round that reached no peer."""
ADVERT_TTL = 750.0

Pair = tuple[str, PublicKey]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerStats:
    rounds: int
    failures: int
    advertised: int
    withdrawing: int
    last_round_at: float | None
    last_result: PublishResult | None


def plan_adverts(
    node: PublicKey,
    address: str,
    desired: Iterable[Pair],
    withdrawing: Iterable[Pair],
    *,
    seq: int,
    now: float,
    ttl: float,
    relays: tuple[str, ...] = (),
    tags: Mapping[Pair, bytes] | None = None,
) -> list[Advert]:
    """The adverts of one announce round: live ones, then tombstones (pure).

    ``tags`` gives live pairs their opaque tag (the pool's attributes or lease record)."""
    out = []
    for pairs, withdrawn in ((desired, False), (withdrawing, True)):
        for vessel, user in sorted(pairs, key=lambda p: (p[0], p[1].raw)):
            out.append(
                Advert(
                    node_key=node,
                    address=address,
                    vessel=vessel,
                    user_key=user,
                    seq=seq,
                    expires_at=now + ttl,
                    withdrawn=withdrawn,
                    relays=() if withdrawn else relays,
                    tag=b"" if withdrawn or tags is None else tags.get((vessel, user), b""),
                )
            )
    return out


class Announcer:
    """Publishes this node's adverts on a timer and at once on ``update``/``wake``."""

    def __init__(
        self,
        directory: Directory,
        keys: KeyPair,
        address: str,
        *,
        republish_interval: float = REPUBLISH_INTERVAL,
        ttl: float = ADVERT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < republish_interval < ttl:
            raise ValueError("republish_interval must be positive and below ttl")
        self._directory = directory
        self._keys = keys
        self._address = address
        self.republish_interval = republish_interval
        self.ttl = ttl
        self._clock = clock
        self._desired: frozenset[Pair] = frozenset()
        self._withdrawing: dict[Pair, float] = {}
        self._wake = trio.Event()
        self._seq = 0
        self._rounds = self._failures = 0
        self._last_at: float | None = None
        self._last_result: PublishResult | None = None
        self._live_until = 0.0
        self._relays: tuple[str, ...] = ()
        self._tags: dict[Pair, bytes] = {}

    def update(self, entries: Iterable[Pair], *, address: str | None = None,
               relays: tuple[str, ...] | None = None,
               tags: Mapping[Pair, bytes] | None = None) -> None:
        """Replace the desired (vessel, user key) set; removed pairs get tombstones. Sync.

        ``relays`` (if given) replaces the relay addresses put into live adverts; ``tags``
        (if given) replaces the opaque tags of live pairs (docs/pool.md)."""
        new = frozenset(entries)
        until = self._clock() + self.ttl
        for pair in self._desired - new:
            self._withdrawing[pair] = until
        for pair in new:
            self._withdrawing.pop(pair, None)
        self._desired = new
        if address is not None:
            self._address = address
        if relays is not None:
            self._relays = relays
        if tags is not None:
            self._tags = dict(tags)
        self.wake()

    def wake(self) -> None:
        """Announce now (e.g. after ChangeAdvertise/ChangeUsers/ChangeOwner/Split/Join)."""
        self._wake.set()

    def _next_seq(self, now: float) -> int:
        self._seq = max(self._seq + 1, int(now * 1000))
        return self._seq

    def next_seq(self) -> int:
        """A ``seq`` above every one this announcer used, for records of the same node that
        are published outside its rounds (the pool's lease claims): a later round wins."""
        return self._next_seq(self._clock())

    async def announce_now(self) -> PublishResult | None:
        """Sign and publish one round; errors are logged and counted, never raised."""
        now = self._clock()
        self._withdrawing = {p: t for p, t in self._withdrawing.items() if t > now}
        adverts = plan_adverts(
            self._keys.public,
            self._address,
            self._desired,
            self._withdrawing,
            seq=self._next_seq(now),
            now=now,
            ttl=self.ttl,
            relays=self._relays,
            tags=self._tags,
        )
        self._rounds += 1
        self._last_at = now
        if self._desired:  # records may be stored (and found) before the round returns
            self._live_until = now + self.ttl
        return await self._publish(adverts)

    async def withdraw_all(self) -> PublishResult | None:
        """Withdraw every advert at once (clean shutdown, uninstall) and stop advertising.

        Publishes a tombstone (higher ``seq``) for each pair, expiring when the last positive
        record could, so readers drop the vessels now instead of after the TTL.
        """
        now = self._clock()
        pairs = set(self._desired) | {p for p, t in self._withdrawing.items() if t > now}
        self._desired, self._withdrawing = frozenset(), {}
        if not pairs or self._live_until <= now:
            return None
        adverts = plan_adverts(self._keys.public, self._address, (), pairs,
                               seq=self._next_seq(now), now=now, ttl=self._live_until - now)
        log.info("withdrawing %d adverts", len(adverts))
        return await self._publish(adverts)

    async def _publish(self, adverts: list[Advert]) -> PublishResult | None:
        if not adverts:
            return None
        try:
            result = await self._directory.publish([sign_advert(self._keys, a) for a in adverts])
        except Exception as exc:  # a DHT problem must never end the node manager's task
            self._failures += 1
            log.warning("announce round failed: %r", exc, exc_info=not isinstance(exc, OverlayError))
            return None
        if result.unconfirmed_keys:
            log.warning("%d of %d DHT keys: no holder returned our adverts on read-back",
                        result.unconfirmed_keys, result.dht_keys)
        self._last_result = result
        return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce now, then every ``republish_interval`` or when woken; until cancelled.

        A round that reached no peer (the DHT node alone, or the round failed) is retried
        sooner: after ``RETRY_FIRST`` s, doubling up to ``republish_interval``."""
        task_status.started()
        retry = RETRY_FIRST
        while True:
            self._wake = trio.Event()
            result = await self.announce_now()
            wait = self.republish_interval
            if self._desired and (result is None or result.peers == 0):
                wait, retry = min(retry, wait), min(retry * 2, wait)
            else:
                retry = RETRY_FIRST
            with trio.move_on_after(wait):
                await self._wake.wait()

    def statistics(self) -> AnnouncerStats:
        return AnnouncerStats(
            rounds=self._rounds,
            failures=self._failures,
            advertised=len(self._desired),
            withdrawing=len(self._withdrawing),
            last_round_at=self._last_at,
            last_result=self._last_result,
        )
