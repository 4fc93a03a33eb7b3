"""The cgroup v2 path: CPU quota, idle group, freezer and start-up group.

This host's kernel binds ``cpu`` and ``freezer`` to cgroup v1 (its v2 ``unified`` mount offers
no ``cpu`` controller), so the v2 CPU quota cannot be tested on a real kernel here: the first
test runs the v2 code against a fake cgroupfs tree (the files the kernel would offer) and
plays the kernel's part where the code waits for it (``frozen 1``). The v2 freezer, though, is
a core file of every v2 group: the second test freezes a real process through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from sandbox.process.cgroups import CgroupHost, VesselCgroup, probe
from sandbox.process.yielding import Attached
from tests.support.cgroupfs import cpu_seconds, fake_group, fake_v2_tree
from tests.support.polling import eventually
from tests.support.requires import requires

UNIFIED = Path("/sys/fs/cgroup/unified")


def _mountinfo(v2: Path) -> str:
    return f"41 31 0:38 / {v2} rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A fake v2 mount with the groups ``probe`` and ``vessel`` will make already there (the
    kernel fills a new group's files on ``mkdir``; a plain directory cannot)."""
    root = fake_v2_tree(tmp_path / "cg")
    mine = f"s{os.getpid()}"
    for group in ("seattle", "seattle-normal", f"seattle/{mine}", f"seattle-normal/{mine}",
                  f"seattle/{mine}/v1", f"seattle-normal/{mine}/v1"):
        fake_group(root / group)
    return root


def test_v2_quota_idle_group_freeze_and_settle_on_a_fake_tree(tree: Path) -> None:
    mine = f"s{os.getpid()}"
    host = probe(_mountinfo(tree), idle=True)
    assert isinstance(host, CgroupHost) and host.kind == "v2"
    assert host.mechanism == "cgroup-v2 cpu quota + freezer"
    assert (tree / "cgroup.subtree_control").read_text() == "+cpu"  # cpu delegated down
    for parent in ("seattle", f"seattle/{mine}", "seattle-normal", f"seattle-normal/{mine}"):
        assert (tree / parent / "cgroup.subtree_control").read_text() == "+cpu", parent
    assert (tree / "seattle" / "cpu.idle").read_text() == "1"  # the donor wins against it

    group = host.vessel("v1", 4242, 0.25)
    start = tree / "seattle-normal" / mine / "v1"
    assert (start / "cpu.max").read_text() == "25000 100000"
    assert (start / "cgroup.procs").read_text() == "4242"
    assert (start / "cgroup.freeze").read_text() == "0"  # thawed before the process joins

    group.settle()  # the program runs: into the idle group, with the same quota
    idle = tree / "seattle" / mine / "v1"
    assert (idle / "cgroup.procs").read_text() == "4242"
    assert (idle / "cpu.max").read_text() == "25000 100000"
    group.set_share(0.5)
    assert (idle / "cpu.max").read_text() == "50000 100000"
    (idle / "cpu.stat").write_text("usage_usec 9\nnr_throttled 3\nthrottled_usec 2500000\n")
    assert group.throttled_seconds() == 2.5

    controls = Attached(4242, group, idle=False)
    assert controls.pause_mechanism == "freezer" and not controls.duty_cycle
    controls.pause("battery")
    assert (idle / "cgroup.freeze").read_text() == "1"
    assert not group.frozen()  # until the kernel says every task stopped
    (idle / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert group.frozen()
    controls.resume()
    assert (idle / "cgroup.freeze").read_text() == "0" and controls.paused is None


def test_v1_is_preferred_and_v2_without_cpu_is_not_used(tree: Path, tmp_path: Path) -> None:
    v1 = tmp_path / "v1cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    both = f"32 31 0:29 / {v1} rw,relatime - cgroup cgroup rw,cpu\n" + _mountinfo(tree)
    host = probe(both)
    assert host is not None and host.kind == "v1"
    (tree / "cgroup.controllers").write_text("memory pids\n")  # as on this host: no cpu in v2
    assert probe(_mountinfo(tree)) is None


def _v2_freezer_usable() -> bool:
    return os.geteuid() == 0 and (UNIFIED / "cgroup.procs").exists() and os.access(UNIFIED, os.W_OK)


@pytest.fixture
def real_v2_group() -> Iterator[Path]:
    top = UNIFIED / f"seattle-test-{os.getpid()}"
    top.mkdir()
    try:
        yield top
    finally:
        for directory in (top / "v1", top):
            if directory.exists():
                directory.rmdir()


@requires(_v2_freezer_usable(), "a writable cgroup v2 mount and root")
async def test_the_v2_freezer_freezes_and_thaws_a_real_process(real_v2_group: Path) -> None:
    directory = real_v2_group / "v1"
    directory.mkdir()
    assert (directory / "cgroup.freeze").exists(), "kernel without the v2 freezer (< 5.2)"
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    group = VesselCgroup("v2", directory, directory)
    try:
        group.add(spinner.pid)
        assert str(spinner.pid) in (directory / "cgroup.procs").read_text().split()
        group.freeze()
        await eventually(group.frozen, timeout=10)
        at = cpu_seconds(spinner.pid)
        await trio.sleep(1.0)
        assert cpu_seconds(spinner.pid) - at < 0.02
        group.thaw()
        await eventually(lambda: cpu_seconds(spinner.pid) - at > 0.05, timeout=20)
        assert not group.frozen()
    finally:
        group.freeze()
        spinner.kill()  # a frozen task dies of SIGKILL too, once thawed
        group.thaw()
        spinner.wait()
    group.remove()
    assert not directory.exists()
