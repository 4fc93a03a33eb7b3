"""The routing table: k-buckets by shared prefix, with network-diversity limits (pure; takes ``now``).

Invariants:
1. Bucket ``i`` holds contacts whose id shares exactly ``i`` leading bits with ours; at most
   ``k`` contacts each, plus at most ``replacements`` candidates waiting for a free place.
2. Only contacts that proved their id (a verified ``hello``) are added: an inbound request
   alone never changes the table (the lesson of "Total Eclipse of the Heart").
3. Diversity: at most ``limits.per_bucket`` contacts of one network group per bucket and
   ``limits.per_table`` in the table (libp2p's filter, per /24; ``netgroup.group_of``).
4. A live old contact is never evicted for a newcomer: newcomers wait in the replacement
   cache and take a place only when a contact failed ``MAX_FAILURES`` times in a row (the
   Kademlia paper's rule; BEP 5's "bad" node).
5. One contact per address: a proven newcomer at the address of another id replaces it (the
   node there changed identity). Memory is O(buckets x (k + replacements)), whatever peers send.

The end of the module keeps table contacts across restarts (rules 6-8 there).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from overlay.answers import Contact, decode_contact
from overlay.errors import BadAnswer
from overlay.netgroup import DiversityLimits, group_of
from overlay.nodeid import ID_BYTES, PUZZLE_BITS

ID_BITS = 8 * ID_BYTES
AddOutcome = Literal["added", "updated", "replacement", "refused"]


MAX_FAILURES = 3
"""Consecutive missed answers after which a contact leaves the table (BEP 5: "bad")."""


@dataclass(slots=True)
class Entry:
    contact: Contact
    group: str | None
    added: float
    seen: float
    failures: int = 0
    ident: int = 0
    """The id as an integer (for XOR distances)."""

    def __post_init__(self) -> None:
        self.ident = int.from_bytes(self.contact.node_id, "big")


class RoutingTable:
    """Kademlia k-buckets over 160-bit ids; see the module invariants."""

    def __init__(self, own_id: bytes, *, k: int = 20, limits: DiversityLimits | None = None,
                 replacements: int = 5) -> None:
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self.k = k
        self.limits = limits or DiversityLimits()
        self.max_replacements = replacements
        self._buckets: list[dict[bytes, Entry]] = [{} for _ in range(ID_BITS)]
        self._spare: list[OrderedDict[bytes, Entry]] = [OrderedDict() for _ in range(ID_BITS)]
        self._touched: list[float] = [0.0] * ID_BITS
        self._groups: Counter[str] = Counter()
        self._by_addr: dict[tuple[str, int], bytes] = {}
        self._flat: list[Entry] | None = None

    def bucket_of(self, node_id: bytes) -> int:
        distance = int.from_bytes(node_id, "big") ^ self._own
        return min(ID_BITS - distance.bit_length(), ID_BITS - 1)

    def get(self, node_id: bytes) -> Entry | None:
        return self._buckets[self.bucket_of(node_id)].get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, bytes) and self.get(node_id) is not None

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    def _group_ok(self, bucket: dict[bytes, Entry], group: str | None) -> bool:
        if group is None:
            return True
        in_bucket = sum(1 for e in bucket.values() if e.group == group)
        return in_bucket < self.limits.per_bucket and self._groups[group] < self.limits.per_table

    def wants(self, node_id: bytes, host: str) -> bool:
        """Would a proven contact with this id at ``host`` get a place now? (Checking a peer
        costs a signed ``hello``; spares only come from contacts added while a bucket is full.)"""
        if node_id == self.own_id or len(node_id) != ID_BYTES:
            return False
        index = self.bucket_of(node_id)
        if node_id in self._buckets[index] or node_id in self._spare[index]:
            return False
        try:
            group = group_of(host)
        except ValueError:
            return False
        if len(self._buckets[index]) < self.k:
            return self._group_ok(self._buckets[index], group)
        return False  # a full bucket: checking the peer (a signed hello) would be wasted

    def _spare_ok(self, index: int, group: str | None) -> bool:
        """Room in bucket ``index``'s spare list (the oldest spare makes way)."""
        spare = self._spare[index]
        if group is not None and sum(1 for e in spare.values() if e.group == group) >= self.limits.per_bucket:
            return False
        return self.max_replacements > 0

    def add(self, contact: Contact, now: float) -> AddOutcome:
        """Add a contact that proved its id; see invariants 3-5 for what may refuse it."""
        if contact.node_id == self.own_id:
            return "refused"
        index = self.bucket_of(contact.node_id)
        bucket = self._buckets[index]
        held = bucket.get(contact.node_id)
        if held is not None:
            if held.contact.addr != contact.addr:
                return "refused"  # the id is already known elsewhere; keep the old, live one
            held.seen = now
            return "updated"
        other = self._by_addr.get(contact.addr)
        if other is not None:
            self.remove(other)
        group = group_of(contact.host)
        entry = Entry(contact, group, now, now)
        self._touched[index] = now
        if len(bucket) < self.k and self._group_ok(bucket, group):
            self._insert(index, entry)
            return "added"
        if len(bucket) >= self.k and self._spare_ok(index, group):
            spare = self._spare[index]
            spare[contact.node_id] = entry
            while len(spare) > self.max_replacements:
                spare.popitem(last=False)
            return "replacement"
        return "refused"

    def _insert(self, index: int, entry: Entry) -> None:
        self._flat = None
        self._buckets[index][entry.contact.node_id] = entry
        self._by_addr[entry.contact.addr] = entry.contact.node_id
        if entry.group is not None:
            self._groups[entry.group] += 1
        self._spare[index].pop(entry.contact.node_id, None)

    def seen(self, node_id: bytes, now: float) -> bool:
        """Note that a contact answered or asked us; True if it is in the table."""
        index = self.bucket_of(node_id)
        entry = self._buckets[index].get(node_id)
        if entry is None:
            return False
        entry.seen = now
        entry.failures = 0
        self._touched[index] = now
        return True

    def failed(self, node_id: bytes) -> bool:
        """A contact missed an answer; it is removed (True) after ``MAX_FAILURES`` in a row,
        or at once when a proven newcomer waits for its place."""
        index = self.bucket_of(node_id)
        entry = self._buckets[index].get(node_id)
        if entry is None:
            return False
        entry.failures += 1
        if entry.failures >= MAX_FAILURES or self._spare[index]:
            return self.remove(node_id)
        return False

    def suspects(self, now: float, quiet_for: float) -> list[Contact]:
        """Contacts that missed their last answer or were not heard from for ``quiet_for``
        seconds (BEP 5's "questionable" nodes): refresh pings them."""
        return [e.contact for b in self._buckets for e in b.values()
                if e.failures > 0 or now - e.seen >= quiet_for]

    def remove(self, node_id: bytes) -> bool:
        """Drop a contact (it failed); promote the freshest spare that fits. True if held."""
        index = self.bucket_of(node_id)
        bucket = self._buckets[index]
        entry = bucket.pop(node_id, None)
        self._spare[index].pop(node_id, None)
        if entry is None:
            return False
        self._flat = None
        self._by_addr.pop(entry.contact.addr, None)
        if entry.group is not None:
            self._groups[entry.group] -= 1
            if self._groups[entry.group] <= 0:
                del self._groups[entry.group]
        for spare in reversed(list(self._spare[index].values())):
            if self._group_ok(bucket, spare.group) and spare.contact.addr not in self._by_addr:
                self._insert(index, spare)
                break
        return True

    def contacts(self) -> list[Contact]:
        return [e.contact for b in self._buckets for e in b.values()]

    def entries(self) -> Iterator[tuple[int, Entry]]:
        for index, bucket in enumerate(self._buckets):
            for entry in bucket.values():
                yield index, entry

    def closest(self, target: bytes, count: int | None = None,
                exclude: tuple[str, int] | None = None) -> list[Contact]:
        """The ``count`` (default k) contacts nearest ``target`` by XOR (exact, all buckets);
        contacts that missed their last answer only if there are not enough others."""
        goal = int.from_bytes(target, "big")
        if self._flat is None:
            self._flat = [e for b in self._buckets for e in b.values()]
        pool = self._flat if exclude is None else [e for e in self._flat if e.contact.addr != exclude]
        want = count or self.k
        best = heapq.nsmallest(want + 1, pool, key=lambda e: (e.failures > 0, e.ident ^ goal))
        best = [e for e in best if e.ident != goal][:want]
        return [e.contact for e in sorted(best, key=lambda e: e.ident ^ goal)]

    def sample(self, count: int, rng: random.Random | None = None) -> list[Contact]:
        everyone = self.contacts()
        return (rng or random).sample(everyone, min(count, len(everyone)))

    def refresh_targets(self, now: float, idle: float, rng: random.Random | None = None) -> list[bytes]:
        """A random id in each non-empty bucket untouched for ``idle`` seconds (Kademlia
        §2.3), plus one random id anywhere (it finds buckets we know nothing about)."""
        rng = rng or random.Random()
        out = [self.random_id_in(i, rng) for i, bucket in enumerate(self._buckets)
               if bucket and now - self._touched[i] >= idle]
        out.append(rng.getrandbits(ID_BITS).to_bytes(ID_BYTES, "big"))
        return out

    def random_id_in(self, index: int, rng: random.Random) -> bytes:
        """A random id sharing exactly ``index`` leading bits with ours."""
        flip = 1 << (ID_BITS - 1 - index)
        low = rng.getrandbits(ID_BITS - 1 - index) if index < ID_BITS - 1 else 0
        value = ((self._own ^ flip) >> (ID_BITS - 1 - index) << (ID_BITS - 1 - index)) | low
        return value.to_bytes(ID_BYTES, "big")

    def bucket_rows(self, now: float) -> list[dict[str, object]]:
        """Per-bucket summary for the status document (non-empty buckets only)."""
        return [
            {"index": i, "depth": i, "peers": len(b), "replacements": len(self._spare[i]),
             "idle": round(now - self._touched[i], 1)}
            for i, b in enumerate(self._buckets) if b or self._spare[i]
        ]


