"""Shared helpers: keys, bundles, a fake crontab, and an environment that keeps tests in tmp."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from installer import build_bundle, complete_shares, new_manifest
from installer.planner.spec import VesselShare
from seattlecore import KeyPair

FAKE_CRONTAB = """#!/bin/sh
F="${FAKE_CRONTAB_FILE:?}"
case "$1" in
  -l) if [ -f "$F" ]; then cat "$F"; else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) cat > "$F" ;;
  *) exit 2 ;;
esac
"""


def make_bundle(planner: KeyPair, owner: KeyPair, bootstrap: tuple[str, ...] = ("127.0.0.1:9",),
                percents: tuple[int, ...] = (30, 50)) -> bytes:
    shares = complete_shares([VesselShare(percent=p, owner=owner.public) for p in percents],
                             planner.public)
    return build_bundle(new_manifest(planner.public, shares, bootstrap, now=1000.0), planner)


@pytest.fixture
def fake_crontab(tmp_path: Path) -> tuple[Path, Path]:
    """(crontab command, the file it stores the table in)."""
    command = tmp_path / "bin" / "crontab"
    command.parent.mkdir()
    command.write_text(FAKE_CRONTAB)
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    return command, tmp_path / "crontab.txt"


@pytest.fixture
def safe_env(tmp_path: Path, fake_crontab: tuple[Path, Path],
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for installer runs: HOME, XDG dirs and the crontab all under tmp_path."""
    command, table = fake_crontab
    env = {
        "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_DATA_HOME": str(tmp_path / "home" / ".local" / "share"),
        "SEATTLE_CRONTAB": str(command), "FAKE_CRONTAB_FILE": str(table),
        "SEATTLE_SYSTEMD_USER_DIR": str(tmp_path / "systemd-user"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}
