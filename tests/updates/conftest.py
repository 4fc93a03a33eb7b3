"""Shared fixtures of the update tests: one wheelhouse per session, donor environments.

Building the project's wheel and downloading its dependencies takes ~10 s, so it happens
once per session (``wheelhouse``); every installer and release in these tests reuses it.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from installer.packing.wheels import Wheelhouse, build_wheelhouse, project_source

FAKE_CRONTAB = """#!/bin/sh
F="${FAKE_CRONTAB_FILE:?}"
case "$1" in
  -l) if [ -f "$F" ]; then cat "$F"; else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) cat > "$F" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """The project's wheel (this checkout), its dependencies' wheels and pip."""
    source = project_source()
    assert source is not None, "the update tests run from a checkout"
    return build_wheelhouse(source, tmp_path_factory.mktemp("wheelhouse"))


def closed_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def donor_env(tmp_path: Path) -> dict[str, str]:
    """A donor machine: no project venv on PATH, no package index, HOME and crontab in tmp."""
    crontab = tmp_path / "fakebin" / "crontab"
    crontab.parent.mkdir()
    crontab.write_text(FAKE_CRONTAB)
    crontab.chmod(crontab.stat().st_mode | stat.S_IXUSR)
    return {
        "HOME": str(tmp_path / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple", "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null",
        "SEATTLE_CRONTAB": str(crontab), "FAKE_CRONTAB_FILE": str(tmp_path / "crontab.txt"),
        "SEATTLE_SYSTEMD_USER_DIR": str(tmp_path / "systemd-user"),
    }
