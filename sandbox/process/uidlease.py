"""Host-wide leases of vessel uids.

RLIMIT_NPROC counts every process of a uid on the whole host, so two running vessels must
never share a uid, whichever supervisor started them (node managers, testbeds, local
``seattle-sandbox run``s). A lease is an exclusive ``flock`` on ``LEASE_DIR/<uid>.lock``.

Invariants:
- A uid runs at most one vessel program on the host: its lock is held from before the
  program starts until after it has been reaped.
- The kernel drops a lock when the last descriptor to it closes, so the leases of a
  supervisor that crashed (even SIGKILL) free themselves; no clean-up step is needed.
- A process found running under a uid whose lock was free is a leftover of a dead
  supervisor: it is killed before the uid is handed out, and a uid whose leftovers cannot
  be made to disappear (e.g. unreaped zombies) is skipped.
- That scan reads every process's status, which takes tens of milliseconds on a busy host,
  so a supervisor keeps a spare lease acquired ahead of need (``SpareLeases``). A spare
  stays locked from its scan until its vessel is reaped, so nobody else can start a
  process as its uid in between.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from sandbox.errors import UidExhausted

log = logging.getLogger(__name__)

LEASE_DIR = Path("/run/seattle-sandbox/uids")
UID_BASE = 61000
UID_COUNT = 1000
LEFTOVER_WAIT = 1.0
"""Seconds to wait for killed leftovers of a uid to disappear before skipping the uid."""


@dataclass(slots=True)
class UidLease:
    """A held lease on ``uid``; ``release`` (or process death) frees it."""

    uid: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is ``uid`` (from /proc; vanished processes are skipped)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def kill_leftovers(uid: int, *, wait: float = LEFTOVER_WAIT) -> bool:
    """SIGKILL every process of ``uid``; True once none is left (zombies count as left)."""
    deadline = time.monotonic() + wait
    while pids := processes_of_uid(uid):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def acquire_uid(
    *, lease_dir: Path = LEASE_DIR, base: int = UID_BASE, count: int = UID_COUNT,
) -> UidLease:
    """Lease the lowest free vessel uid of the host, killing leftovers that still run as it.

    Raises UidExhausted when every uid in ``[base, base + count)`` is leased or unusable.
    """
    lease_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for uid in range(base, base + count):
        fd = _try_lock(lease_dir / f"{uid}.lock")
        if fd is None:
            continue
        if kill_leftovers(uid):
            return UidLease(uid, fd)
        log.warning("uid %d still has processes after SIGKILL (zombies?); skipped", uid)
        os.close(fd)
    raise UidExhausted(f"no free vessel uid in {base}..{base + count - 1}")


class SpareLeases:
    """Leases acquired ahead of need, so that a vessel start does not wait for the scan.

    ``take`` hands out a spare at once (or acquires one if none is left) and wakes
    ``keep_filled``, which runs in the supervisor's nursery and releases the spares when
    cancelled.
    """

    def __init__(self, acquire: Callable[[], UidLease] = acquire_uid, keep: int = 1) -> None:
        self._acquire = acquire
        self._keep = keep
        self._spare: list[UidLease] = []
        self._wanted = trio.Event()

    async def take(self) -> UidLease:
        self._wanted.set()
        if self._spare:
            return self._spare.pop()
        return await trio.to_thread.run_sync(self._acquire)

    async def keep_filled(self) -> None:
        try:
            while True:
                while len(self._spare) < self._keep:
                    try:
                        self._spare.append(await trio.to_thread.run_sync(self._acquire))
                    except UidExhausted as exc:
                        log.warning("no spare vessel uid: %s", exc)
                        break
                self._wanted = trio.Event()
                await self._wanted.wait()
        finally:
            for lease in self._spare:
                lease.release()
            self._spare.clear()
