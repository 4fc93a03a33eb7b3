"""A pool's revocation list in the DHT (pure): pages signed by the planner, read by nodes.

The planner revokes credentials by serial without a server (docs/pool.md, Revocation): the
list ``(pool, seq, serials)`` is cut into at most ``MAX_PAGES`` pages, each an ordinary
advert (overlay/advert.py) **signed by the pool key itself** (``node_key == pool``), stored
under the pool's revocation key (a hash of the pool key: nobody holds its private half),
vessel ``revoked-I``, with the page in the advert's opaque tag::

    {"k": "revoked", "p": pool, "q": seq, "i": page, "n": pages, "s": serials}

``serials`` is the concatenation of 8-byte big-endian serials (at most ``PAGE_SERIALS``).
A node takes the highest ``q`` whose pages are all present and never goes back to a lower
one (``newer``): a replayed old list cannot un-revoke.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from nodemanager import errors
from overlay import Advert, make_advert
from seattlecore import CoreError, KeyPair, PublicKey

REVOCATION_KEY_DOMAIN = b"seattle/pool/revoked/v1\x00"
PAGE_SERIALS = 40
"""Serials per page: a page's tag stays under the overlay's 400-byte tag limit."""
MAX_PAGES = 8
"""Pages per list: within the overlay's 16 records per publisher and key."""
MAX_REVOKED = PAGE_SERIALS * MAX_PAGES
MAX_SEQ = (1 << 63) - 1
ADDRESS = "revocations.invalid:9"
"""Adverts need an address; nobody dials a revocation page."""
PAGE_PREFIX = "revoked-"


def revocation_key(pool: PublicKey) -> PublicKey:
    """The key a pool's revocation pages are stored under."""
    return PublicKey(hashlib.blake2b(REVOCATION_KEY_DOMAIN + pool.raw, digest_size=32).digest())


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationList:
    """Credential serials of ``pool`` revoked as of list number ``seq`` (higher wins)."""

    pool: PublicKey
    seq: int
    serials: frozenset[int]

    def __post_init__(self) -> None:
        if type(self.seq) is not int or not 0 <= self.seq <= MAX_SEQ:
            raise errors.BadPoolRecord("a revocation list's seq must be a 63-bit integer")
        if len(self.serials) > MAX_REVOKED:
            raise errors.BadPoolRecord(
                f"a revocation list holds at most {MAX_REVOKED} serials, got {len(self.serials)}"
                " (short credential lifetimes keep it small: docs/pool.md)")
        if not all(type(s) is int and 0 <= s < 1 << 63 for s in self.serials):
            raise errors.BadPoolRecord("serials must be non-negative 63-bit integers")


def empty(pool: PublicKey) -> RevocationList:
    return RevocationList(pool=pool, seq=0, serials=frozenset())


def _pages(revoked: RevocationList) -> list[list[int]]:
    ordered = sorted(revoked.serials)
    return [ordered[i:i + PAGE_SERIALS] for i in range(0, len(ordered), PAGE_SERIALS)] or [[]]


def encode_page(revoked: RevocationList, index: int, count: int, serials: list[int]) -> bytes:
    return bytes(msgpack.packb({"k": "revoked", "p": revoked.pool.raw, "q": revoked.seq,
                                "i": index, "n": count,
                                "s": b"".join(s.to_bytes(8, "big") for s in serials)},
                               use_bin_type=True))


def sign_pages(planner: KeyPair, revoked: RevocationList, *, publish_seq: int,
               expires_at: float) -> list[bytes]:
    """The list as advert blobs signed by the pool key. ``publish_seq`` orders republishes
    of records in the DHT (epoch milliseconds); ``expires_at`` is at most the overlay's TTL."""
    if planner.public != revoked.pool:
        raise errors.BadPoolRecord("a revocation list must be signed by its pool's key")
    pages = _pages(revoked)
    return [make_advert(planner, address=ADDRESS, vessel=f"{PAGE_PREFIX}{i}",
                        user_key=revocation_key(revoked.pool), seq=publish_seq,
                        expires_at=expires_at, tag=encode_page(revoked, i, len(pages), page))
            for i, page in enumerate(pages)]


