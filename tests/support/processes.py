"""Processes seen from /proc: which run in a directory, in what state; wait until they are gone."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.polling import NotYet, eventually_sync


def processes_in(directory: Path) -> list[int]:
    """Live (non-zombie) pids whose cwd is ``directory``."""
    found = []
    target = str(directory.resolve())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/cwd") != target:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(directory: Path, seconds: float) -> list[int]:
    """Wait until no process runs in ``directory``; the pids still there after ``seconds``."""
    try:
        eventually_sync(lambda: not processes_in(directory), timeout=seconds)
    except NotYet:
        return processes_in(directory)
    return []


def state_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return "gone"
