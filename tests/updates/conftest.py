"""Shared fixtures of the update tests: one wheelhouse per session, donor environments.

Building the project's wheel and downloading its dependencies takes ~10 s, so it happens
once per session (``wheelhouse``); every installer and release in these tests reuses it.
Under pytest-xdist the modules that use it run in one worker (group "wheelhouse" in
tests/support/groups.py), so it is built once per run, not once per worker; tests that use it
are ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.packing.wheels import Wheelhouse, build_wheelhouse, project_source
from tests.support.crontab import install_fake_crontab
from tests.support.net import closed_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "wheelhouse" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # builds wheels: not in the quick tier


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """The project's wheel (this checkout), its dependencies' wheels and pip."""
    source = project_source()
    assert source is not None, "the update tests run from a checkout"
    return build_wheelhouse(source, tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture
def donor_env(tmp_path: Path) -> dict[str, str]:
    """A donor machine: no project venv on PATH, no package index, HOME and crontab in tmp."""
    crontab = install_fake_crontab(tmp_path / "fakebin" / "crontab")
    return {
        "HOME": str(tmp_path / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple", "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null",
        "SEATTLE_CRONTAB": str(crontab), "FAKE_CRONTAB_FILE": str(tmp_path / "crontab.txt"),
        "SEATTLE_SYSTEMD_USER_DIR": str(tmp_path / "systemd-user"),
    }
