"""How a vessel's process yields to the donor: priority, CPU cap and pause, in one place.

The supervisor calls ``Yielding.attach`` once per spawned child (before the child gets its
config) and keeps the ``Attached`` it returns: that puts the child into a cgroup with a CPU
quota where the host has one (``cgroups.py``). Once the program itself runs (the runner's
"ready"), ``Attached.settle`` lowers every thread to the host's lowest priority
(``priority.py``) and moves the child into the idle group: the runner's own start-up
(interpreter, policy compile; bounded CPU) is not starved by a busy host, the program is.
``Attached`` also pauses and resumes the child: with the freezer where there is one, else by
holding a SIGSTOP. ``Attached.duty_cycle`` tells the supervisor whether it must still hold
the CPU share itself with SIGSTOP/SIGCONT (no cgroup quota).
"""

from __future__ import annotations

import logging
import os
import signal

from sandbox.process.cgroups import CgroupHost, VesselCgroup, probe
from sandbox.process.priority import lower_all_threads

log = logging.getLogger(__name__)


class Attached:
    """One child's controls. ``paused`` is the reason it is paused, or None."""

    def __init__(self, pid: int, group: VesselCgroup | None, idle: bool) -> None:
        self.pid = pid
        self.group = group
        self.idle = idle
        self.priority = "normal"
        self.paused: str | None = None

    def settle(self) -> None:
        """The program runs: lowest priority for every thread, and the idle cgroup."""
        if not self.idle:
            return
        self.priority = lower_all_threads(self.pid)
        if self.group is not None:
            try:
                self.group.settle()
            except OSError as exc:
                log.warning("pid %d stays in its start-up cgroup: %s", self.pid, exc)

    @property
    def duty_cycle(self) -> bool:
        """True when the supervisor holds the CPU share with SIGSTOP/SIGCONT."""
        return self.group is None

    @property
    def pause_mechanism(self) -> str:
        return "freezer" if self.group is not None and self.group.can_freeze else "sigstop"

    def pause(self, reason: str) -> None:
        """Freeze the process (group); a second pause only changes the reason."""
        if self.paused is None:
            if self.pause_mechanism == "freezer":
                assert self.group is not None
                self.group.freeze()
            else:
                _signal_group(self.pid, signal.SIGSTOP)
        self.paused = reason

    def resume(self) -> None:
        if self.paused is None:
            return
        self.paused = None
        if self.pause_mechanism == "freezer":
            assert self.group is not None
            self.group.thaw()
        else:
            _signal_group(self.pid, signal.SIGCONT)

    def killed(self) -> None:
        """After a SIGKILL: thaw, so a frozen process can die."""
        if self.group is not None:
            self.group.thaw()

    def release(self) -> None:
        """The child is gone: remove its group."""
        if self.group is not None:
            self.group.remove()


PRIORITY_ENV = "SEATTLE_VESSEL_PRIORITY"
PRIORITIES = ("idle", "normal")


def default_priority() -> str:
    """``idle`` (donors' machines), or ``normal`` where ``$SEATTLE_VESSEL_PRIORITY`` says so."""
    value = os.environ.get(PRIORITY_ENV, "idle")
    return value if value in PRIORITIES else "idle"


class Yielding:
    """Per-supervisor: the cgroup host (if any) and how children are lowered.

    ``priority="idle"`` (the default) yields to every other program of the host;
    ``"normal"`` keeps vessels at normal priority (shared test machines and testbeds, where
    the other programs are not a donor's and starving vessels would only slow tests down).
    """

    def __init__(self, *, use_cgroups: bool = True, priority: str | None = None) -> None:
        self.priority = priority or default_priority()
        if self.priority not in PRIORITIES:
            raise ValueError(f"vessel priority must be one of {PRIORITIES}")
        idle = self.priority == "idle"
        self.cgroups: CgroupHost | None = (
            probe(idle=idle) if use_cgroups and os.geteuid() == 0 else None)

    @property
    def mechanism(self) -> str:
        """The CPU share mechanism, for status: a cgroup quota or the duty cycle."""
        held = self.cgroups.mechanism if self.cgroups is not None else "sigstop duty cycle"
        return held + (", idle priority" if self.priority == "idle" else ", normal priority")

    def attach(self, vessel: str, pid: int, share: float) -> Attached:
        group = None
        if self.cgroups is not None:
            try:
                group = self.cgroups.vessel(vessel, pid, share)
            except OSError as exc:
                log.warning("vessel %s: no cgroup (%s); using the duty cycle", vessel, exc)
        return Attached(pid, group, self.priority == "idle")

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