# -- remembered contacts: kept across restarts ------------------------------------------------
#
# A node that forgot every peer when it stopped could only rejoin through its configured
# bootstrap peers, and stayed alone once those had moved. So a node with a state directory
# keeps ``PEERS_FILE``: table contacts and its UDP port, written by ``node.py`` now and then
# and at stop, read at start. Rules (docs/dht-security.md, "Remembered peers"):
# 6. Only table contacts are written (they proved their id and passed the diversity limits),
#    longest in the table first; a remembered contact is only a seed, challenged with a
#    ``hello`` at start like a bootstrap peer.
# 7. Bounded whatever peers send: ``REMEMBER_PEERS`` entries, ``PEERS_PER_GROUP`` per /24
#    (/48), IP literals only; a file over ``PEERS_MAX_BYTES`` is not read.
# 8. Stale entries cost bounded time: seeds are asked at once, and an entry that missed
#    ``PEER_MAX_MISSES`` start-ups in a row or was unseen for ``PEER_MAX_AGE`` is dropped.
#    A corrupt file or a forged entry is ignored, never fatal.
#
# File (JSON)::
#
#     {"version": 1, "port": <our UDP port>, "saved_at": <unix s>,
#      "peers": [[id_hex, host, port, pk_hex, nonce_hex, seen, misses], ...]}

