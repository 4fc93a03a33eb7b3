"""The bounded, validating, merging, fair record store that every DHT node keeps (pure).

Invariants:
1. Every record held was verified (signature, key binding, expiry, size) when it arrived,
   against the ``now`` passed in; expired records are culled on every read.
2. Under one DHT key there is at most one record per slot (node key, vessel); a new record
   replaces it only with a strictly higher ``seq``. Equal ``seq`` and equal bytes is a refresh;
   equal ``seq`` and different bytes is a conflict and the incumbent stays.
3. Tombstones (``withdrawn``) are held like any record until they expire, so a replayed older
   record cannot resurrect a withdrawn vessel.
4. Every record is charged to a *source group*: the network group (``netgroup.source_group``)
   of the peer that first stored it, moved to the publisher's own group when the publisher
   stores it directly (the sender's address is the advert's host).
5. Hard quotas refuse the newcomer: records per publisher per key, per publisher, per source
   group per key, per source group. Capacity limits (records per key, total records, total bytes) evict
   instead, fairly: the victim is the newest record of the group holding the most, and only
   if the newcomer's group holds fewer. No set of sources can push out a smaller one, and
   long-lived records outlast new ones.
6. Reads page records round-robin over source groups, then over publishers within a group,
   oldest first, so a reader's first pages show every source before anyone's second record.
7. Every refusal is counted by reason in ``rejected``; every eviction in ``evicted``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from typing import Any, Literal

from overlay.advert import Advert, check_address, verify_advert
from overlay.errors import InvalidAdvert, OverlayUsageError, RejectReason
from overlay.netgroup import source_group

Slot = tuple[bytes, str]
Outcome = Literal["stored", "replaced", "refreshed"]
LOCAL = "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreLimits:
    """Memory bounds of one node's store (see docs/overlay.md for bytes per record).

    A node holds the records of the keys it is among the ``replicas`` closest to: with U users
    x 3 keys x 10 replicas over N nodes, about 30 x records / N each (600 for 10,000 node
    managers with 20 records each), so 20,000 leaves a wide margin.

    Seattle's lookup returned at most 100 values (one per node); our records are per
    (node, vessel), so a researcher with 500 vessels on 50 nodes needs 500 under one key.
    """

    max_records_per_key: int = 1024
    max_per_publisher_per_key: int = 16
    max_per_publisher: int = 256
    max_per_source_per_key: int = 64
    """One source network's share of one key (a /24 or /48; see ``netgroup``)."""
    max_per_source: int = 5_000
    """One source network's share of the whole store (a quarter)."""
    max_total_records: int = 20_000
    """About 0.9-1.2 KB of process memory each (measured; docs/overlay.md): ~23 MB at most."""
    max_total_bytes: int = 8_000_000
    """Record bytes held (the blobs alone)."""


@dataclass(slots=True)
class _Entry:
    advert: Advert
    blob: bytes
    stored_at: float
    first_at: float
    group: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStats:
    """A snapshot of the store for ``statistics()`` and the status endpoint."""

    keys: int
    records: int
    tombstones: int
    per_key: tuple[tuple[str, int], ...]
    """(hex DHT key, record count), largest first, at most 50 entries."""
    accepted: int
    rejected: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    groups: int = 0
    evicted: int = 0


def _host_of(address: str) -> str:
    try:
        return check_address(address)[0]
    except OverlayUsageError:
        return ""


def _bump(counter: Counter[Any], key: object, delta: int) -> None:
    counter[key] += delta
    if counter[key] <= 0:
        del counter[key]


def _round_robin(lists: Iterable[list[_Entry]]) -> list[_Entry]:
    return [e for e in chain.from_iterable(zip_longest(*lists)) if e is not None]


