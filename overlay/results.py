"""Result types and the ``Directory`` seam shared by the real DHT and ``FakeDirectory``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import trio

from overlay.advert import Advert, dht_key_for, open_advert
from overlay.select import Rejection, select_adverts
from overlay.store import AdvertStore
from seattlecore import PublicKey


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    """What a lookup found. ``candidates`` are hints: the node's own signed answer is final."""

    candidates: tuple[Advert, ...]
    """Verified live adverts, one per (node, vessel); use ``address``, ``node_key``, ``vessel``."""
    rejected: tuple[Rejection, ...]
    """Records refused by this reader, with the reason and the peer that returned them."""
    peers_answered: tuple[str, ...]
    """``host:port`` of every DHT peer that answered during the lookup."""
    elapsed: float
    """Seconds (trio clock) the lookup took."""
    holders: tuple[str, ...] = ()
    """The subset of ``peers_answered`` that held records for the key."""
    withdrawn: int = 0
    """Slots won by a tombstone (withdrawn adverts)."""
    complete: bool = True
    """False if the lookup hit its deadline (or gave up on slow pages): there may be more."""
    queries: int = 0
    """Lookup queries sent (find_value; page fetches not counted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishResult:
    keys: int
    """Distinct DHT keys (user keys) published to."""
    peers: int
    """Sum over keys of the k-closest peers found."""
    stores_accepted: int
    """STORE calls that a peer answered with 'accepted'."""
    elapsed: float
    dht_keys: int = 0
    """DHT keys published to (each user key has ``REPLICA_KEYS``)."""
    unconfirmed_keys: int = 0
    """DHT keys where no holder returned the records on the independent read-back."""
    complete: bool = True
    """Every lookup involved converged before its deadline."""


@dataclass(slots=True, kw_only=True)
class ProtocolCounters:
    """What the DHT wire protocol counts (``AdProtocol.counters``, updated in place)."""

    requests: dict[str, int] = field(default_factory=dict)
    """Requests answered, by name."""
    garbage_datagrams: int = 0
    rate_limited: int = 0
    rpc_timeouts: int = 0
    stalled_timers: int = 0
    """Reply timers that fired late (our loop was stalled) and gave the reply a grace."""
    late_replies: int = 0
    bad_answers: int = 0
    hellos_ok: int = 0
    hellos_failed: int = 0
    sent_requests: int = 0
    sent_bytes: int = 0
    client_ignored: int = 0
    """Requests left unanswered because this node is in client mode."""
    dialbacks: int = 0
    dialbacks_ignored: int = 0

    def snapshot(self) -> dict[str, Any]:
        """The counters as keyword arguments of ``ProtocolCounters`` (or ``NodeStats``), copied."""
        values = {f.name: getattr(self, f.name) for f in fields(ProtocolCounters)}
        values["requests"] = dict(self.requests)
        return values


@dataclass(slots=True, kw_only=True)
class NodeStats(ProtocolCounters):
    """A snapshot of one node: its protocol's counters, its table and store, its work."""

    node_id: str
    port: int
    peers: int
    keys: int
    records: int
    accepted: int
    rejected: dict[str, int] = field(default_factory=dict)
    lookups: int = 0
    publishes: int = 0
    uptime: float = 0.0
    store_bytes: int = 0
    evicted: int = 0


class Directory(Protocol):
    """The publish/lookup seam: ``DhtNode`` and ``FakeDirectory`` both provide it."""

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult: ...

    async def lookup(self, user_key: PublicKey) -> LookupResult: ...


class FakeDirectory:
    """An in-memory ``Directory``, for fast tests of other packages. ``clock`` is the wall clock
    used for expiry.

    It applies the same validation and merge rules as a real storing node and reader
    (``AdvertStore`` + ``select_adverts``). Share one ``AdvertStore`` between several fakes to
    simulate several node managers and shells talking to one network.
    """

    def __init__(self, store: AdvertStore | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else AdvertStore()
        self.clock = clock
        self.published: list[bytes] = []

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        keys = set()
        accepted = 0
        for blob in adverts:
            key = dht_key_for(open_advert(blob, now=now).user_key)
            keys.add(key)
            accepted += self.store.offer_many(key, [blob], now)[0]
            self.published.append(blob)
        return PublishResult(keys=len(keys), peers=1, stores_accepted=accepted, elapsed=0.0)

    async def lookup(self, user_key: PublicKey) -> LookupResult:
        await trio.lowlevel.checkpoint()
        key = dht_key_for(user_key)
        now = self.clock()
        sel = select_adverts([("fake", b) for b in self.store.blobs(key, now)], dht_key=key, now=now)
        return LookupResult(
            candidates=sel.candidates,
            rejected=sel.rejected,
            peers_answered=("fake",),
            elapsed=0.0,
            withdrawn=sel.withdrawn,
        )
