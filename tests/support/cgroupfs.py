"""cgroup test helpers: whether real CPU-quota groups can be made here, a process's CPU time,
and a fake cgroup v2 tree (the files the kernel would offer) for the v2 code path."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import Supervisor
from sandbox.process.cgroups import probe
from tests.support.requires import requires
from tests.support.vessels import table

needs_cgroups = requires(os.geteuid() == 0 and probe() is not None,
                         "cgroup CPU quotas need root and a cgroup cpu controller")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fake_v2_tree(root: Path) -> Path:
    """A directory laid out as a cgroup2 mount whose root offers ``cpu`` (as on a host
    where v2 holds the controllers); groups made in it get their files from ``fake_group``."""
    fake_group(root, controllers="cpu memory pids", top=True)
    return root


def fake_group(directory: Path, *, controllers: str = "cpu", top: bool = False) -> None:
    """The interface files of one v2 group (what the kernel creates on ``mkdir``)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "cgroup.controllers": controllers + "\n",
        "cgroup.subtree_control": "\n",
        "cgroup.procs": "",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.freeze": "0\n",
        "cpu.stat": "usage_usec 0\nnr_throttled 0\nthrottled_usec 0\n",
    }
    if not top:
        files.update({"cpu.max": "max 100000\n", "cpu.weight": "100\n", "cpu.idle": "0\n"})
    for name, text in files.items():
        path = directory / name
        if not path.exists():
            path.write_text(text)


BUSY = "spins = 0\nwhile True:\n    spins = spins + 1\n"
"""A vessel program that uses all the CPU it is given."""


async def start_busy(sup: Supervisor, directory: Path, share: float) -> int:
    """Start ``BUSY`` as vessel ``v1`` with CPU ``share``; return the program's pid."""
    (directory / "busy.py").write_text(BUSY)
    await sup.start("v1", directory, table(cpu=share), "busy.py")
    pid = sup.pid_of("v1")
    assert pid is not None
    return pid
