"""Vessel directories on disk (blocking; the server calls these through worker threads).

Layout under the state directory:

    vessels/<vessel>/<file>     flat: no subdirectories, Repy file names only
    logs/<vessel>.log           the program's log (kept outside the vessel directory)
    tmp/                        uploads being written; emptied at start-up

Invariants: an upload is written to ``tmp/``, fsynced and renamed into place, so after a
crash a vessel file is either the old or the new content, never a prefix. Disk use is
counted as Seattle's sandbox does: file size plus 4096 bytes per file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from pathlib import Path

from nodemanager.errors import DiskQuotaExceeded, FileNotFound, FileTooLarge, HostStorageFull
from nodemanager.proto.messages import MAX_FILE_BYTES, RESERVED_PREFIX

log = logging.getLogger(__name__)

PER_FILE_OVERHEAD = 4096


class VesselStore:
    """The vessel directories, logs and upload staging area under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.vessels_dir = root / "vessels"
        self.logs_dir = root / "logs"
        self.tmp_dir = root / "tmp"
        for directory in (self.vessels_dir, self.logs_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # No chmod needed: the sandbox reaches a vessel dir by descriptor, not by path, so
        # the state dir may stay private (0700) while vessels run as their own uids.

    def directory(self, vessel: str) -> Path:
        return self.vessels_dir / vessel

    def log_path(self, vessel: str) -> Path:
        return self.logs_dir / f"{vessel}.log"

    def ensure(self, vessel: str) -> None:
        self.directory(vessel).mkdir(exist_ok=True)

    def _entries(self, vessel: str) -> dict[str, os.stat_result]:
        result = {}
        with os.scandir(self.directory(vessel)) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    result[entry.name] = entry.stat(follow_symlinks=False)
        return result

    def disk_use(self, vessel: str) -> int:
        """Bytes charged to the vessel: sizes of regular files plus 4096 per entry."""
        return sum(
            PER_FILE_OVERHEAD + (info.st_size if stat.S_ISREG(info.st_mode) else 0)
            for info in self._entries(vessel).values()
        )

    def write(self, vessel: str, filename: str, data: bytes, quota: int) -> None:
        """Atomically create or replace a file; DiskQuotaExceeded if over ``quota``."""
        entries = self._entries(vessel)
        used = sum(PER_FILE_OVERHEAD + e.st_size for e in entries.values())
        old = entries.get(filename)
        if old is not None:
            used -= PER_FILE_OVERHEAD + old.st_size
        if used + PER_FILE_OVERHEAD + len(data) > quota:
            raise DiskQuotaExceeded(
                f"not enough free disk space: {used} of {quota} bytes used, "
                f"file needs {len(data) + PER_FILE_OVERHEAD}")
        tmp = self.tmp_dir / f"{vessel}.{filename}.{os.getpid()}.upload"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.directory(vessel) / filename)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise HostStorageFull(f"the node's disk is full ({exc.strerror}); "
                                      "the vessel's files are unchanged") from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory(vessel))

    def read(self, vessel: str, filename: str) -> bytes:
        try:
            fd = os.open(self.directory(vessel) / filename, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError) as exc:
            raise FileNotFound(f"file {filename!r} not found in {vessel}") from exc
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise FileNotFound(f"{filename!r} is not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise FileTooLarge(f"{filename!r} is larger than {MAX_FILE_BYTES} bytes")
        return data

    def list(self, vessel: str) -> list[str]:
        return sorted(n for n in self._entries(vessel) if not n.startswith(RESERVED_PREFIX))

    def delete(self, vessel: str, filename: str) -> None:
        try:
            (self.directory(vessel) / filename).unlink()
        except FileNotFoundError as exc:
            raise FileNotFound(f"file {filename!r} not found in {vessel}") from exc

    def wipe(self, vessel: str) -> None:
        """Delete every non-private file and the log (ResetVessel)."""
        for name in self._entries(vessel):
            if not name.startswith(RESERVED_PREFIX):
                _remove(self.directory(vessel) / name)
        self.log_path(vessel).unlink(missing_ok=True)

    def destroy(self, vessel: str) -> None:
        """Remove the vessel's directory and log (split/join originals)."""
        shutil.rmtree(self.directory(vessel), ignore_errors=True)
        self.log_path(vessel).unlink(missing_ok=True)

    def reconcile(self, vessels: set[str]) -> None:
        """Start-up repair: empty ``tmp/``, create missing dirs, remove orphaned ones."""
        for leftover in self.tmp_dir.iterdir():
            _remove(leftover)
        for name in vessels:
            self.ensure(name)
        for entry in self.vessels_dir.iterdir():
            if entry.name not in vessels:
                log.info("removing orphaned vessel directory %s", entry.name)
                _remove(entry)
        for entry in self.logs_dir.iterdir():
            if entry.name.removesuffix(".log") not in vessels:
                _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
