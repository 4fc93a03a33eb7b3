"""The sweep that kills what tests leave running finds processes by their mark, also detached."""

from __future__ import annotations

import os
import secrets
import subprocess

from tests.support.leftovers import MARK, Leftover, find_leftovers, kill_leftovers
from tests.support.polling import eventually_sync


def test_the_sweep_kills_marked_processes_and_only_those() -> None:
    mark = f"sweep-test-{secrets.token_hex(4)}"
    env = {**os.environ, MARK: mark}
    # a detached grandchild (own session, parent gone) still carries the mark
    subprocess.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 &"], env=env, check=True)
    other = subprocess.Popen(["sleep", "300"], env={**os.environ, MARK: "another-run"})
    try:
        def detached_sleep() -> list[Leftover]:  # once setsid has exec'd sleep
            found = find_leftovers(mark)
            assert [leftover.command for leftover in found] == ["sleep 300"]
            return found

        found = eventually_sync(detached_sleep, timeout=10)
        assert [leftover.pid for leftover in kill_leftovers(mark)] == [found[0].pid]
        eventually_sync(lambda: not find_leftovers(mark), timeout=10)
        assert other.poll() is None, "a process of another run is not touched"
    finally:
        kill_leftovers(mark)
        other.kill()
        other.wait()
