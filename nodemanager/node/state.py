"""Persistent node state in SQLite (WAL): vessels, users, counters, seen nonces.

Invariants:
- Every change is one transaction (``BEGIN IMMEDIATE`` .. ``COMMIT``): a crash at any point
  leaves the last committed state. A signed request's nonce is inserted in the same
  transaction as the change it causes, so a replay after a crash is still refused and an
  accepted change is never lost without its nonce (or vice versa).
- ``sum(vessel resources) + offcuts_held * offcut`` is unchanged by any commit made from an
  ``api`` outcome (split adds one offcut, join removes one).
- ``vessels`` (the in-memory copy) equals the table contents after every commit.

WAL with ``synchronous=NORMAL`` survives a killed process (the WAL is in the OS cache); a
power cut may lose the last transactions but never corrupts the database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from nodemanager.errors import ReplayedNonce
from nodemanager.node.model import STATUSES, Change, Status, Vessel
from sandbox import DEFAULT_OFFCUT, ResourceTable, parse_resources
from seattlecore import PublicKey

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PRUNE_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vessels (
    name TEXT PRIMARY KEY,
    owner BLOB NOT NULL,
    owner_info TEXT NOT NULL,
    advertise INTEGER NOT NULL,
    resources TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_reason TEXT,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS vessel_users (
    vessel TEXT NOT NULL REFERENCES vessels(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY (vessel, position)
);
CREATE TABLE IF NOT EXISTS nonces (nonce BLOB PRIMARY KEY, ts REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_ts ON nonces(ts);
"""


Statement = tuple[str, tuple[object, ...]]
"""One SQL statement and its parameters."""


class StateError(Exception):
    """Raised when the state database is missing, of another schema version, or corrupt."""


