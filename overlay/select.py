"""Reader-side validation and choice between competing adverts (pure).

A storing node is untrusted, so a reader re-verifies every record it receives, keeps the
highest ``seq`` per (node, vessel) slot, and drops tombstones. Follows py-libp2p's
``Validator.validate/select`` split.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from overlay.advert import Advert, verify_advert
from overlay.errors import InvalidAdvert, RejectReason


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A record a reader refused, with why and who sent it."""

    reason: RejectReason
    detail: str
    source: str
    """``host:port`` of the DHT peer that returned it ("local" for our own store)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    candidates: tuple[Advert, ...]
    """Live adverts, one per (node, vessel), highest ``seq``, tombstones removed."""
    rejected: tuple[Rejection, ...]
    withdrawn: int
    """How many slots were won by a tombstone."""


def select_adverts(received: Iterable[tuple[str, bytes]], *, dht_key: bytes, now: float) -> Selection:
    """Verify ``(source, blob)`` pairs and choose the best record per slot."""
    best: dict[tuple[bytes, str], Advert] = {}
    rejected: dict[bytes, Rejection] = {}
    seen: set[bytes] = set()
    for source, blob in received:
        if isinstance(blob, bytes):
            if blob in seen:
                continue  # the same record from another holder: verified once
            seen.add(blob)
        try:
            advert = verify_advert(blob, dht_key=dht_key, now=now)
        except InvalidAdvert as exc:
            rejected[blob] = Rejection(reason=exc.reason, detail=exc.detail, source=source)
            continue
        held = best.get(advert.slot)
        if held is None or advert.seq > held.seq:
            best[advert.slot] = advert
    live = [a for a in best.values() if not a.withdrawn]
    live.sort(key=lambda a: (a.node_key.raw, a.vessel))
    return Selection(
        candidates=tuple(live),
        rejected=tuple(rejected.values()),
        withdrawn=len(best) - len(live),
    )
