"""Processes a test run left behind: found by a mark in their environment, then killed.

Every pytest process (the controller and each xdist worker) puts its own mark in
``$SEATTLE_TEST_RUN``; what it starts (daemons, ``seattle-testbed`` and its node managers,
lab processes in namespaces) inherits it, also after a double fork or ``setsid``. When a
worker's session ends, whatever still carries its mark was left behind: a test cut off by
pytest-timeout, a teardown that did not run, a daemon that outlived its test. The sweep kills
those processes and names them, so one leaky test cannot slow or break the rest of a run,
and the summary says which processes they were. Vessels start with an empty environment and
are the sandbox's to clean up (a new supervisor sweeps a dead one's groups).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

MARK = "SEATTLE_TEST_RUN"


@dataclass(frozen=True, slots=True)
class Leftover:
    pid: int
    command: str


def mark_this_process() -> tuple[str, Path]:
    """Give this process (and what it will start) a mark of its own; returns the mark and the
    run's report folder (an xdist worker shares its controller's, inherited with the old mark)."""
    run = os.environ.get(MARK) if os.environ.get("PYTEST_XDIST_WORKER") else None
    mark = f"{os.getpid()}-{secrets.token_hex(4)}"
    os.environ[MARK] = mark
    return mark, Path(tempfile.gettempdir()) / f"seattle-leftovers-{run or mark}"


def record(folder: Path, leftovers: list[Leftover]) -> None:
    """Append what a sweep found to the run's report folder."""
    if leftovers:
        folder.mkdir(exist_ok=True)
        with (folder / f"{os.getpid()}.json").open("a") as handle:
            handle.writelines(json.dumps(asdict(leftover)) + "\n" for leftover in leftovers)


def recorded(folder: Path) -> list[Leftover]:
    """Everything the run's sweeps recorded (and the folder removed)."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        found += [Leftover(**json.loads(line)) for line in path.read_text().splitlines()]
        path.unlink()
    if folder.is_dir():
        folder.rmdir()
    return found


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return needle in handle.read().split(b"\0")
    except OSError:  # gone, or a kernel thread
        return False


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def find_leftovers(mark: str) -> list[Leftover]:
    """Live processes other than this one that carry ``mark``."""
    needle = f"{MARK}={mark}".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if _environ_has(pid, needle) and not _zombie(pid):
            found.append(Leftover(pid, _command(pid)))
    return found


def kill_leftovers(mark: str) -> list[Leftover]:
    """SIGKILL (after SIGCONT, for stopped ones) every leftover of ``mark``; returns them."""
    leftovers = find_leftovers(mark)
    for leftover in leftovers:
        for signum in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(leftover.pid, signum)
            except ProcessLookupError:
                break
    return leftovers
