"""A vessel program never outlives its supervisor (e.g. a node manager killed with -9).

Both ways a vessel starts: forked by the supervisor's fork server (which must not outlive
the supervisor either), and cold.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.polling import eventually_sync

SCRIPT = """
import sys, trio
from pathlib import Path
from sandbox import Supervisor, parse_resources

async def main():
    table = parse_resources(Path(sys.argv[2]).read_text())
    async with Supervisor.open(fork_server=sys.argv[3] == "fork") as sup:
        await sup.start("v1", Path(sys.argv[1]), table, "forever.py")
        print("started", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


@pytest.mark.parametrize("start", ["fork", "cold"])
def test_program_dies_with_its_supervisor(vessel_dir: Path, start: str) -> None:
    (vessel_dir / "forever.py").write_text("while True:\n    sleep(0.1)\n")
    resources = Path(__file__).parents[2] / "sandbox" / "default.resources"
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(vessel_dir), str(resources), start],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "started"
        children = psutil.Process(parent.pid).children()
        assert len(children) == (2 if start == "fork" else 1)  # the vessel (and the fork server)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for child in children:
            eventually_sync(lambda: gone(child), timeout=10,  # noqa: B023
                            what=f"child {child.pid} outlived its supervisor")
    finally:
        parent.kill()
        parent.wait()


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
