"""The pool's leases in the node's SQLite state (I/O): one row per leased vessel.

A lease row and the vessel's user list change in the same transaction (``NodeState.commit``
with ``also``), so after a crash at any moment the vessel's user is the lessee exactly while
the lease row exists. The row's ``ending`` flag is committed before the vessel is wiped; a
restarted node finishes every lease that is ``ending`` or past its deadline.
"""

from __future__ import annotations

import json

from nodemanager import errors
from nodemanager.node.pool import Lease, PoolConfig
from nodemanager.node.state import NodeState, Statement
from nodemanager.proto.revocation import RevocationList, empty, from_record, to_record
from seattlecore import PublicKey

POOL_META = "pool"
REVOKED_META = "pool_revoked"

_DDL = """CREATE TABLE IF NOT EXISTS pool_leases (
    vessel TEXT PRIMARY KEY,
    researcher BLOB NOT NULL,
    granted REAL NOT NULL,
    deadline REAL NOT NULL,
    consent_at REAL NOT NULL,
    consent BLOB NOT NULL,
    serial INTEGER NOT NULL,
    quota INTEGER NOT NULL,
    credential_expires REAL NOT NULL,
    ending INTEGER NOT NULL DEFAULT 0
)"""


def load_config(state: NodeState) -> PoolConfig | None:
    text = state.get_meta(POOL_META)
    return None if text is None else PoolConfig.from_json(text)


def save_config(state: NodeState, config: PoolConfig) -> None:
    state.set_meta(POOL_META, config.to_json())


def load_revocations(state: NodeState, pool: PublicKey) -> RevocationList:
    """The highest revocation list this node adopted (an empty one if none or unreadable)."""
    text = state.get_meta(REVOKED_META)
    if text is None:
        return empty(pool)
    try:
        revoked = from_record(json.loads(text))
    except (ValueError, errors.BadPoolRecord):
        return empty(pool)
    return revoked if revoked.pool == pool else empty(pool)


def save_revocations(state: NodeState, revoked: RevocationList) -> None:
    state.set_meta(REVOKED_META, json.dumps(to_record(revoked)))


class LeaseBook:
    """The lease rows, with an in-memory copy (``leases``) equal to the table after commits."""

    def __init__(self, state: NodeState) -> None:
        self.state = state
        state.ensure_table(_DDL)
        self.leases: dict[str, Lease] = {}
        for row in state.query("SELECT vessel, researcher, granted, deadline, consent_at, "
                               "consent, serial, quota, credential_expires, ending "
                               "FROM pool_leases"):
            lease = Lease(vessel=str(row[0]), researcher=PublicKey(bytes(row[1])),
                          granted=float(row[2]), deadline=float(row[3]),
                          consent_at=float(row[4]), consent=bytes(row[5]),
                          serial=int(row[6]), quota=int(row[7]),
                          credential_expires=float(row[8]), ending=bool(row[9]))
            self.leases[lease.vessel] = lease

    @staticmethod
    def put(lease: Lease) -> Statement:
        return ("INSERT OR REPLACE INTO pool_leases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lease.vessel, lease.researcher.raw, lease.granted, lease.deadline,
                 lease.consent_at, lease.consent, lease.serial, lease.quota,
                 lease.credential_expires, int(lease.ending)))

    @staticmethod
    def delete(vessel: str) -> Statement:
        return ("DELETE FROM pool_leases WHERE vessel = ?", (vessel,))

    def committed(self, *, put: Lease | None = None, deleted: str | None = None) -> None:
        """Mirror a committed change in memory."""
        if deleted is not None:
            self.leases.pop(deleted, None)
        if put is not None:
            self.leases[put.vessel] = put

    def of(self, researcher: PublicKey) -> dict[str, Lease]:
        return {name: lease for name, lease in self.leases.items()
                if lease.researcher == researcher}