@dataclass(frozen=True, slots=True)
class _Page:
    seq: int
    index: int
    count: int
    serials: tuple[int, ...]


def _decode_page(advert: Advert, pool: PublicKey) -> _Page:
    """One page of ``pool``'s list; BadPoolRecord if the advert is none (forged, other pool,
    malformed, oversized)."""
    if advert.node_key != pool or advert.user_key != revocation_key(pool) or advert.withdrawn:
        raise errors.BadPoolRecord("not signed by the pool key under its revocation key")
    try:
        fields: Any = msgpack.unpackb(advert.tag, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise errors.BadPoolRecord("revocation page is not msgpack") from exc
    if not isinstance(fields, dict) or set(fields) != set("kpqins") or fields["k"] != "revoked":
        raise errors.BadPoolRecord("not a revocation page")
    try:
        if PublicKey(fields["p"]) != pool:
            raise errors.BadPoolRecord("revocation page of another pool")
    except (CoreError, TypeError) as exc:
        raise errors.BadPoolRecord("revocation page pool key") from exc
    seq, index, count, blob = fields["q"], fields["i"], fields["n"], fields["s"]
    if not all(type(v) is int for v in (seq, index, count)) or type(blob) is not bytes:
        raise errors.BadPoolRecord("revocation page field types")
    if not (0 <= seq <= MAX_SEQ and 0 <= index < count <= MAX_PAGES):
        raise errors.BadPoolRecord("revocation page numbers out of range")
    if len(blob) % 8 or len(blob) > 8 * PAGE_SERIALS:
        raise errors.BadPoolRecord("revocation page serials")
    if advert.vessel != f"{PAGE_PREFIX}{index}":
        raise errors.BadPoolRecord("revocation page stored in another page's slot")
    serials = tuple(int.from_bytes(blob[i:i + 8], "big") for i in range(0, len(blob), 8))
    if any(s >= 1 << 63 for s in serials):
        raise errors.BadPoolRecord("revocation serial out of range")
    return _Page(seq, index, count, serials)


def read_list(adverts: Iterable[Advert], pool: PublicKey) -> RevocationList | None:
    """The highest-numbered complete list of ``pool`` among looked-up adverts (None: none).
    Pages that are forged, of another pool, malformed or oversized are ignored."""
    by_seq: dict[int, dict[int, _Page]] = {}
    for advert in adverts:
        try:
            page = _decode_page(advert, pool)
        except errors.BadPoolRecord:
            continue
        by_seq.setdefault(page.seq, {})[page.index] = page
    for seq in sorted(by_seq, reverse=True):
        pages = by_seq[seq]
        counts = {page.count for page in pages.values()}
        if len(counts) == 1 and len(pages) == counts.pop():
            serials = frozenset(s for page in pages.values() for s in page.serials)
            return RevocationList(pool=pool, seq=seq, serials=serials)
    return None


def newer(current: RevocationList, found: RevocationList | None) -> RevocationList | None:
    """``found`` if it replaces ``current`` (a strictly higher seq), else None."""
    if found is None or found.pool != current.pool or found.seq <= current.seq:
        return None
    return found


def to_record(revoked: RevocationList) -> dict[str, object]:
    """The list as a JSON-able map (node state, planner's list file)."""
    return {"pool": revoked.pool.to_text(), "seq": revoked.seq,
            "serials": sorted(revoked.serials)}


def from_record(raw: object) -> RevocationList:
    try:
        if not isinstance(raw, dict):
            raise TypeError("not a map")
        seq = raw["seq"]
        serials = raw["serials"]
        if not isinstance(serials, list) or (isinstance(seq, float) and not math.isfinite(seq)):
            raise TypeError("fields")
        return RevocationList(pool=PublicKey.from_text(raw["pool"]), seq=seq,
                              serials=frozenset(serials))
    except (KeyError, TypeError, ValueError, CoreError) as exc:
        raise errors.BadPoolRecord(f"revocation list record: {exc}") from exc
