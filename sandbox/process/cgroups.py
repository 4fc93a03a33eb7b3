"""Vessel cgroups: a CPU quota instead of the SIGSTOP duty cycle, and the freezer for pauses.

Probed at run time from ``/proc/self/mountinfo``; nothing is required. With cgroup v1 (the
``cpu`` and ``freezer`` controllers) a vessel's process goes into
``cpu/seattle/s<supervisor pid>/<vessel>`` (quota ``cpu.cfs_quota_us``; ``seattle`` has
``cpu.idle``, or weight 2 on kernels without it) and the same path under ``freezer``
(``freezer.state``). With cgroup v2 one group holds both (``cpu.max``, ``cpu.idle``,
``cgroup.freeze``). The group's weight matters because a task's own ``SCHED_IDLE`` only
counts among its group's siblings: the group itself must be idle for the donor to win.

Where neither is there (or we are not allowed to write it), ``probe`` answers None and the
supervisor keeps Seattle's SIGSTOP/SIGCONT duty cycle. ``CgroupHost.sweep`` removes the
groups of supervisors that died without cleaning up.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
ROOT = "seattle"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def quota_us(share: float, period_us: int = PERIOD_US) -> int:
    """The CFS quota for ``share`` of one core per ``period_us`` (pure)."""
    return max(MIN_QUOTA_US, round(share * period_us))


@dataclass(frozen=True, slots=True)
class Mounts:
    """Where the cgroup hierarchies are mounted (None: not there)."""

    v1_cpu: Path | None = None
    v1_freezer: Path | None = None
    v2: Path | None = None


def parse_mountinfo(text: str) -> Mounts:
    """Find the v1 ``cpu``/``freezer`` and the v2 mounts in a mountinfo text (pure)."""
    cpu = freezer = v2 = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        point, fstype, options = Path(fields[4]), rfields[0], set(rfields[2].split(","))
        if fstype == "cgroup":
            if "cpu" in options:
                cpu = point
            if "freezer" in options:
                freezer = point
        elif fstype == "cgroup2":
            v2 = point
    return Mounts(cpu, freezer, v2)


class VesselCgroup:
    """One vessel's group(s): CPU quota, freeze and thaw, removal."""

    def __init__(self, kind: str, cpu_dir: Path, freezer_dir: Path | None,
                 settle_to: Path | None = None) -> None:
        self.kind = kind
        self._cpu = cpu_dir
        self._freezer = freezer_dir
        self._settle_to = settle_to
        self._share = 0.0
        self._pid = 0

    @property
    def can_freeze(self) -> bool:
        return self._freezer is not None

    def add(self, pid: int) -> None:
        self._pid = pid
        _write(self._cpu / "cgroup.procs", str(pid))
        if self._freezer is not None and self._freezer != self._cpu:
            _write(self._freezer / "cgroup.procs", str(pid))

    def settle(self) -> None:
        """Move the process from the start-up group into the idle group (once it runs the
        program): the runner's own start-up is not starved by a busy host, the program is."""
        target, self._settle_to = self._settle_to, None
        if target is None:
            return
        old = self._cpu
        target.mkdir(exist_ok=True)
        self._cpu = target
        if self.kind == "v2":
            self._freezer = target
        self.set_share(self._share)
        _write(target / "cgroup.procs", str(self._pid))
        try:
            old.rmdir()
        except OSError as exc:
            log.debug("cannot remove start-up cgroup %s: %s", old, exc)

    def set_share(self, share: float) -> None:
        self._share = share
        quota = quota_us(share)
        if self.kind == "v1":
            _write(self._cpu / "cpu.cfs_period_us", str(PERIOD_US))
            _write(self._cpu / "cpu.cfs_quota_us", str(quota))
        else:
            _write(self._cpu / "cpu.max", f"{quota} {PERIOD_US}")

    def throttled_seconds(self) -> float:
        """Wall time the quota has held the group back so far (``cpu.stat``), 0 if unknown."""
        try:
            text = (self._cpu / "cpu.stat").read_text()
        except OSError:
            return 0.0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":  # v1: nanoseconds
                return int(value) / 1e9
            if key == "throttled_usec":  # v2: microseconds
                return int(value) / 1e6
        return 0.0

    def freeze(self) -> None:
        if self._freezer is None:
            raise OSError(errno.ENOTSUP, "no freezer")
        if self.kind == "v1":
            _write(self._freezer / "freezer.state", "FROZEN")
        else:
            _write(self._freezer / "cgroup.freeze", "1")

    def thaw(self) -> None:
        if self._freezer is None:
            return
        try:
            if self.kind == "v1":
                _write(self._freezer / "freezer.state", "THAWED")
            else:
                _write(self._freezer / "cgroup.freeze", "0")
        except OSError as exc:
            log.debug("thaw %s: %s", self._freezer, exc)

    def frozen(self) -> bool:
        """True once every task of the group is frozen (v1 ``FROZEN``, v2 ``frozen 1``)."""
        if self._freezer is None:
            return False
        try:
            if self.kind == "v1":
                return (self._freezer / "freezer.state").read_text().strip() == "FROZEN"
            return "frozen 1" in (self._freezer / "cgroup.events").read_text()
        except OSError:
            return False

    def remove(self) -> None:
        """Thaw and remove the group(s); a group that still holds a task is left (logged)."""
        self.thaw()
        for directory in {self._cpu, self._freezer} - {None}:
            assert directory is not None
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.debug("cannot remove cgroup %s: %s", directory, exc)


