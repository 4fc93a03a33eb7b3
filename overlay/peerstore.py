"""Remembered peers: a bounded set of proven DHT contacts kept across restarts (pure core).

A node that forgets every peer when it stops can only rejoin through its configured
bootstrap peers; when those have moved or gone, it stays alone. So a node with a state
directory keeps ``PEERS_FILE``: the routing table's contacts (freshest first) and the
UDP port it had, written atomically now and then and at stop (``node.py``), read at start.

What keeps it safe (docs/dht-security.md, "Remembered peers"):

* Only routing-table contacts are written (longest-known first), and those proved their
  id (a signed ``hello``) and were admitted under the diversity limits; NATed nodes (client
  mode) are never in a table. A remembered contact is only a *seed*: at start it is
  challenged with a ``hello`` like a bootstrap peer, and only the node that answers from
  that address enters the table.
* Bounded whatever peers send: at most ``MAX_PEERS`` entries, at most ``PER_GROUP`` per /24
  (/48), hosts are IP literals; the file is at most ``MAX_FILE_BYTES`` and a larger one is
  ignored unread.
* Stale entries cost bounded time: all seeds are asked at once (one ``hello`` timeout, twice
  if nobody answers), and an entry that missed ``MAX_MISSES`` start-ups in a row, or was not
  seen for ``MAX_AGE`` seconds, is dropped.
* A corrupt file (or entries with forged ids) is ignored (entry by entry where possible):
  the node starts as if it had none.

File format (JSON, ``version`` 1)::

    {"version": 1, "port": <our UDP port>, "saved_at": <unix s>,
     "peers": [[id_hex, host, port, pk_hex, nonce_hex, seen, misses], ...]}
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from overlay.answers import Contact, decode_contact
from overlay.errors import BadAnswer
from overlay.netgroup import group_of
from overlay.nodeid import PUZZLE_BITS

PEERS_FILE = "dht-peers.json"
FORMAT_VERSION = 1
MAX_PEERS = 32
"""Entries kept (and seeds tried at start besides the configured bootstrap peers)."""
PER_GROUP = 3
"""Entries of one network group (/24, /48), as the routing table's per-table limit."""
MAX_FILE_BYTES = 32 * 1024
"""A file larger than this is not read (an entry is at most ~250 bytes)."""
MAX_MISSES = 3
"""Start-ups in a row an entry may fail to answer before it is forgotten."""
MAX_AGE = 30 * 86400.0
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


def encode(peers: Sequence[Remembered], port: int, now: float) -> bytes:
    """The file's bytes for ``peers`` (already bounded by ``remember``)."""
    rows = [[r.contact.node_id.hex(), r.contact.host, r.contact.port, r.contact.pk.hex(),
             r.contact.nonce.hex(), round(r.seen, 3), r.misses] for r in peers[:MAX_PEERS]]
    doc = {"version": FORMAT_VERSION, "port": port, "saved_at": round(now, 3), "peers": rows}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def decode(data: bytes, *, bits: int = PUZZLE_BITS) -> tuple[PeerFile, int]:
    """Parse a peers file; return it and how many entries were dropped as malformed or
    forged (an id that does not match its key and puzzle). Raises ValueError if the file
    as a whole is unusable (too large, not JSON, another version)."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {MAX_FILE_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError("not a version 1 peers file")
    port = doc.get("port", 0)
    if type(port) is not int or not 0 <= port < 65536:
        port = 0
    rows = doc.get("peers")
    if not isinstance(rows, list):
        raise ValueError("no peer list")
    peers: list[Remembered] = []
    dropped = 0
    for row in rows[:MAX_PEERS]:
        entry = _entry(row, bits)
        if entry is None:
            dropped += 1
        else:
            peers.append(entry)
    dropped += max(0, len(rows) - MAX_PEERS)
    return PeerFile(port=port, peers=tuple(peers)), dropped


def _entry(row: object, bits: int) -> Remembered | None:
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


def seeds(bootstrap: Sequence[Addr], remembered: Sequence[Remembered], own: Addr | None = None) -> list[Addr]:
    """Addresses to join through: the configured bootstrap peers, then the remembered ones
    (freshest first), each once, never ourselves."""
    out: dict[Addr, None] = {}
    for addr in [*bootstrap, *(r.contact.addr for r in remembered[:MAX_PEERS])]:
        if addr != own:
            out.setdefault(addr, None)
    return list(out)


def after_join(remembered: Sequence[Remembered], answered: Iterable[Addr], now: float) -> list[Remembered]:
    """The entries after a join attempt: those that answered were seen now, the others
    missed one more start-up (pure)."""
    ok = set(answered)
    return [replace(r, seen=now, misses=0) if r.contact.addr in ok else replace(r, misses=r.misses + 1)
            for r in remembered]


def remember(table: Iterable[tuple[Contact, float, float]], previous: Sequence[Remembered], now: float,
             *, limit: int = MAX_PEERS) -> list[Remembered]:
    """The entries to write: routing-table contacts ``(contact, added, seen)``, longest in
    the table first (Kademlia's bet: a node up for long stays up, and peers that arrived late
    -- say, a swarm of new ids -- cannot push the old ones out), then earlier entries not in
    the table that are neither too old nor missed too often; one per id and address,
    ``PER_GROUP`` per network group, ``limit`` in all (pure)."""
    fresh = [Remembered(c, seen, 0) for c, _, seen in sorted(table, key=lambda t: t[1])]
    old = [r for r in previous if r.misses < MAX_MISSES and now - r.seen <= MAX_AGE]
    out: list[Remembered] = []
    ids: set[bytes] = set()
    addrs: set[Addr] = set()
    groups: Counter[str] = Counter()
    for entry in [*fresh, *old]:
        contact = entry.contact
        if contact.node_id in ids or contact.addr in addrs:
            continue
        group = group_of(contact.host)
        if group is not None and groups[group] >= PER_GROUP:
            continue
        out.append(entry)
        ids.add(contact.node_id)
        addrs.add(contact.addr)
        if group is not None:
            groups[group] += 1
        if len(out) >= limit:
            break
    return out
