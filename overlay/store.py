"""The bounded, validating, merging record store that every DHT node keeps (pure).

Invariants:
1. Every record held was verified (signature, key binding, expiry, size) when it arrived,
   against the ``now`` passed in; expired records are culled on every read.
2. Under one DHT key there is at most one record per slot (node key, vessel); a new record
   replaces it only with a strictly higher ``seq``. Equal ``seq`` and equal bytes is a refresh;
   equal ``seq`` and different bytes is a conflict and the incumbent stays.
3. Tombstones (``withdrawn``) are held like any record until they expire, so a replayed older
   record cannot resurrect a withdrawn vessel.
4. Caps bound memory: records per key, records per publisher per key, records per publisher,
   keys, and total records. When a cap is hit the newcomer is refused (the incumbents stay).
5. Every refusal is counted by reason in ``rejected``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from overlay.advert import Advert, verify_advert
from overlay.errors import InvalidAdvert, RejectReason

Slot = tuple[bytes, str]
Outcome = Literal["stored", "replaced", "refreshed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreLimits:
    """Memory bounds of one node's store (about 300 bytes a record: 50,000 is ~15 MB).

    Seattle's lookup returned at most 100 values (one per node); our records are per
    (node, vessel), so a researcher with 500 vessels on 50 nodes needs 500 under one key.
    """

    max_records_per_key: int = 1024
    max_per_publisher_per_key: int = 16
    max_per_publisher: int = 256
    max_keys: int = 4096
    max_total_records: int = 50_000


@dataclass(slots=True)
class _Entry:
    advert: Advert
    blob: bytes
    stored_at: float


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


class AdvertStore:
    """``dht_key -> {slot: record}`` with validation, merge and caps; see module invariants."""

    def __init__(self, limits: StoreLimits | None = None) -> None:
        self.limits = limits or StoreLimits()
        self._keys: dict[bytes, dict[Slot, _Entry]] = {}
        self._per_publisher: Counter[bytes] = Counter()
        self._per_publisher_key: Counter[tuple[bytes, bytes]] = Counter()
        self._total = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def offer(self, dht_key: bytes, blob: object, now: float) -> Outcome:
        """Validate and merge one record. Raises (and counts) InvalidAdvert on refusal."""
        try:
            advert = verify_advert(blob, dht_key=dht_key, now=now)
            assert isinstance(blob, bytes)
            outcome = self._merge(dht_key, advert, blob, now)
        except InvalidAdvert as exc:
            self.rejected[exc.reason] += 1
            raise
        self.accepted += 1
        return outcome

    def offer_many(
        self, dht_key: bytes, blobs: Iterable[object], now: float
    ) -> tuple[int, list[RejectReason]]:
        """Offer several records; return (number accepted, reasons of those refused)."""
        accepted = 0
        reasons: list[RejectReason] = []
        for blob in blobs:
            try:
                self.offer(dht_key, blob, now)
                accepted += 1
            except InvalidAdvert as exc:
                reasons.append(exc.reason)
        return accepted, reasons

    def count_rejection(self, reason: RejectReason) -> None:
        """Count a refusal decided outside ``offer`` (e.g. an undecodable STORE value)."""
        self.rejected[reason] += 1

    def _merge(self, dht_key: bytes, advert: Advert, blob: bytes, now: float) -> Outcome:
        slots = self._keys.get(dht_key)
        old = slots.get(advert.slot) if slots is not None else None
        if old is not None:
            if advert.seq < old.advert.seq:
                raise InvalidAdvert("stale_seq", f"seq {advert.seq} < {old.advert.seq}")
            if advert.seq == old.advert.seq:
                if blob != old.blob:
                    raise InvalidAdvert("conflict", "same seq, different record")
                old.stored_at = now
                return "refreshed"
            old.advert, old.blob, old.stored_at = advert, blob, now
            return "replaced"
        self._check_caps(dht_key, advert)
        self._keys.setdefault(dht_key, {})[advert.slot] = _Entry(advert, blob, now)
        self._count(dht_key, advert.node_key.raw, +1)
        return "stored"

    def _check_caps(self, dht_key: bytes, advert: Advert) -> None:
        lim = self.limits
        node = advert.node_key.raw
        if dht_key not in self._keys and len(self._keys) >= lim.max_keys:
            raise InvalidAdvert("store_full", "too many keys")
        if self._total >= lim.max_total_records:
            raise InvalidAdvert("store_full", "too many records")
        if len(self._keys.get(dht_key, ())) >= lim.max_records_per_key:
            raise InvalidAdvert("key_full", "too many records under this key")
        if self._per_publisher_key[(node, dht_key)] >= lim.max_per_publisher_per_key:
            raise InvalidAdvert("publisher_full", "too many records from this node here")
        if self._per_publisher[node] >= lim.max_per_publisher:
            raise InvalidAdvert("publisher_full", "too many records from this node")

    def _count(self, dht_key: bytes, node: bytes, delta: int) -> None:
        self._total += delta
        self._per_publisher[node] += delta
        self._per_publisher_key[(node, dht_key)] += delta
        if self._per_publisher[node] <= 0:
            del self._per_publisher[node]
        if self._per_publisher_key[(node, dht_key)] <= 0:
            del self._per_publisher_key[(node, dht_key)]

    def cull(self, now: float) -> int:
        """Drop every expired record; return how many were dropped."""
        dropped = 0
        for dht_key in list(self._keys):
            slots = self._keys[dht_key]
            for slot in [s for s, e in slots.items() if e.advert.expires_at <= now]:
                del slots[slot]
                self._count(dht_key, slot[0], -1)
                dropped += 1
            if not slots:
                del self._keys[dht_key]
        return dropped

    def blobs(self, dht_key: bytes, now: float) -> list[bytes]:
        """Live records (tombstones included) under ``dht_key``, in a stable order."""
        self.cull(now)
        slots = self._keys.get(dht_key, {})
        return [slots[s].blob for s in sorted(slots)]

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
        )