class CgroupHost:
    """The groups of one supervisor: ``seattle/s<pid>`` under each hierarchy it uses.

    ``idle=False`` puts them under ``seattle-normal`` instead, a group of default weight: the
    quotas and the freezer still work, but vessels compete with the host's programs as equals
    (for machines that are test infrastructure, not donors' machines).
    """

    def __init__(self, kind: str, cpu_base: Path, freezer_base: Path | None,
                 idle: bool = True) -> None:
        self.kind = kind
        self.idle = idle
        self._start_root = f"{ROOT}-normal"
        self._root = ROOT if idle else self._start_root
        self._roots = sorted({self._start_root, self._root})
        self._cpu_base = cpu_base
        self._freezer_base = freezer_base
        self._mine = f"s{os.getpid()}"

    @property
    def mechanism(self) -> str:
        """What status pages show: e.g. ``cgroup-v1 cpu quota + freezer``."""
        freeze = " + freezer" if self._freezer_base is not None else ""
        return f"cgroup-{self.kind} cpu quota{freeze}"

    def _bases(self) -> list[Path]:
        return [b for b in {self._cpu_base, self._freezer_base} if b is not None]

    def setup(self) -> None:
        """Create ``seattle`` (idle, weight 2) and this supervisor's group under it."""
        for base in self._bases():
            for root in self._roots:
                (base / root / self._mine).mkdir(parents=True, exist_ok=True)
        top = self._cpu_base / self._root
        if not self.idle:
            return
        try:  # an idle group (kernel 5.15+) cannot have its weight set: try it first
            if (top / "cpu.idle").read_text().strip() != "1":
                _write(top / "cpu.idle", "1")
        except OSError:
            _write(top / ("cpu.shares" if self.kind == "v1" else "cpu.weight"),
                   "2" if self.kind == "v1" else "1")

    def vessel(self, name: str, pid: int, share: float) -> VesselCgroup:
        """Make (or reuse) the vessel's group, set its quota and move ``pid`` into it."""
        if not _NAME.fullmatch(name):
            raise OSError(errno.EINVAL, f"bad vessel name for a cgroup: {name!r}")
        cpu = self._cpu_base / self._start_root / self._mine / name
        freezer = (None if self._freezer_base is None
                   else self._freezer_base / self._start_root / self._mine / name)
        idle_dir = self._cpu_base / self._root / self._mine / name
        settle_to = None if self._root == self._start_root else idle_dir
        for directory in {cpu, freezer} - {None}:
            assert directory is not None
            directory.mkdir(exist_ok=True)
        group = VesselCgroup(self.kind, cpu, freezer, settle_to)
        group.thaw()
        group.set_share(share)
        group.add(pid)
        return group

    def sweep(self) -> list[str]:
        """Remove the empty groups of supervisors that are gone (and our own leftovers)."""
        removed = []
        for base in self._bases():
            for sup in sorted(s for root in self._roots for s in (base / root).glob("s*")):
                pid = sup.name[1:]
                if not pid.isdigit() or (sup.name != self._mine and Path(f"/proc/{pid}").exists()):
                    continue
                for child in sup.iterdir():
                    if child.is_dir():
                        _rmdir_thawed(child, self.kind)
                if sup.name != self._mine:
                    try:
                        sup.rmdir()
                        removed.append(str(sup))
                    except OSError:
                        pass
        return removed

    def close(self) -> None:
        """Remove this supervisor's own group (its vessels' groups are removed as they end)."""
        for base in self._bases():
            try:
                for root in self._roots:
                    with contextlib.suppress(OSError):
                        (base / root / self._mine).rmdir()
            except OSError:
                pass


def _rmdir_thawed(directory: Path, kind: str) -> None:
    group = VesselCgroup(kind, directory, directory)
    group.remove()


def probe(mountinfo: str | None = None, *, idle: bool = True) -> CgroupHost | None:
    """A ``CgroupHost`` if this host lets us make CPU-quota groups, else None (logged)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    mounts = parse_mountinfo(mountinfo)
    host: CgroupHost | None = None
    if mounts.v1_cpu is not None and (mounts.v1_cpu / "cpu.cfs_quota_us").exists():
        freezer = mounts.v1_freezer if mounts.v1_freezer is not None else None
        host = CgroupHost("v1", mounts.v1_cpu, freezer, idle)
    elif mounts.v2 is not None and "cpu" in _read(mounts.v2 / "cgroup.controllers").split():
        _write_quiet(mounts.v2 / "cgroup.subtree_control", "+cpu")
        host = CgroupHost("v2", mounts.v2, mounts.v2, idle)
    if host is None:
        return None
    try:
        host.setup()
        if host.kind == "v2":
            for root in host._roots:
                top = mounts.v2 / root  # type: ignore[operator]
                _write_quiet(top / "cgroup.subtree_control", "+cpu")
                _write_quiet(top / host._mine / "cgroup.subtree_control", "+cpu")
        host.sweep()
    except OSError as exc:
        log.info("cgroups present but not usable (%s): falling back to the duty cycle", exc)
        return None
    return host


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _write_quiet(path: Path, value: str) -> None:
    try:
        _write(path, value)
    except OSError as exc:
        log.debug("cgroup %s <- %s: %s", path, value, exc)