class AdvertStore:
    """``dht_key -> {slot: record}`` with validation, merge, quotas; see module invariants."""

    def __init__(self, limits: StoreLimits | None = None) -> None:
        self.limits = limits or StoreLimits()
        self._keys: dict[bytes, dict[Slot, _Entry]] = {}
        self._per_publisher: Counter[bytes] = Counter()
        self._per_publisher_key: Counter[tuple[bytes, bytes]] = Counter()
        self._per_group_key: Counter[tuple[bytes, str]] = Counter()
        self._group_entries: dict[str, dict[tuple[bytes, Slot], None]] = {}
        self._order: dict[bytes, list[bytes]] = {}
        self._total = 0
        self._bytes = 0
        self.accepted = 0
        self.evicted = 0
        self.rejected: Counter[str] = Counter()

    def offer(self, dht_key: bytes, blob: object, now: float, *, origin: str = LOCAL) -> Outcome:
        """Validate and merge one record from ``origin`` (the sender's IP, or ``"local"``).

        Raises (and counts) InvalidAdvert on refusal.
        """
        try:
            advert = verify_advert(blob, dht_key=dht_key, now=now)
            assert isinstance(blob, bytes)
            outcome = self._merge(dht_key, advert, blob, now, origin)
        except InvalidAdvert as exc:
            self.rejected[exc.reason] += 1
            raise
        self.accepted += 1
        self._order.pop(dht_key, None)
        return outcome

    def offer_many(
        self, dht_key: bytes, blobs: Iterable[object], now: float, *, origin: str = LOCAL
    ) -> tuple[int, list[RejectReason]]:
        """Offer several records; return (number accepted, reasons of those refused)."""
        accepted = 0
        reasons: list[RejectReason] = []
        for blob in blobs:
            try:
                self.offer(dht_key, blob, now, origin=origin)
                accepted += 1
            except InvalidAdvert as exc:
                reasons.append(exc.reason)
        return accepted, reasons

    def count_rejection(self, reason: RejectReason) -> None:
        """Count a refusal decided outside ``offer`` (e.g. an undecodable STORE value)."""
        self.rejected[reason] += 1

    def _merge(self, dht_key: bytes, advert: Advert, blob: bytes, now: float, origin: str) -> Outcome:
        group = source_group(origin) if origin != LOCAL else LOCAL
        direct = origin == LOCAL or _host_of(advert.address) == origin
        slots = self._keys.get(dht_key)
        old = slots.get(advert.slot) if slots is not None else None
        if old is None:
            self._admit(dht_key, advert, blob, now, group)
            return "stored"
        if advert.seq < old.advert.seq:
            raise InvalidAdvert("stale_seq", f"seq {advert.seq} < {old.advert.seq}")
        if advert.seq == old.advert.seq and blob != old.blob:
            raise InvalidAdvert("conflict", "same seq, different record")
        if direct and old.group != group:
            self._move(dht_key, advert.slot, old, group)
        old.stored_at = now
        if advert.seq == old.advert.seq:
            return "refreshed"
        self._bytes += len(blob) - len(old.blob)
        old.advert, old.blob = advert, blob
        return "replaced"

    # -- quotas and eviction -------------------------------------------------------------------
    def _admit(self, dht_key: bytes, advert: Advert, blob: bytes, now: float, group: str) -> None:
        lim = self.limits
        node = advert.node_key.raw
        if self._per_publisher_key[(node, dht_key)] >= lim.max_per_publisher_per_key:
            raise InvalidAdvert("publisher_full", "too many records from this node here")
        if self._per_publisher[node] >= lim.max_per_publisher:
            raise InvalidAdvert("publisher_full", "too many records from this node")
        if self._per_group_key[(dht_key, group)] >= lim.max_per_source_per_key:
            raise InvalidAdvert("source_full", "too many records from this network here")
        if group != LOCAL and len(self._group_entries.get(group, ())) >= lim.max_per_source:
            raise InvalidAdvert("source_full", "too many records from this network")
        if len(self._keys.get(dht_key, ())) >= lim.max_records_per_key:
            self._evict_for(self._per_group_key[(dht_key, group)], self._key_victim(dht_key), "key_full")
        while self._total >= lim.max_total_records or self._bytes + len(blob) > lim.max_total_bytes:
            held = len(self._group_entries.get(group, ()))
            self._evict_for(held, self._global_victim(), "store_full")
        entry = _Entry(advert, blob, now, now, group)
        self._keys.setdefault(dht_key, {})[advert.slot] = entry
        self._count(dht_key, advert.slot, entry, +1)

    def _evict_for(self, held: int, victim: tuple[str, int, tuple[bytes, Slot]] | None,
                   reason: RejectReason) -> None:
        """Evict ``victim`` (a group, its count, its newest record) if the newcomer's group,
        holding ``held``, would still hold no more than the victim's group afterwards."""
        if victim is None or held + 1 >= victim[1]:
            raise InvalidAdvert(reason, "full, and this source already holds its share")
        dht_key, slot = victim[2]
        self._drop(dht_key, slot)
        self.evicted += 1

    def _key_victim(self, dht_key: bytes) -> tuple[str, int, tuple[bytes, Slot]] | None:
        """The largest source group under ``dht_key`` and its newest record there."""
        slots = self._keys.get(dht_key, {})
        counts = Counter(e.group for e in slots.values())
        if not counts:
            return None
        group, count = max(counts.items(), key=lambda gc: (gc[1], gc[0]))
        newest = max((e for e in slots.values() if e.group == group), key=lambda e: e.first_at)
        return group, count, (dht_key, newest.advert.slot)

    def _global_victim(self) -> tuple[str, int, tuple[bytes, Slot]] | None:
        """The largest source group overall and its newest record."""
        if not self._group_entries:
            return None
        group = max(self._group_entries, key=lambda g: (len(self._group_entries[g]), g))
        entries = self._group_entries[group]
        return group, len(entries), next(reversed(entries))

    def _count(self, dht_key: bytes, slot: Slot, entry: _Entry, delta: int) -> None:
        node = slot[0]
        self._total += delta
        self._bytes += delta * len(entry.blob)
        _bump(self._per_publisher, node, delta)
        _bump(self._per_publisher_key, (node, dht_key), delta)
        _bump(self._per_group_key, (dht_key, entry.group), delta)
        members = self._group_entries.setdefault(entry.group, {})
        if delta > 0:
            members[(dht_key, slot)] = None
        else:
            members.pop((dht_key, slot), None)
            if not members:
                del self._group_entries[entry.group]

    def _move(self, dht_key: bytes, slot: Slot, entry: _Entry, group: str) -> None:
        self._count(dht_key, slot, entry, -1)
        entry.group = group
        self._count(dht_key, slot, entry, +1)

    def _drop(self, dht_key: bytes, slot: Slot) -> None:
        slots = self._keys[dht_key]
        entry = slots.pop(slot)
        self._count(dht_key, slot, entry, -1)
        self._order.pop(dht_key, None)
        if not slots:
            del self._keys[dht_key]

    # -- reading ---------------------------------------------------------------------------------
    def cull(self, now: float) -> int:
        """Drop every expired record; return how many were dropped."""
        dropped = 0
        for dht_key in list(self._keys):
            for slot in [s for s, e in self._keys[dht_key].items() if e.advert.expires_at <= now]:
                self._drop(dht_key, slot)
                dropped += 1
        return dropped

    def blobs(self, dht_key: bytes, now: float) -> list[bytes]:
        """Live records (tombstones included) under ``dht_key`` in fair page order (inv. 6)."""
        self.cull(now)
        order = self._order.get(dht_key)
        if order is None:
            order = self._order[dht_key] = [e.blob for e in self._fair_order(dht_key)]
        return order

    def _fair_order(self, dht_key: bytes) -> list[_Entry]:
        by_group: dict[str, dict[bytes, list[_Entry]]] = {}
        for entry in self._keys.get(dht_key, {}).values():
            by_group.setdefault(entry.group, {}).setdefault(entry.advert.node_key.raw, []).append(entry)
        groups = []
        for publishers in by_group.values():
            lists = [sorted(es, key=lambda e: (e.first_at, e.advert.vessel)) for es in publishers.values()]
            lists.sort(key=lambda es: (es[0].first_at, es[0].advert.node_key.raw))
            groups.append(_round_robin(lists))
        groups.sort(key=lambda es: min(e.first_at for e in es))
        return _round_robin(groups)

    def __contains__(self, dht_key: object) -> bool:
        return dht_key in self._keys

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._keys))

    def stored_before(self, cutoff: float, now: float) -> list[tuple[bytes, bytes]]:
        """(dht_key, blob) of live records last stored or refreshed before ``cutoff``."""
        self.cull(now)
        return [
            (k, e.blob) for k, slots in self._keys.items() for e in slots.values() if e.stored_at < cutoff
        ]

    def stats(self, now: float) -> StoreStats:
        self.cull(now)
        per_key = sorted(((k.hex(), len(v)) for k, v in self._keys.items()), key=lambda kv: -kv[1])
        tombs = sum(e.advert.withdrawn for v in self._keys.values() for e in v.values())
        return StoreStats(
            keys=len(self._keys),
            records=self._total,
            tombstones=tombs,
            per_key=tuple(per_key[:50]),
            accepted=self.accepted,
            rejected=dict(self.rejected),
            bytes=self._bytes,
            groups=len(self._group_entries),
            evicted=self.evicted,
        )
