"""The planner's side of the community pool: pool shares, membership grants, status lines.

``seattle-installer build --pool PCT`` adds one pool share (``pool_share``);
``seattle-installer grant`` signs a researcher's membership credential (``make_grant``);
``seattle-installer status`` shows each pool vessel free or leased (``render_pool``).
Credentials are checked by every pool node (nodemanager/proto/pool.py, docs/pool.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from installer.errors import SpecError
from installer.planner.spec import STEP, VesselShare
from nodemanager.errors import BadPoolRecord
from nodemanager.proto.pool import MAX_VESSELS, Credential, sign_credential
from seattlecore import KeyPair, PublicKey

MAX_DAYS = 3650.0
DEFAULT_DAYS = 30.0
"""Short lifetimes are the revocation story: a credential not renewed by the planner lapses."""


def pool_share(percent: int, planner: PublicKey) -> VesselShare:
    """The pool's share of a donation (``--pool PCT``)."""
    if percent % STEP or not STEP <= percent <= 100:
        raise SpecError(f"--pool must be a multiple of {STEP} % from 10 to 100, got {percent}")
    return VesselShare(percent=percent, owner=planner, pool=True)


DEFAULT_OPEN_WORK = 22
"""Leading zero bits asked per open-pool acquisition (docs/pool.md, Open pool: seconds of
one CPU each)."""


def make_grant(planner: KeyPair, researcher: PublicKey | None, *, vessels: int, days: float,
               now: float, serial: int | None = None,
               work: int = 0) -> tuple[Credential, bytes]:
    """A signed credential: ``researcher`` may hold ``vessels`` leases for ``days`` days.
    With ``work`` (bits) and no researcher: the open pool's credential, for any key."""
    if (researcher is None) != bool(work):
        raise SpecError("name a researcher, or open the pool with --open (not both)")
    if not 0 < days <= MAX_DAYS:
        raise SpecError(f"--days must be in (0, {MAX_DAYS:.0f}], got {days}")
    if not 1 <= vessels <= MAX_VESSELS:
        raise SpecError(f"--vessels must be 1..{MAX_VESSELS}, got {vessels}")
    number = int.from_bytes(os.urandom(8), "big") >> 1 if serial is None else serial
    try:
        cred = Credential(pool=planner.public, researcher=researcher or planner.public,
                          vessels=vessels, issued=round(now, 3),
                          expires=round(now + days * 86400, 3), serial=number, work=work)
    except BadPoolRecord as exc:
        raise SpecError(str(exc)) from exc
    return cred, sign_credential(planner, cred)


def render_pool(pool: Mapping[str, Any] | None, now: float) -> list[str]:
    """Status lines: the pool and each pool vessel, free or leased to whom until when."""
    if not pool:
        return []
    key = pool.get("key")
    name = key.hex()[:16] if isinstance(key, bytes) else "?"
    vessels = pool.get("vessels") or {}
    leased = sum(1 for lease in vessels.values() if lease)
    lines = [f"pool {name}...: {len(vessels)} vessels, {len(vessels) - leased} free, "
             f"{leased} leased (lease {float(pool.get('lease', 0)) / 3600:.1f} h, "
             f"at most {float(pool.get('max_lease', 0)) / 86400:.1f} days)"]
    for name, lease in sorted(vessels.items()):
        if not lease:
            lines.append(f"  {name:<5} free")
            continue
        who = lease.get("researcher")
        left = float(lease.get("deadline", 0)) - now
        lines.append(f"  {name:<5} leased to {who.hex()[:8] if isinstance(who, bytes) else '?'}"
                     f" for {max(0.0, left) / 60:.0f} more minutes")
    if pool.get("given_back"):
        lines.append(f"  {pool['given_back']} leases given back for overshooting a quota")
    if pool.get("revocations"):
        lines.append(f"  revocation list {pool['revocations']}: {pool.get('revoked', 0)} "
                     "credential serials revoked")
    return lines
