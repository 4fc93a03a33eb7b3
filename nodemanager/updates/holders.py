"""Who to ask for update files, and in which order; what a check is doing (pure: no I/O).

A check asks *holders* (peers advertising the update channel, plus the local inbox). An
attacker can advertise as many holders as the DHT keeps, lie, stall or drip. So:

- ``FetchPolicy`` bounds time: a whole file must arrive within ``file_deadline(size)``
  (a base for the connection and header, then at least ``floor_rate`` bytes/s), a whole
  check within ``check_deadline``; a second holder is started for a file every
  ``hedge_after`` seconds while none has delivered it (hedged requests).
- ``HolderBook`` remembers across checks how each holder behaved (served verified files,
  slow, lying) and orders the next check's holders: known-good first (they keep
  ``reserved_good`` places that new adverts cannot take), then the rest in an order an
  attacker cannot steer: one holder per /24 network in turn, each group and each holder
  within it in random order (the service seeds its generator from ``os.urandom``).
- ``CheckProgress`` is what status shows while a check runs: its phase and elapsed time,
  and every holder tried with what became of it.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "not_found", "stale", "slow", "lying", "unreachable"]
DROPPING: frozenset[str] = frozenset({"slow", "lying", "unreachable"})
"""Outcomes that drop a holder for the rest of the check."""
ROOT_CAP = 64 * 1024
TIMESTAMP_CAP = 16 * 1024
SNAPSHOT_CAP = 256 * 1024
TARGETS_CAP = 1024 * 1024
"""ngclient's size caps for metadata without a listed length (ours are a few KiB)."""
FORGET_AFTER = 5
"""Checks after which a slow or lying mark no longer demotes a holder."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPolicy:
    """The time bounds of a check (docs/updates.md "What is guaranteed" gives the numbers)."""

    base_timeout: float = 5.0
    """Connect, send the request and read the answer's header."""
    floor_rate: float = 64 * 1024
    """Bytes/s a holder must sustain over a whole file, or it is dropped as slow."""
    hedge_after: float = 2.0
    """While no holder has delivered a file, start another one this often."""
    probe_grace: float = 1.0
    """``N+1.root.json`` is settled absent when 2 holders said "not held" and this passed."""
    check_deadline: float = 300.0
    max_holders: int = 16
    reserved_good: int = 8
    max_parallel: int = 8
    """Downloads of one file at a time (hedges; the root probe and timestamp ask everyone)."""

    def file_deadline(self, size: int) -> float:
        """Seconds from asking until a file of ``size`` bytes must be complete."""
        return self.base_timeout + max(0, size) / self.floor_rate

    def wide_bound(self, holders: int, cap: int) -> float:
        """Worst case for a file asked of every holder (root probe, timestamp)."""
        return math.ceil(max(1, holders) / self.max_parallel) * self.file_deadline(cap)

    def file_bound(self, bad: int, cap: int) -> float:
        """Worst case for a hedged file of at most ``cap`` bytes with ``bad`` holders that lie
        or stall ahead of an honest one (each ties up a slot for at most one deadline)."""
        return (bad * self.hedge_after
                + (math.ceil(bad / self.max_parallel) + 1) * self.file_deadline(cap))

    def check_bound(self, holders: int, bad: int, caps: Sequence[int], *,
                    roots: int = 1) -> float:
        """The time a check needs at most when ``bad`` of its ``holders`` lie or stall and
        one honest holder delivers at ``floor_rate`` or faster: ``roots`` root probes, the
        timestamp, then the hedged files of at most ``caps`` bytes (docs/updates.md)."""
        return (roots * self.wide_bound(holders, ROOT_CAP)
                + self.wide_bound(holders, TIMESTAMP_CAP)
                + sum(self.file_bound(bad, cap) for cap in caps))


