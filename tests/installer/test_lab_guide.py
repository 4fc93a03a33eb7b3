"""docs/lab.md's session, run from the guide's own code block (root: a real network lab).

The commands are the guide's (tests/support/guides.py); the test fills in what a reader
fills in: the bootstrap address ``up`` prints, and 4 nodes where the guide says 20 (n003 is
still there for the guide's ``shell ... n003``). The interactive shell gets an empty stdin.

Between ``up --wait`` and seash the test waits until every NATed node's adverts name a relay:
today ``--wait`` returns once the adverts can be found, and a NATed node is only usable once
its adverts carry a relay (seen: 2 of 4 nodes "unreachable" right after ``--wait``). Making
``up --wait`` wait for that is issue 20's; once it does, this wait returns at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.lab import net as labnet
from tests.support.files import traversable
from tests.support.guides import doc_commands, runnable
from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, wait_lab_relayed
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]


def session() -> list[str]:
    """The commands of the guide's "A session" block (the ones with ``--dir lab``)."""
    return [c for c in doc_commands("lab.md") if "--dir lab" in c]


def test_the_guide_has_its_session() -> None:
    words = [c.split()[1] for c in session()]
    assert words == ["up", "shell", "shell", "shell", "down"], session()


def test_lab_guide_session_runs_as_written(tmp_path: Path) -> None:
    traversable(tmp_path)
    up, seash, ss, interactive, down = session()
    values = {"--nodes 20": "--nodes 4",
              "-- seash ": f"-- {Path(sys.executable).with_name('seash')} "}

    def run(command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(runnable(command, {**values, **extra}), cwd=tmp_path, text=True,
                              capture_output=True, timeout=400, check=False,
                              stdin=subprocess.DEVNULL)

    started = run(up)
    assert started.returncode == 0, started.stdout + started.stderr
    data = json.loads((tmp_path / "lab" / "testbed.json").read_text())
    try:
        assert "--bootstrap " + data["bootstrap"] in started.stdout  # "up prints this line"
        wait_lab_relayed(tmp_path / "lab", data, vessels=8)
        found = run(seash, **{"198.18.10.1:PORT": data["bootstrap"]})
        assert found.returncode == 0, found.stdout + found.stderr
        assert "browse: 4 ok" in found.stdout and "list: 8 ok" in found.stdout, found.stdout
        listening = run(ss)
        node = next(n for n in data["nodes"] if n["name"] == "n003")
        assert listening.returncode == 0 and f"{node['address']}:{node['port']}" in listening.stdout
        assert run(interactive).returncode == 0
    finally:
        stopped = run(down)
    assert stopped.returncode == 0, stopped.stderr
    assert not labnet.lab_namespaces(data["lab"]["id"])
