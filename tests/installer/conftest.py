"""Fixtures: a fake crontab and an environment that keeps installer runs in tmp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.crontab import install_fake_crontab


@pytest.fixture
def fake_crontab(tmp_path: Path) -> tuple[Path, Path]:
    """(crontab command, the file it stores the table in)."""
    return install_fake_crontab(tmp_path / "bin" / "crontab"), tmp_path / "crontab.txt"


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