class NodeState:
    """The node's SQLite database and an in-memory copy of its vessels."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._commits = 0
        self._migrate()
        self.vessels: dict[str, Vessel] = self._load_vessels()
        self.next_index = int(self._meta("next_index") or 1)
        self.offcuts_held = int(self._meta("offcuts_held") or 0)
        self.offcut: ResourceTable = parse_resources(self._meta("offcut") or "")

    def __enter__(self) -> NodeState:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # ---- schema and meta ----

    def _migrate(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            found = self._meta("schema_version")
            if found is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                self._set_meta("next_index", "1")
                self._set_meta("offcuts_held", "0")
                self._set_meta("offcut", DEFAULT_OFFCUT.to_text())
            elif int(found) != SCHEMA_VERSION:
                raise StateError(f"state schema version {found}, this code needs {SCHEMA_VERSION}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def bootstrap(self) -> list[str]:
        return list(json.loads(self._meta("bootstrap") or "[]"))

    def set_bootstrap(self, peers: Iterable[str]) -> None:
        with self._transaction():
            self._set_meta("bootstrap", json.dumps(list(peers)))

    @property
    def ports(self) -> dict[str, int]:
        """The ports this node listened on last time (``tcp``, ``relay``): it asks for them
        again at start so peers and adverts that named it stay right (``node/ports.py``)."""
        try:
            stored = json.loads(self._meta("ports") or "{}")
        except ValueError:
            return {}
        if not isinstance(stored, dict):
            return {}
        return {k: v for k, v in stored.items()
                if isinstance(k, str) and type(v) is int and 0 < v < 65536}

    def set_port(self, name: str, port: int) -> None:
        with self._transaction():
            self._set_meta("ports", json.dumps({**self.ports, name: port}, sort_keys=True))

    # ---- vessels ----

    def _load_vessels(self) -> dict[str, Vessel]:
        users: dict[str, list[PublicKey]] = {}
        for vessel, key in self._db.execute(
            "SELECT vessel, key FROM vessel_users ORDER BY vessel, position"
        ):
            users.setdefault(vessel, []).append(PublicKey(bytes(key)))
        result = {}
        for row in self._db.execute("SELECT * FROM vessels"):
            name, owner, info, advertise, resources, status, reason, code = row
            if status not in STATUSES:
                raise StateError(f"vessel {name} has unknown status {status!r}")
            result[name] = Vessel(
                name=name, owner=PublicKey(bytes(owner)), users=tuple(users.get(name, ())),
                owner_info=info, advertise=bool(advertise), resources=parse_resources(resources),
                status=status, exit_reason=reason, exit_code=code)
        return result

    def _put(self, vessel: Vessel) -> None:
        self._db.execute("DELETE FROM vessel_users WHERE vessel = ?", (vessel.name,))
        self._db.execute(
            "INSERT OR REPLACE INTO vessels VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (vessel.name, vessel.owner.raw, vessel.owner_info, int(vessel.advertise),
             vessel.resources.to_text(), vessel.status, vessel.exit_reason, vessel.exit_code))
        self._db.executemany(
            "INSERT INTO vessel_users VALUES (?, ?, ?)",
            [(vessel.name, i, key.raw) for i, key in enumerate(vessel.users)])

    def _apply(self, change: Change) -> None:
        for name in change.delete:
            self._db.execute("DELETE FROM vessels WHERE name = ?", (name,))
        for vessel in change.put:
            self._put(vessel)
        if change.next_index is not None:
            self._set_meta("next_index", str(change.next_index))
        if change.offcuts_held is not None:
            self._set_meta("offcuts_held", str(change.offcuts_held))

    def commit(self, change: Change | None, *, nonce: bytes | None = None, ts: float = 0.0,
               now: float = 0.0, window: float = 300.0, also: Sequence[Statement] = ()) -> None:
        """Record ``nonce`` (ReplayedNonce if seen) and apply ``change``, in one transaction;
        ``also``: more statements of the same transaction (the pool's lease rows)."""
        if change is None and nonce is None and not also:
            return
        try:
            if change is None and not also:  # one statement is its own transaction
                self._db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, ts))
            else:
                with self._transaction():
                    if nonce is not None:
                        self._db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, ts))
                    if change is not None:
                        self._apply(change)
                    for sql, params in also:
                        self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ReplayedNonce("this request's nonce was already used") from exc
        if change is not None:
            for name in change.delete:
                self.vessels.pop(name, None)
            self.vessels.update((vessel.name, vessel) for vessel in change.put)
            if change.next_index is not None:
                self.next_index = change.next_index
            if change.offcuts_held is not None:
                self.offcuts_held = change.offcuts_held
        self._commits += 1
        if nonce is not None and self._commits % PRUNE_EVERY == 0:
            self.prune_nonces(before=now - window - 60.0)

    def record_nonces(self, nonces: list[tuple[bytes, float]], *, now: float = 0.0,
                      window: float = 300.0) -> list[bool]:
        """Record the nonces of several requests that change nothing, in one transaction
        (group commit); for each, whether it was new (False: a replay, not recorded)."""
        fresh = []
        with self._transaction() if len(nonces) > 1 else nullcontext():  # one: autocommit
            for nonce, ts in nonces:
                try:
                    self._db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, ts))
                    fresh.append(True)
                except sqlite3.IntegrityError:
                    fresh.append(False)
        before = self._commits
        self._commits += len(nonces)
        if self._commits // PRUNE_EVERY != before // PRUNE_EVERY:
            self.prune_nonces(before=now - window - 60.0)
        return fresh

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement (tables other parts keep here: the pool's leases)."""
        return [tuple(row) for row in self._db.execute(sql, params)]

    def get_meta(self, key: str) -> str | None:
        return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self._set_meta(key, value)

    def ensure_table(self, ddl: str) -> None:
        """Create a table other parts keep in this database (``CREATE TABLE IF NOT EXISTS``)."""
        with self._transaction():
            self._db.execute(ddl)

    def record_status(self, name: str, status: Status, *, exit_reason: str | None = None,
                      exit_code: int | None = None) -> None:
        """Persist a vessel's last known program status (if the vessel still exists)."""
        vessel = self.vessels.get(name)
        if vessel is None:
            return
        updated = Vessel(name=name, owner=vessel.owner, users=vessel.users,
                         owner_info=vessel.owner_info, advertise=vessel.advertise,
                         resources=vessel.resources, status=status, exit_reason=exit_reason,
                         exit_code=exit_code)
        self.commit(Change(put=(updated,)))

    @property
    def donated_percent(self) -> float | None:
        """The percent of the machine the vessels hold (set by a reshare; None before one)."""
        value = self._meta("donated_percent")
        return None if value is None else float(value)

    def reshare(self, tables: Mapping[str, ResourceTable], percent: float) -> None:
        """Give vessels new resource tables and record ``percent``, in one transaction."""
        updated = [replace(self.vessels[name], resources=table) for name, table in tables.items()]
        with self._transaction():
            self._apply(Change(put=tuple(updated)))
            self._set_meta("donated_percent", repr(float(percent)))
        self.vessels.update((vessel.name, vessel) for vessel in updated)

    def prune_nonces(self, *, before: float) -> int:
        """Forget nonces whose timestamps are older than ``before`` (they fail the window)."""
        with self._transaction():
            cursor = self._db.execute("DELETE FROM nonces WHERE ts < ?", (before,))
        return cursor.rowcount

    def nonce_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM nonces").fetchone()[0])

    def initialize(self, vessels: Mapping[str, Vessel], *, offcut: ResourceTable,
                   next_index: int, offcuts_held: int) -> None:
        """Write a node's first vessels (``init``); refuse if vessels already exist."""
        if self.vessels:
            raise StateError("state already holds vessels")
        with self._transaction():
            self._set_meta("offcut", offcut.to_text())
            self._apply(Change(put=tuple(vessels.values()), next_index=next_index,
                               offcuts_held=offcuts_held))
        self.vessels = dict(vessels)
        self.offcut, self.next_index, self.offcuts_held = offcut, next_index, offcuts_held


class _Transaction:
    """``with`` block running ``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
