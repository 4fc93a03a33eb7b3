"""Benchmarks of the donor's side: how much a busy vessel slows the donor, and how fast the
donor policy suspends and resumes vessels.

Usage: ``.venv/bin/python benchmarks/donor.py [--quick]`` (as root, for cgroups)

1. Donor slowdown: a CPU spinner at normal priority (the donor's program) and a CPU-bound
   vessel (cpu 0.5) pinned to one core; the spinner's CPU rate next to the vessel over its
   rate alone, measured back to back, median of the rounds. Three ways of holding the share:
   today's main (SIGSTOP duty cycle, vessel at normal priority), the fallback (duty cycle,
   SCHED_IDLE) and the default (cgroup quota, SCHED_IDLE, idle group).
2. The vessel alone on that core: its CPU rate against its share (it yields to everything
   else the host runs, so other load on that core lowers it).
3. Busy -> suspended and idle -> running: the donor control (real supervisor, real cgroup
   freezer, ``tick`` 0.25 s) with ``busy_above`` 5 %, ``busy_for`` 1 s, ``resume_after``
   5 s. The control's CPU reading is switched from 0 to 90 % and back (injected: on a shared
   host the donor's own spinners get too little CPU to stand for "busy"; the real reading is
   one /proc read per tick). From the switch to the vessel's freezer leaving THAWED, and from
   the switch back to THAWED (the program may run again: how soon it gets the CPU then
   depends on what else the host runs, as in 2).
4. Pause -> paused advert seen, resume -> running advert seen (``--adverts`` runs only this):
   a ``seattle-testbed up --nodes 3`` (real node managers, sandbox, DHT on loopback); the
   policy file of node 1 is written as ``seattle-installer pause``/``resume`` write it, and
   a DHT lookup of the demo key is repeated (every 50 ms) until all of node 1's adverts say
   paused (then not paused). The republish interval is 600 s: without the prompt
   re-announce the wait would be minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from nodemanager.donor.control import DonorControl, update_policy  # noqa: E402
from nodemanager.donor.policy import Readings  # noqa: E402
from overlay import OverlayError, lookup_once  # noqa: E402
from sandbox import ResourceTable, Supervisor, parse_resources  # noqa: E402
from seattlecore import PublicKey, load_public  # noqa: E402

BUSY = "spins = 0\nwhile True:\n    spins = spins + 1\n"
COUNTER = "n = 0\nwhile True:\n    log('count', n, '\\n')\n    n = n + 1\n    sleep(0.02)\n"
TABLE = """resource cpu 0.5
resource memory 60000000
resource diskused 2000000
resource events 6
resource filewrite 100000
resource fileread 100000
resource filesopened 4
resource insockets 2
resource outsockets 2
resource lograte 100000
"""
MODES = [("today's main: duty cycle, normal priority", False, "normal"),
         ("fallback: duty cycle, SCHED_IDLE", False, "idle"),
         ("default: cgroup quota, SCHED_IDLE, idle group", True, "idle")]


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spinner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


async def rate(pid: int, seconds: float) -> float:
    c0, t0 = cpu_of(pid), time.monotonic()
    await trio.sleep(seconds)
    return (cpu_of(pid) - c0) / (time.monotonic() - t0)


async def slowdown(work: Path, cgroups: bool, priority: str, rounds: int,
                   window: float) -> tuple[float, float, float]:
    """Medians of (the vessel's part of the core's CPU the two got, the donor's slowdown
    against itself alone, the vessel's rate alone)."""
    (work / "busy.py").write_text(BUSY)
    table: ResourceTable = parse_resources(TABLE)
    slow, alone, taken = [], [], []
    async with Supervisor.open(cgroups=cgroups, priority=priority) as sup:
        await sup.start("v1", work, table, "busy.py")
        vessel = sup.pid_of("v1")
        assert vessel is not None
        await trio.sleep(0.5)
        for _ in range(rounds):
            alone.append(await rate(vessel, window))
            donor = spinner()
            try:
                d0, v0, t0 = cpu_of(donor.pid), cpu_of(vessel), time.monotonic()
                await trio.sleep(window)
                d1, v1 = cpu_of(donor.pid), cpu_of(vessel)
                with_vessel = (d1 - d0) / (time.monotonic() - t0)
                taken.append((v1 - v0) / max(1e-9, (d1 - d0) + (v1 - v0)))
                sup.pause_all("manual")  # the vessel out of the way: the donor alone
                solo = await rate(donor.pid, window)
                sup.resume_all()
            finally:
                donor.kill()
                donor.wait()
            slow.append(1 - with_vessel / solo if solo > 0 else float("nan"))
        await sup.stop("v1")
    return statistics.median(taken), statistics.median(slow), statistics.median(alone)


class DonorLoad:
    """The donor's load as the control reads it: a switch (see the module docstring)."""

    def __init__(self) -> None:
        self.busy = False

    def read(self) -> Readings:
        return Readings(other_cpu=90.0 if self.busy else 0.0, on_battery=False)


def frozen(sup: Supervisor) -> bool:
    """The vessel's freezer says FROZEN (or, without one, the supervisor holds a pause)."""
    group = sup._running["v1"].controls.group  # type: ignore[union-attr]
    if group is not None and group.can_freeze:  # FREEZING counts: no task runs on
        state = group._freezer / "freezer.state"  # type: ignore[operator]
        return state.read_text().strip() != "THAWED"
    return sup.report("v1").paused is not None


async def latencies(work: Path, rounds: int) -> tuple[list[float], list[float]]:
    state = work / "state"
    state.mkdir()
    update_policy(state, busy_above=5.0, busy_for=1.0, resume_after=5.0)
    (work / "count.py").write_text(COUNTER)
    load = DonorLoad()
    to_suspend, to_run = [], []
    async with Supervisor.open() as sup, trio.open_nursery() as nursery:
        control = DonorControl(state, sup, readings=load.read)
        nursery.start_soon(control.run)
        await sup.start("v1", work, parse_resources(TABLE), "count.py")
        for _ in range(rounds):
            await trio.sleep(1.0)
            t0 = time.monotonic()
            load.busy = True
            while not frozen(sup):
                await trio.sleep(0.005)
            to_suspend.append(time.monotonic() - t0)
            await trio.sleep(1.0)
            t1 = time.monotonic()
            load.busy = False
            while frozen(sup):
                await trio.sleep(0.005)
            to_run.append(time.monotonic() - t1)
        nursery.cancel_scope.cancel()
    return to_suspend, to_run


async def _seen(key: PublicKey, boot: tuple[str, int], address: str, paused: str | None) -> float:
    """Seconds until a lookup shows every advert of ``address`` with ``paused``."""
    t0 = time.monotonic()
    while True:
        try:
            found = await lookup_once(key, [boot], timeout=5)
        except OverlayError:
            found = None
        ours = [] if found is None else [a for a in found.candidates if a.address == address]
        if ours and all(a.paused == paused for a in ours):
            return time.monotonic() - t0
        await trio.sleep(0.05)


async def advert_latencies(rounds: int) -> tuple[list[float], list[float]]:
    to_paused, to_running = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "bed"
        env = {**os.environ, "SEATTLE_TESTBED_NET": os.environ.get("SEATTLE_TESTBED_NET", "50")}
        cli = [sys.executable, "-m", "testbed"]
        subprocess.run([*cli, "up", "--nodes", "3", "--dir", str(bed), "--wait"], env=env,
                       check=True, capture_output=True)
        try:
            manifest = json.loads((bed / "testbed.json").read_text())
            first, node = manifest["nodes"][0], manifest["nodes"][1]
            boot = (first["address"], int(first["dht_port"]))
            address = f"{node['address']}:{node['port']}"
            key = load_public(bed / "keys" / "demo.publickey")
            state = Path(node["state"])
            await _seen(key, boot, address, None)
            for _ in range(rounds):
                update_policy(state, paused=True)
                to_paused.append(await _seen(key, boot, address, "manual"))
                update_policy(state, paused=False)
                to_running.append(await _seen(key, boot, address, None))
        finally:
            subprocess.run([*cli, "down", "--dir", str(bed)], env=env, check=False,
                           capture_output=True)
    return to_paused, to_running


def print_advert_latencies(to_paused: list[float], to_running: list[float]) -> None:
    print("\n| advert change (3-node loopback testbed) | median | max |")
    print("|---|---|---|")
    print(f"| pause -> lookup shows paused | {statistics.median(to_paused):.2f} s | {max(to_paused):.2f} s |")
    print(f"| resume -> lookup shows running | {statistics.median(to_running):.2f} s "
          f"| {max(to_running):.2f} s |")


async def main(quick: bool, adverts: bool = False) -> None:
    if adverts:
        print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        print_advert_latencies(*await advert_latencies(3 if quick else 10))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return
    rounds, window = (2, 1.0) if quick else (5, 2.0)
    core = min(os.sched_getaffinity(0))
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; pinned to core {core}")
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    rows = []
    try:
        for name, cgroups, priority in MODES:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) / "v1"
                work.mkdir()
                taken, slow, alone = await slowdown(work, cgroups, priority, rounds, window)
            rows.append((name, taken, slow, alone))
    finally:
        os.sched_setaffinity(0, before)
    print("\n| how the vessel's share is held | vessel's part of the shared core | donor slowdown "
          "(vs alone) | vessel alone (share 0.5) |")
    print("|---|---|---|---|")
    for name, taken, slow, alone in rows:
        print(f"| {name} | {100 * taken:.1f} % | {100 * slow:.1f} % | {alone:.2f} of a core |")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "v1"
        work.mkdir()
        suspend, run = await latencies(work, 2 if quick else 5)
    print("\n| transition | median | max | goal |")
    print("|---|---|---|---|")
    print(f"| donor busy -> vessels suspended (busy_for 1 s) | {statistics.median(suspend):.2f} s "
          f"| {max(suspend):.2f} s | < 2 s |")
    print(f"| donor idle -> vessels running (resume_after 5 s) | {statistics.median(run):.2f} s "
          f"| {max(run):.2f} s | < 5 + 2 s |")
    print_advert_latencies(*await advert_latencies(3 if quick else 10))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--adverts", action="store_true", help="only part 4 (no root needed)")
    options = parser.parse_args()
    trio.run(main, options.quick, options.adverts)
