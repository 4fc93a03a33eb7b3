"""A reshare reaches running programs at once: CPU quota, the monitor's memory and disk
limits, the child's rlimits, and its own rate and item limits (no restart)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nodemanager import open_node_client
from nodemanager.donor.reshare import ReshareRequest, read_result, write_request
from sandbox import Supervisor
from tests.support.cgroupfs import BUSY, cpu_seconds, needs_cgroups, start_busy
from tests.support.daemons import node_manager
from tests.support.polling import eventually
from tests.support.vessels import table
from tests.support.worlds import OWNER, init

pytestmark = pytest.mark.slow

LIMITS = ("while True:\n    limits, usage, stops = getresources()\n"
          "    log('netsend', limits['netsend'], 'files', limits['filesopened'], '\\n')\n"
          "    sleep(0.1)\n")


def _quota_file(pid: int) -> Path:
    """The ``cpu.cfs_quota_us`` (v1) or ``cpu.max`` (v2) of the cgroup ``pid`` is in."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return Path("/sys/fs/cgroup/cpu" + path) / "cpu.cfs_quota_us"
        if controllers == "" and Path("/sys/fs/cgroup" + path, "cpu.max").exists():
            return Path("/sys/fs/cgroup" + path) / "cpu.max"
    raise AssertionError(f"pid {pid} is in no cpu cgroup")


def _has_sys_resource() -> bool:
    """Does this process hold CAP_SYS_RESOURCE (needed to move another uid's rlimits)?"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def _limit(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return int(line[len(name):].split()[0])
    raise AssertionError(name)


def _vessel_pid(supervisor: int, vessel: str) -> int | None:
    """The pid in the vessel's v1 cpu cgroup under supervisor ``supervisor``, if any yet."""
    for group in Path("/sys/fs/cgroup/cpu").glob(f"seattle*/s{supervisor}/{vessel}"):
        procs = (group / "cgroup.procs").read_text().split()
        if procs:
            return int(procs[0])
    return None


async def _rate(pid: int, seconds: float = 2.0) -> float:
    """CPU seconds per second the process used over ``seconds``."""
    before, start = cpu_seconds(pid), trio.current_time()
    await trio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (trio.current_time() - start)


@needs_cgroups
async def test_a_running_busy_vessel_gets_its_new_cpu_share(tmp_path: Path) -> None:
    """A busy vessel reshared from 0.5 to 0.01 of a core drops to the new quota at once.

    Shrinking makes the check hold on a loaded host: load only lowers what the vessel gets,
    so "at most the new quota" after cannot pass by luck, and "more than that" before only
    needs the vessel to get a fortieth of a core. Normal priority: the quota, not the host's
    other programs, is what holds it."""
    async with Supervisor.open(priority="normal") as sup:
        pid = await start_busy(sup, tmp_path, 0.5)
        await eventually(lambda: _quota_file(pid).read_text().split()[0] == "50000")
        await trio.sleep(0.5)
        before = await _rate(pid, 3.0)
        sup.set_resources("v1", table(cpu=0.01))
        assert _quota_file(pid).read_text().split()[0] == "1000"
        assert sup.pid_of("v1") == pid  # the same program, not a restart
        await trio.sleep(0.2)
        after = await _rate(pid, 3.0)
        assert after < 0.02, (before, after)
        assert before > 0.025, (before, after)


async def test_the_childs_own_limits_and_rlimits_change_live(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The nanny's limits change in any case; the rlimits where we hold CAP_SYS_RESOURCE."""
    (tmp_path / "limits.py").write_text(LIMITS)
    async with Supervisor.open(priority="normal") as sup:
        old = table(netsend=1000, filesopened=4, memory=40_000_000, diskused=2_000_000)
        await sup.start("v1", tmp_path, old, "limits.py")
        pid = sup.pid_of("v1")
        assert pid is not None

        def last() -> str:
            lines = [line.strip() for line in sup.read_log("v1").decode().splitlines()]
            return ([line for line in lines if line] or [""])[-1]

        await eventually(lambda: last().startswith("netsend 1000"))
        address_space = _limit(pid, "Max address space")
        new = table(netsend=5000, filesopened=8, memory=60_000_000, diskused=3_000_000)
        sup.set_resources("v1", new)
        await eventually(lambda: last() == "netsend 5000.0 files 8")
        if _has_sys_resource():
            assert _limit(pid, "Max address space") == address_space + 20_000_000
            assert _limit(pid, "Max file size") == 3_000_000
            assert _limit(pid, "Max open files") == 8 + 3 + 3 + 64
        else:  # e.g. a container without it: the child's rlimits keep their start values
            assert _limit(pid, "Max address space") == address_space
            assert _limit(pid, "Max file size") == 2_000_000
            assert "keeps some of its old limits" in caplog.text
        assert sup.pid_of("v1") == pid


@needs_cgroups
async def test_share_on_a_running_node_changes_a_running_programs_quota(tmp_path: Path) -> None:
    """The request ``seattle-installer share`` writes, served by a real node manager."""
    state = tmp_path / "state"
    init(state)  # two vessels, cpu 0.2 each
    async with node_manager(state, sandbox=True, dht=False, extra=["--no-ui"]) as daemon, \
            open_node_client("127.0.0.1", daemon.port, identity=OWNER) as nm:
        await nm.add_file("v1", "busy.py", BUSY.encode())
        await nm.start_vessel("v1", "busy.py")
        pid = await eventually(lambda: _vessel_pid(daemon.process.pid, "v1"), timeout=30)
        await eventually(lambda: _quota_file(pid).read_text().split()[0] == "20000")
        request = ReshareRequest("live-1", 40.0, 10.0)
        write_request(state, request)
        result = await eventually(lambda: read_result(state, "live-1"), timeout=10)
        assert result["ok"], result
        assert _quota_file(pid).read_text().split()[0] == "80000"
        assert (await nm.get_vessel_resources("v1"))["cpu"] == pytest.approx(0.8)
        info = {v.name: v for v in (await nm.get_vessels()).vessels}
        assert info["v1"].status == "Started"