PEERS_FILE = "dht-peers.json"
PEERS_FORMAT = 1
REMEMBER_PEERS = 32
"""Entries kept (and seeds tried at start besides the configured bootstrap peers)."""
PEERS_PER_GROUP = 3
"""Entries of one network group (/24, /48), as the routing table's per-table limit."""
PEERS_MAX_BYTES = 32 * 1024
"""A file larger than this is not read (an entry is at most ~250 bytes)."""
PEER_MAX_MISSES = 3
"""Start-ups in a row an entry may fail to answer before it is forgotten."""
PEER_MAX_AGE = 30 * 86400.0
"""Seconds since an entry was last seen after which it is forgotten."""
Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Remembered:
    """One remembered contact: when it was last heard from (wall clock) and how many
    start-ups in a row it did not answer."""

    contact: Contact
    seen: float
    misses: int = 0


@dataclass(frozen=True, slots=True)
class PeerFile:
    """What a peers file held: our UDP port last time (0: none) and the contacts."""

    port: int = 0
    peers: tuple[Remembered, ...] = ()


def encode_peers(peers: Sequence[Remembered], port: int, now: float) -> bytes:
    """The file's bytes for ``peers`` (already bounded by ``remember``)."""
    rows = [[r.contact.node_id.hex(), r.contact.host, r.contact.port, r.contact.pk.hex(),
             r.contact.nonce.hex(), round(r.seen, 3), r.misses] for r in peers[:REMEMBER_PEERS]]
    doc = {"version": PEERS_FORMAT, "port": port, "saved_at": round(now, 3), "peers": rows}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def decode_peers(data: bytes, *, bits: int = PUZZLE_BITS) -> tuple[PeerFile, int]:
    """Parse a peers file; return it and how many entries were dropped as malformed or
    forged (an id that does not match its key and puzzle). Raises ValueError if the file
    as a whole is unusable (too large, not JSON, another version)."""
    if len(data) > PEERS_MAX_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {PEERS_MAX_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("version") != PEERS_FORMAT:
        raise ValueError("not a version 1 peers file")
    port = doc.get("port", 0)
    if type(port) is not int or not 0 <= port < 65536:
        port = 0
    rows = doc.get("peers")
    if not isinstance(rows, list):
        raise ValueError("no peer list")
    peers: list[Remembered] = []
    dropped = 0
    for row in rows[:REMEMBER_PEERS]:
        entry = _peer_entry(row, bits)
        if entry is None:
            dropped += 1
        else:
            peers.append(entry)
    dropped += max(0, len(rows) - REMEMBER_PEERS)
    return PeerFile(port=port, peers=tuple(peers)), dropped


def _peer_entry(row: object, bits: int) -> Remembered | None:
    if not isinstance(row, list) or len(row) != 7:
        return None
    id_hex, host, port, pk_hex, nonce_hex, seen, misses = row
    if not all(isinstance(x, str) and len(x) <= 64 for x in (id_hex, pk_hex, nonce_hex)):
        return None
    if type(seen) not in (int, float) or not math.isfinite(seen) or type(misses) is not int:
        return None
    try:
        contact = decode_contact([bytes.fromhex(id_hex), host, port, bytes.fromhex(pk_hex),
                                  bytes.fromhex(nonce_hex)], bits=bits)
        group_of(contact.host)
    except (ValueError, BadAnswer):
        return None
    return Remembered(contact, float(seen), max(0, misses))


def join_seeds(bootstrap: Sequence[Addr], remembered: Sequence[Remembered],
               own: Addr | None = None) -> list[Addr]:
    """Addresses to join through: the configured bootstrap peers, then the remembered ones
    (in file order), each once, never ourselves."""
    out: dict[Addr, None] = {}
    for addr in [*bootstrap, *(r.contact.addr for r in remembered[:REMEMBER_PEERS])]:
        if addr != own:
            out.setdefault(addr, None)
    return list(out)


def after_join(remembered: Sequence[Remembered], answered: Iterable[Addr], now: float, *,
               start: bool = True) -> list[Remembered]:
    """The entries after a join attempt: those that answered were seen now; with ``start``
    (the join at start-up, not a retry while alone) the others missed one more start-up."""
    ok = set(answered)
    return [replace(r, seen=now, misses=0) if r.contact.addr in ok
            else replace(r, misses=r.misses + 1) if start else r
            for r in remembered]


def remember(table: Iterable[tuple[Contact, float, float]], previous: Sequence[Remembered], now: float,
             *, limit: int = REMEMBER_PEERS) -> list[Remembered]:
    """The entries to write: routing-table contacts ``(contact, added, seen)``, longest in
    the table first (Kademlia's bet: a node up for long stays up, and peers that arrived late
    -- say, a swarm of new ids -- cannot push the old ones out), then earlier entries not in
    the table that are neither too old nor missed too often; one per id and address,
    ``PEERS_PER_GROUP`` per network group, ``limit`` in all (pure)."""
    fresh = [Remembered(c, seen, 0) for c, _, seen in sorted(table, key=lambda t: t[1])]
    old = [r for r in previous if r.misses < PEER_MAX_MISSES and now - r.seen <= PEER_MAX_AGE]
    out: list[Remembered] = []
    ids: set[bytes] = set()
    addrs: set[Addr] = set()
    groups: Counter[str] = Counter()
    for entry in [*fresh, *old]:
        contact = entry.contact
        if contact.node_id in ids or contact.addr in addrs:
            continue
        group = group_of(contact.host)
        if group is not None and groups[group] >= PEERS_PER_GROUP:
            continue
        out.append(entry)
        ids.add(contact.node_id)
        addrs.add(contact.addr)
        if group is not None:
            groups[group] += 1
        if len(out) >= limit:
            break
    return out
