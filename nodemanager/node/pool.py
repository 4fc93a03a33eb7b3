"""The community pool on one node (pure): configuration, leases, decisions, quota counting.

A pool vessel is owned by the node itself; a lease makes one researcher its only user until
``deadline`` (docs/pool.md). Everything here takes ``now``; the trio shell is
``poolservice.py`` and the SQLite rows are ``leases.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nodemanager import errors
from nodemanager.proto.pool import (
    CLOCK_SKEW,
    MAX_LEASE_EVER,
    LeaseTag,
    consent_valid,
    decode_tag,
)
from overlay import Advert
from seattlecore import CoreError, PublicKey

DEFAULT_LEASE = 4 * 3600.0
"""Seattle's Clearinghouse: 4 hours after acquisition..."""
DEFAULT_MAX_LEASE = 7 * 86400.0
"""...renewable up to 7 days."""
CLAIM_TTL = 30.0
"""Seconds a lease record published before the grant lives if the grant never comes (crash)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """Which of this node's vessels are in which pool, and the pool's lease policy."""

    key: PublicKey
    vessels: tuple[str, ...]
    lease: float = DEFAULT_LEASE
    max_lease: float = DEFAULT_MAX_LEASE

    def __post_init__(self) -> None:
        if not 0 < self.lease <= self.max_lease <= MAX_LEASE_EVER:
            raise errors.BadPoolRecord(
                f"pool leases need 0 < lease <= max_lease <= {MAX_LEASE_EVER:.0f} s")

    def to_json(self) -> str:
        return json.dumps({"key": self.key.to_text(), "vessels": list(self.vessels),
                           "lease": self.lease, "max_lease": self.max_lease})

    @classmethod
    def from_json(cls, text: str) -> PoolConfig:
        try:
            raw = json.loads(text)
            return cls(key=PublicKey.from_text(raw["key"]), vessels=tuple(raw["vessels"]),
                       lease=float(raw.get("lease", DEFAULT_LEASE)),
                       max_lease=float(raw.get("max_lease", DEFAULT_MAX_LEASE)))
        except (ValueError, KeyError, TypeError, CoreError) as exc:
            raise errors.BadPoolRecord(f"pool configuration: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """One granted lease, as persisted."""

    vessel: str
    researcher: PublicKey
    granted: float
    deadline: float
    consent_at: float
    consent: bytes
    serial: int
    quota: int
    credential_expires: float
    ending: bool = False
    """Set (and committed) before the vessel is wiped, so a crash mid-way finishes the end."""

    def tag(self, pool: PublicKey, *, tentative: bool = False) -> LeaseTag:
        return LeaseTag(pool=pool, granted=self.granted, deadline=self.deadline,
                        consent_at=self.consent_at, consent=self.consent, tentative=tentative)


def first_deadline(config: PoolConfig, requested: float | None, now: float) -> float:
    """The first lease: the pool's default, or less if asked."""
    return now + (config.lease if requested is None else min(requested, config.lease))


def renewed_deadline(config: PoolConfig, lease: Lease, requested: float | None,
                     now: float) -> float:
    """The deadline after a renewal, capped at ``granted + max_lease`` and the credential's
    expiry; never earlier than now. LeaseLimit if the lease is at its cap already."""
    wanted = now + (config.lease if requested is None else min(requested, config.lease))
    cap = min(lease.granted + config.max_lease, lease.credential_expires)
    deadline = min(wanted, cap)
    if deadline > lease.deadline:
        return deadline
    if lease.deadline < cap:  # asked for less than is left: nothing changes
        return lease.deadline
    raise errors.LeaseLimit(
        f"lease of {lease.vessel} cannot be renewed further: it ends at its longest "
        f"({config.max_lease / 86400:.1f} days after acquisition, or when the credential expires)")


def due(leases: Iterable[Lease], now: float,
        revoked: frozenset[int] = frozenset()) -> list[Lease]:
    """Leases to end now: past their deadline, interrupted while ending, or held under a
    revoked credential."""
    return [lease for lease in leases
            if lease.ending or lease.deadline <= now or lease.serial in revoked]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeenLease:
    """A valid lease record found in the DHT: the node and vessel it is on."""

    node: PublicKey
    vessel: str
    granted: float
    deadline: float
    tentative: bool = False
    """A claim whose grant is not decided yet."""

    @property
    def order(self) -> tuple[float, bytes, str]:
        """Oldest first; ties broken by node key and vessel (every node ranks alike)."""
        return (self.granted, self.node.raw, self.vessel)


def live_leases(adverts: Iterable[Advert], *, researcher: PublicKey, pool: PublicKey,
                now: float) -> list[SeenLease]:
    """The researcher's live leases in ``pool`` among looked-up adverts, oldest first.

    A record counts only with the researcher's own consent for that node and vessel, given
    within the longest lease before now: a node can neither invent leases for someone nor
    replay a consent for long (docs/pool.md, Threat model)."""
    seen: dict[tuple[bytes, str], SeenLease] = {}
    for advert in adverts:
        if advert.withdrawn or advert.user_key != researcher or not advert.tag:
            continue
        try:
            tag = decode_tag(advert.tag)
        except errors.BadPoolRecord:
            continue
        if not isinstance(tag, LeaseTag) or tag.pool != pool or tag.deadline <= now:
            continue
        if not now - MAX_LEASE_EVER - CLOCK_SKEW <= tag.consent_at <= now + CLOCK_SKEW:
            continue
        if tag.deadline > tag.consent_at + MAX_LEASE_EVER + CLOCK_SKEW:
            continue
        if not consent_valid(researcher, pool, advert.node_key, advert.vessel, tag.consent_at,
                             tag.consent):
            continue
        seen[(advert.node_key.raw, advert.vessel)] = SeenLease(
            node=advert.node_key, vessel=advert.vessel, granted=tag.granted,
            deadline=tag.deadline, tentative=tag.tentative)
    return sorted(seen.values(), key=lambda lease: lease.order)


def over_quota(seen: list[SeenLease], quota: int, node: PublicKey,
               mine: Mapping[str, Lease]) -> list[str]:
    """This node's vessels whose lease ranks past ``quota`` (the youngest give back).
    Claims not yet granted do not count: they may still be refused."""
    ranked = [s for s in seen if not s.tentative]
    known = {(s.node.raw, s.vessel) for s in ranked}
    for lease in mine.values():  # our own leases count even if the DHT lost their records
        if (node.raw, lease.vessel) not in known:
            ranked.append(SeenLease(node=node, vessel=lease.vessel, granted=lease.granted,
                                    deadline=lease.deadline))
    ranked.sort(key=lambda lease: lease.order)
    return [s.vessel for s in ranked[quota:] if s.node == node and s.vessel in mine]
