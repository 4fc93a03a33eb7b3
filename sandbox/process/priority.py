"""Vessel processes yield to the donor: the lowest CPU and I/O priority the host offers.

Set by the (root or same-uid) supervisor on every thread of a vessel's child once its
program runs; threads the program makes later inherit it. ``SCHED_IDLE``
runs only when no normal task wants the core; where the host refuses it, nice 19. The
I/O class is ``IOPRIO_CLASS_IDLE`` (``ioprio_set``, no libc wrapper: a raw syscall).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13
IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314, "riscv64": 30}
"""``ioprio_set`` syscall numbers by machine (absent: the I/O class is left alone)."""


def lower_priority(pid: int) -> str:
    """Put ``pid`` at the lowest CPU and I/O priority; return what was applied.

    The answer reads like ``"sched_idle+io_idle"`` or ``"nice19"`` (for status pages).
    Never raises: a host that refuses both leaves the process as it was (``"normal"``).
    """
    parts = [_lower_cpu(pid)]
    if _idle_io(pid):
        parts.append("io_idle")
    return "+".join(parts)


def lower_all_threads(pid: int) -> str:
    """``lower_priority`` for every thread of ``pid`` (each thread has its own policy), and
    nice 19 for its session's autogroup."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except (OSError, ValueError):
        tids = [pid]
    applied = [lower_priority(tid) for tid in tids]
    if _lower_autogroup(pid):
        applied.append("autogroup19")
    return "+".join(dict.fromkeys(part for a in applied for part in a.split("+"))) or "normal"


def _lower_autogroup(pid: int) -> bool:
    """With ``sched_autogroup`` each session is a scheduling group of its own, and a task's
    SCHED_IDLE only counts inside its group: the vessel's session (it is a session leader)
    must itself weigh least, or it competes with the donor's sessions as an equal. (Tasks in
    a cgroup other than the root are not in an autogroup; this then does nothing.)"""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as handle:
            handle.write("19")
        return True
    except OSError as exc:
        log.debug("autogroup nice for %d: %s", pid, exc)
        return False


def _lower_cpu(pid: int) -> str:
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return "sched_idle"
    except (OSError, AttributeError) as exc:
        log.debug("SCHED_IDLE refused for %d: %s", pid, exc)
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
        return "nice19"
    except OSError as exc:
        log.warning("cannot lower the priority of vessel process %d: %s", pid, exc)
        return "normal"


def _idle_io(pid: int) -> bool:
    number = IOPRIO_SET.get(platform.machine())
    if number is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    value = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT
    if libc.syscall(number, IOPRIO_WHO_PROCESS, pid, value) != 0:
        log.debug("ioprio_set refused for %d: errno %d", pid, ctypes.get_errno())
        return False
    return True


def policy_of(pid: int) -> tuple[int, int]:
    """(scheduling policy, nice) of ``pid``: for tests and status."""
    return os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)
