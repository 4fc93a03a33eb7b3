"""SQLite state: reload, replay protection across restarts, pruning, schema version."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from nodemanager.errors import ReplayedNonce
from nodemanager.node.model import Change, Vessel
from nodemanager.node.state import NodeState, StateError
from sandbox import DEFAULT_OFFCUT
from seattlecore import KeyPair
from tests.support.worlds import SMALL

OWNER, USER = KeyPair.generate(), KeyPair.generate()


def fresh(path: Path) -> NodeState:
    state = NodeState(path)
    vessel = Vessel(name="v1", owner=OWNER.public, users=(USER.public, OWNER.public),
                    owner_info="info", advertise=False, resources=SMALL)
    state.initialize({"v1": vessel}, offcut=DEFAULT_OFFCUT, next_index=2, offcuts_held=1)
    return state


def test_reload_round_trips(tmp_path: Path) -> None:
    state = fresh(tmp_path / "s.db")
    before = dict(state.vessels)
    state.close()
    again = NodeState(tmp_path / "s.db")
    assert again.vessels == before
    assert (again.next_index, again.offcuts_held, again.offcut) == (2, 1, DEFAULT_OFFCUT)
    with pytest.raises(StateError):
        again.initialize(before, offcut=DEFAULT_OFFCUT, next_index=2, offcuts_held=1)


def test_nonce_is_persisted_with_the_change(tmp_path: Path) -> None:
    state = fresh(tmp_path / "s.db")
    nonce = os.urandom(16)
    changed = replace(state.vessels["v1"], owner_info="new")
    state.commit(Change(put=(changed,)), nonce=nonce, ts=5.0)
    state.close()
    again = NodeState(tmp_path / "s.db")
    assert again.vessels["v1"].owner_info == "new"
    other = replace(changed, owner_info="replayed")
    with pytest.raises(ReplayedNonce):
        again.commit(Change(put=(other,)), nonce=nonce, ts=5.0)
    assert again.vessels["v1"].owner_info == "new"
    again.close()
    assert NodeState(tmp_path / "s.db").vessels["v1"].owner_info == "new"


def test_prune_forgets_only_old_nonces(tmp_path: Path) -> None:
    state = fresh(tmp_path / "s.db")
    state.commit(None, nonce=b"a" * 16, ts=1.0)
    state.commit(None, nonce=b"b" * 16, ts=100.0)
    assert state.prune_nonces(before=50.0) == 1
    assert state.nonce_count() == 1


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    fresh(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError):
        NodeState(tmp_path / "s.db")


def test_wal_mode(tmp_path: Path) -> None:
    fresh(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
