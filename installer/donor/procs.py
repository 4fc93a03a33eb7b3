"""Detached node manager processes: start in a new session, find by pid + marker, stop.

A pid alone is not proof: pids are reused. A process counts as ours only if its command line
contains the marker (the node's state directory) and it is not a zombie.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def spawn_detached(argv: Sequence[str], output: Path, cwd: Path,
                   env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session (it outlives us), output appended to ``output``."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(output), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    old = Path.cwd()
    os.chdir(cwd)  # posix_spawn has no cwd argument before 3.13
    try:
        return os.posix_spawn(argv[0], list(argv), dict(os.environ if env is None else env),
                              file_actions=actions, setsid=True)
    finally:
        os.chdir(old)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (no zombies in long-lived callers)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def find_process(pid: int | None, marker: str) -> psutil.Process | None:
    """The live process ``pid`` if its command line mentions ``marker``."""
    if pid is None or pid <= 0:
        return None
    _reap(pid)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if any(marker in part for part in process.cmdline()):
            return process
    except (psutil.Error, OSError):
        return None
    return None


def read_int_file(path: Path) -> int | None:
    """The integer in a small state file (a pid, a port), or None if missing or malformed."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def wait_gone(pid: int, marker: str, timeout: float) -> bool:
    """Poll until the process is gone; True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if find_process(pid, marker) is None:
            return True
        time.sleep(0.05)
    return find_process(pid, marker) is None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_process(pid: int, marker: str, timeout: float = 15.0) -> None:
    """SIGTERM (clean stop), then SIGKILL the whole session if it does not end in time."""
    process = find_process(pid, marker)
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, marker, timeout):
        log.warning("pid %d did not stop after SIGTERM; killing it", pid)
        _signal_group(pid, signal.SIGKILL)
        wait_gone(pid, marker, 5.0)
    _signal_group(pid, signal.SIGKILL)  # stragglers left in the node's session
    _reap(pid)
