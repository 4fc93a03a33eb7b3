"""A test whose host lacks a layer is skipped, except under CI=true, where it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = '''
from tests.support.requires import requires

@requires(False, "host has no frobnicator layer")
def test_needs_a_missing_layer():
    pass

@requires(True, "always there")
def test_needs_a_present_layer():
    pass
'''
CONFTEST = '''
import pytest

from tests.support.requires import check_requires

def pytest_runtest_setup(item: pytest.Item) -> None:
    check_requires(item)


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(ok, reason): see tests/support/requires.py")
'''


@pytest.mark.parametrize(("ci", "outcome", "status"), [
    ("", "1 passed, 1 skipped", 0), ("true", "1 passed, 1 error", 1)])
def test_missing_layer_skips_or_fails(tmp_path: Path, ci: str, outcome: str, status: int) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert outcome in done.stdout and done.returncode == status, done.stdout + done.stderr
    assert "host has no frobnicator layer" in done.stdout
