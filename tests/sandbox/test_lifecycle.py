"""Vessel processes never outlive their supervisor; uids are leased host-wide; records reap.

The supervisor is a real ``seattle-sandbox run`` process killed at random moments (start-up,
running, SIGSTOPped by the CPU duty cycle) with SIGKILL and SIGTERM; afterwards no process
may be left whose working directory is the vessel's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.errors import UidExhausted
from sandbox.process.spawn import ChildRecords, start_time
from sandbox.process.uidlease import acquire_uid, processes_of_uid
from tests.support.polling import NotYet, eventually_sync
from tests.support.processes import processes_in, state_of, wait_until_gone
from tests.support.vessels import require_root

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

ROOT = Path(__file__).parents[2]
SPIN = "x = 0\nwhile True:\n    x += 1\n"
BLOCKED = "lock = createlock()\nlock.acquire(True)\nlock.acquire(True)\n"
"""Blocked in the kernel (a futex wait) forever."""


def wait_for_vessel(directory: Path, state: str | None, seconds: float = 30.0) -> bool:
    """Wait until a process runs in ``directory`` (in /proc state ``state``, if given)."""

    def seen() -> bool:
        pids = processes_in(directory)
        return bool(pids) and (state is None or any(state_of(pid) == state for pid in pids))

    try:
        return eventually_sync(seen, timeout=seconds, interval=0.002)
    except NotYet:
        return False


# (state to catch the vessel in, program, extra random delay before the kill)
MOMENTS = [("start-up", SPIN, None), ("stopped", SPIN, "T"), ("running", SPIN, "R"),
           ("blocked", BLOCKED, "S")]


KILLS = 24
PARALLEL = 3
"""Kills run this many at a time: each attempt has its own vessel and ``seattle-sandbox run``."""


def test_vessel_dies_with_its_killed_supervisor(tmp_path: Path) -> None:
    """24 kills (SIGKILL, SIGTERM) of ``seattle-sandbox run`` while its vessel is starting up,
    spinning at cpu 0.1, SIGSTOPped by the duty cycle, or blocked in a futex wait: the
    vessel process is gone 2 s later every time."""
    resources = tmp_path / "cpu.resources"
    text = (ROOT / "sandbox" / "default.resources").read_text().replace("resource cpu ", "#")
    resources.write_text(text + "\nresource cpu 0.1\n")  # low: stopped by the duty cycle even on a busy host
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda attempt: kill_once(tmp_path, resources, attempt), range(KILLS)))
    assert [o for o in outcomes if o is not None] == []


def kill_once(tmp_path: Path, resources: Path, attempt: int) -> tuple[int, str, list[int]] | None:
    """One attempt: kill the supervisor at its moment; what was left behind (killed now), if any."""
    moment, program, state = MOMENTS[attempt % 4]
    vessel = tmp_path / f"v{attempt}"
    vessel.mkdir()
    (vessel / "program.py").write_text(program)
    cli = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "run", "--dir", str(vessel), "--no-cgroups",  # duty cycle
         "--resources", str(resources), str(vessel / "program.py")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if state == "S":
        assert wait_for_vessel(vessel, None)
        time.sleep(0.5)  # compiled, started, now waiting on the lock forever
    caught = wait_for_vessel(vessel, state)
    cli.send_signal(signal.SIGKILL if attempt % 8 < 4 else signal.SIGTERM)
    cli.wait(timeout=30)
    assert caught, f"attempt {attempt}: never saw the vessel {moment}"
    left = wait_until_gone(vessel, 2.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return (attempt, moment, left) if left else None


def test_uid_leases_are_exclusive_and_free_themselves(tmp_path: Path) -> None:
    require_root()
    base = 64900  # a private range and lease dir: never touches real vessels' uids
    first = acquire_uid(lease_dir=tmp_path, base=base, count=3)
    second = acquire_uid(lease_dir=tmp_path, base=base, count=3)
    assert (first.uid, second.uid) == (base, base + 1)
    # another process holding a lease (as a second node manager would) is respected
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from pathlib import Path; from sandbox.process.uidlease import acquire_uid;"
         f"lease = acquire_uid(lease_dir=Path(sys.argv[2]), base={base}, count=3);"
         "print(lease.uid, flush=True); time.sleep(60)", str(ROOT), str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert int(holder.stdout.readline()) == base + 2
    with pytest.raises(UidExhausted):
        acquire_uid(lease_dir=tmp_path, base=base, count=3)
    holder.kill()  # its lease dies with it: no clean-up step
    holder.wait()
    third = acquire_uid(lease_dir=tmp_path, base=base, count=3)
    assert third.uid == base + 2
    first.release()
    assert acquire_uid(lease_dir=tmp_path, base=base, count=3).uid == base


def test_a_leftover_running_as_a_free_uid_is_killed_before_reuse(tmp_path: Path) -> None:
    require_root()
    uid = 64950
    stray = subprocess.Popen(
        [sys.executable, "-c", f"import os, time; os.setgid({uid}); os.setuid({uid}); time.sleep(60)"])
    eventually_sync(lambda: stray.pid in processes_of_uid(uid), timeout=10, what="the stray runs as uid")
    reaper = threading.Thread(target=stray.wait)  # as init reaps a real orphan
    reaper.start()
    lease = acquire_uid(lease_dir=tmp_path, base=uid, count=1)
    assert lease.uid == uid
    reaper.join()
    assert stray.returncode == -signal.SIGKILL
    assert processes_of_uid(uid) == []


def test_child_records_kill_leftovers_but_not_recycled_pids(tmp_path: Path) -> None:
    records = ChildRecords(tmp_path / "run")
    alive = subprocess.Popen(["sleep", "60"], start_new_session=True)
    innocent = subprocess.Popen(["sleep", "60"], start_new_session=True)
    records.add("v1", alive.pid)
    records.add("v2", innocent.pid)
    started = start_time(innocent.pid)
    assert started is not None
    # v2's record names the pid with another start time: the pid was recycled
    (tmp_path / "run" / "v2.pid").write_text(f"{innocent.pid} {started + 1}\n")
    (tmp_path / "run" / "v3.pid").write_text("garbage\n")
    assert ChildRecords(tmp_path / "run").kill_leftovers() == ["v1"]
    assert alive.wait(timeout=5) == -signal.SIGKILL
    assert innocent.poll() is None
    innocent.kill()
    innocent.wait()
    assert list((tmp_path / "run").iterdir()) == []