def net24(name: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of a holder named ``host:port``."""
    host = name.rpartition(":")[0].strip("[]") or name
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name, not an address: its own group
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def diverse_order(names: Iterable[str], rng: random.Random) -> list[str]:
    """One holder per network in turn; networks and holders within each in random order."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        groups.setdefault(net24(name), []).append(name)
    keys = sorted(groups)
    rng.shuffle(keys)
    for key in keys:
        rng.shuffle(groups[key])
    out: list[str] = []
    while any(groups.values()):
        for key in keys:
            if groups[key]:
                out.append(groups[key].pop(0))
    return out


@dataclass(slots=True)
class HolderRecord:
    """What one holder did in earlier checks."""

    good_at: int | None = None
    """The check number in which it last delivered a file that verified."""
    bad_at: int | None = None
    """The check number in which it was last dropped as slow or lying."""
    last: str = ""


@dataclass(slots=True)
class HolderBook:
    """Memory of holders across checks (in the service; lost on restart, which is safe)."""

    records: dict[str, HolderRecord] = field(default_factory=dict)
    checks: int = 0
    max_records: int = 4096

    def begin(self) -> int:
        self.checks += 1
        return self.checks

    def note(self, name: str, outcome: str, detail: str = "") -> None:
        record = self.records.setdefault(name, HolderRecord())
        if outcome == "ok":
            record.good_at = self.checks
        elif outcome in ("slow", "lying"):
            record.bad_at = self.checks
        record.last = f"{outcome}: {detail}"[:200] if detail else outcome
        if len(self.records) > self.max_records:  # forget the least recently useful
            oldest = min(self.records, key=lambda n: max(self.records[n].good_at or 0,
                                                         self.records[n].bad_at or 0))
            del self.records[oldest]

    def tier(self, name: str) -> int:
        """0: verified before and not misbehaving since; 1: unknown; 2: recently slow/lying."""
        record = self.records.get(name)
        if record is None:
            return 1
        recent_bad = record.bad_at is not None and self.checks - record.bad_at < FORGET_AFTER
        if record.good_at is not None and (record.bad_at is None or record.good_at > record.bad_at):
            return 0
        return 2 if recent_bad else 1

    def choose(self, candidates: Sequence[str], policy: FetchPolicy,
               rng: random.Random) -> list[str]:
        """At most ``max_holders`` of ``candidates``, in the order a check asks them.

        Known-good holders come first and keep up to ``reserved_good`` places however many
        new holders advertise; the remaining places go to the others in diverse random
        order, recently misbehaving holders last."""
        tiers: dict[int, list[str]] = {0: [], 1: [], 2: []}
        for name in dict.fromkeys(candidates):
            tiers[self.tier(name)].append(name)
        good = diverse_order(tiers[0], rng)
        chosen = good[:policy.reserved_good]
        rest = good[policy.reserved_good:] + diverse_order(tiers[1], rng) + diverse_order(tiers[2], rng)
        return (chosen + rest)[:policy.max_holders]

    def is_good(self, name: str) -> bool:
        return self.tier(name) == 0


@dataclass(slots=True)
class HolderProgress:
    """One holder during a check: the files it delivered and why it was dropped."""

    name: str
    delivered: int = 0
    state: str = "waiting"
    """``waiting`` (not asked yet), ``asked``, ``ok``, or a dropping outcome."""
    reason: str = ""
    not_held: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"holder": self.name, "state": self.state, "delivered": self.delivered,
                "not_held": self.not_held, "reason": self.reason}


@dataclass(slots=True)
class CheckProgress:
    """The check running now, as status shows it."""

    number: int
    started_at: float
    """Wall-clock time (for people); ``elapsed`` uses the monotonic times given."""
    started_mono: float
    phase: str = "finding holders"
    holders: dict[str, HolderProgress] = field(default_factory=dict)
    attempts: int = 0

    def add(self, names: Iterable[str]) -> None:
        for name in names:
            self.holders.setdefault(name, HolderProgress(name))

    def record(self, name: str, outcome: str, detail: str = "") -> None:
        holder = self.holders.setdefault(name, HolderProgress(name))
        if outcome == "ok":
            holder.delivered += 1
            if holder.state not in DROPPING:
                holder.state = "ok"
        elif outcome in ("not_found", "stale"):
            holder.not_held += 1
            if holder.state == "waiting":
                holder.state = "asked"
            if outcome == "stale":
                holder.reason = detail[:300]
        elif outcome == "asked":
            if holder.state == "waiting":
                holder.state = "asked"
        else:
            holder.state = outcome
            holder.reason = detail[:300]

    def dropped(self, kinds: frozenset[str] = DROPPING) -> list[str]:
        return [h.name for h in self.holders.values() if h.state in kinds]

    def to_dict(self, now_mono: float) -> dict[str, Any]:
        return {"number": self.number, "started_at": self.started_at, "phase": self.phase,
                "elapsed": round(now_mono - self.started_mono, 2), "attempts": self.attempts,
                "holders": [h.to_dict() for h in self.holders.values()]}
