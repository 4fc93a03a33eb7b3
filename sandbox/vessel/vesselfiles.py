"""Repy's file API over one flat vessel directory (``repy_v2/emulfile.py``).

Names are checked by exact type and Seattle's rule (``[a-z0-9._-]``, at most 120, no leading
dot); every open is ``openat`` relative to the vessel directory's descriptor with
``O_NOFOLLOW``, so neither ``..`` nor a symlink can leave the directory. Disk use is the
sum of file sizes plus 4096 per file, as Seattle counted it.
"""

from __future__ import annotations

import gc
import os
import re
import stat
import threading
from collections.abc import Callable

from sandbox.repy import (
    FileClosedError,
    FileError,
    FileInUseError,
    RepyArgumentError,
    RepyFileNotFoundError,
    ResourceExhaustedError,
    SeekPastEndOfFileError,
)
from sandbox.vessel.nanny import Nanny

FILENAME_RE = re.compile(r"[a-z0-9._-]{1,120}")
BLOCK = 4096
"""Seattle charges file I/O per 4 KiB block touched; a metadata operation (open, create,
list, remove, existence check) costs one block of ``fileread`` or ``filewrite``."""
PER_FILE_OVERHEAD = 4096
"""Disk space counted per file on top of its size (its inode and directory entry, as one
block), so ``diskused`` also bounds how many empty files a vessel can create."""


def check_filename(name: object) -> str:
    """Return ``name`` if it is a plain str obeying Repy's rule, else raise RepyArgumentError."""
    if type(name) is not str:
        raise RepyArgumentError("filename must be a str")
    if not FILENAME_RE.fullmatch(name) or name in (".", "..") or name.startswith("."):
        raise RepyArgumentError(
            f"illegal filename {name[:130]!r}: use 1-120 of a-z 0-9 . _ - and no leading dot"
        )
    return name


def blocks_touched(offset: int, length: int) -> int:
    """Bytes charged for touching ``[offset, offset+length)``: 4096 per aligned block.

    Seattle's rule (``emulfile.readat``): ``readat(8, 4090)`` touches two blocks.
    """
    end = offset + length
    count = end // BLOCK - offset // BLOCK + (1 if end % BLOCK else 0)
    return count * BLOCK


def _write_all(fd: int, data: bytes, offset: int, name: str) -> None:
    """``pwrite`` all of ``data``; a full host disk or the file size cap is a FileError."""
    view = memoryview(data)
    while view:
        try:
            written = os.pwrite(fd, view, offset)
        except OSError as exc:  # ENOSPC, EFBIG (RLIMIT_FSIZE), EDQUOT
            raise FileError(f"cannot write {name}: {exc.strerror}") from None
        view, offset = view[written:], offset + written


def disk_use(dir_fd: int) -> int:
    """Sum of regular file sizes plus 4096 per entry in the vessel directory."""
    total = 0
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            total += PER_FILE_OVERHEAD + (info.st_size if stat.S_ISREG(info.st_mode) else 0)
    return total


class VesselFiles:
    """The open-file table of one vessel.

    Charges follow Seattle's ``emulfile.py``: 4096 ``fileread`` per open, list and remove
    (the existence check), 4096 ``filewrite`` when a file is created or removed, and 4096
    per aligned block touched by ``readat``/``writeat``. A call first waits while the
    resource is over budget, does its work, then is charged; the charge's wait happens
    outside every lock, so ``close()`` never queues behind a throttled read or write.
    """

    def __init__(self, dir_fd: int, nanny: Nanny, on_disk_full: Callable[[str], None]) -> None:
        self._dir_fd = dir_fd
        self._nanny = nanny
        self._on_disk_full = on_disk_full
        self._open: set[str] = set()
        self._lock = threading.RLock()  # re-entrant: a collected handle closes from __del__

    def openfile(self, filename: object, create: object) -> RepyFile:
        if type(filename) is not str or len(filename) > 120:
            raise RepyArgumentError("filename must be a str of at most 120 characters")
        if type(create) is not bool:
            raise RepyArgumentError("create must be a bool")
        name = check_filename(filename)
        with self._lock:
            exists = self._check_usable(name, must_exist=not create)
            self._add_file_item()
            try:
                fd = self._open_fd(name, create and not exists)
            except BaseException:
                self._nanny.remove_item("filesopened")
                raise
            self._open.add(name)
        return RepyFile(self, name, fd)

    def _check_usable(self, name: str, *, must_exist: bool) -> bool:
        """In-use check, then the charged existence check; return whether ``name`` exists."""
        if name in self._open:
            raise FileInUseError(f"{name} is already open")
        self._nanny.wait("fileread")
        try:
            exists = stat.S_ISREG(os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            exists = False
        self._nanny.charge("fileread", BLOCK)
        if must_exist and not exists:
            raise RepyFileNotFoundError(f"{name} does not exist")
        return exists

    def _add_file_item(self) -> None:
        """Take a ``filesopened`` item; first let dropped handles close, as Seattle did."""
        try:
            self._nanny.add_item("filesopened")
        except ResourceExhaustedError:
            gc.collect()
            self._nanny.add_item("filesopened")

    def _open_fd(self, name: str, create: bool) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        if create:
            self.ensure_room(PER_FILE_OVERHEAD)
            self._nanny.wait("filewrite")
        try:
            fd = os.open(name, flags | (os.O_CREAT if create else 0), 0o600, dir_fd=self._dir_fd)
        except FileNotFoundError:
            raise RepyFileNotFoundError(f"{name} does not exist") from None
        except OSError as exc:
            raise RepyArgumentError(f"cannot open {name}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RepyArgumentError(f"{name} is not a regular file")
        if create:
            self._nanny.charge("filewrite", BLOCK)
        return fd

    def listfiles(self) -> list[str]:
        self._nanny.wait("fileread")
        names = os.listdir(self._dir_fd)
        self._nanny.charge("fileread", BLOCK)
        return sorted(n for n in names if FILENAME_RE.fullmatch(n) and not n.startswith("."))

    def removefile(self, filename: object) -> None:
        if type(filename) is not str or len(filename) > 120:
            raise RepyArgumentError("filename must be a str of at most 120 characters")
        name = check_filename(filename)
        with self._lock:
            self._check_usable(name, must_exist=True)
            self._nanny.wait("filewrite")
            try:
                os.unlink(name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                raise RepyFileNotFoundError(f"{name} does not exist") from None
        self._nanny.charge("filewrite", BLOCK)

    def ensure_room(self, growth: int) -> None:
        """Stop the vessel if ``growth`` more bytes would exceed ``diskused``."""
        quota = int(self._nanny.table["diskused"])  # read each time: a reshare may change it
        if growth > 0 and disk_use(self._dir_fd) + growth > quota:
            self._on_disk_full(f"diskused limit exceeded ({quota} bytes)")

    def closed(self, name: str) -> None:
        with self._lock:
            self._open.discard(name)
            self._nanny.remove_item("filesopened")

    @property
    def nanny(self) -> Nanny:
        return self._nanny


class RepyFile:
    """An open vessel file: ``readat``, ``writeat``, ``close``; no cursor, no raw io.

    A handle the program drops is closed when it is collected, as in Seattle, so its
    ``filesopened`` item and the file's in-use mark come back.
    """

    __slots__ = ("_fd", "_files", "_lock", "_name", "_size")

    def __init__(self, files: VesselFiles, name: str, fd: int) -> None:
        self._files = files
        self._name = name
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._size = os.fstat(fd).st_size

    def _live_fd(self, offset: int) -> int:
        """The descriptor, after the closed and past-the-end checks (lock held)."""
        if self._fd is None:
            raise FileClosedError(f"{self._name} is closed")
        if offset > self._size:
            raise SeekPastEndOfFileError(f"offset {offset} is past the end ({self._size})")
        return self._fd

    def readat(self, sizelimit: object, offset: object) -> bytes:
        """Read up to ``sizelimit`` bytes (None: to the end) at ``offset``."""
        if sizelimit is not None and (type(sizelimit) is not int or sizelimit < 0):
            raise RepyArgumentError("sizelimit must be None or an int >= 0")
        if type(offset) is not int or offset < 0:
            raise RepyArgumentError("offset must be an int >= 0")
        nanny = self._files.nanny
        nanny.wait("fileread")
        with self._lock:
            fd = self._live_fd(offset)
            count = self._size - offset if sizelimit is None else min(sizelimit, self._size - offset)
            data = os.pread(fd, count, offset)
        nanny.charge("fileread", blocks_touched(offset, len(data)))
        return data

    def writeat(self, data: object, offset: object) -> None:
        """Write ``data`` (bytes, or str as UTF-8) at ``offset`` (at most the file size)."""
        if type(data) is str:
            data = data.encode("utf-8")
        if type(data) is not bytes:
            raise RepyArgumentError("data must be bytes or str")
        if type(offset) is not int or offset < 0:
            raise RepyArgumentError("offset must be an int >= 0")
        nanny = self._files.nanny
        nanny.wait("filewrite")
        with self._lock:
            fd = self._live_fd(offset)
            self._files.ensure_room(offset + len(data) - self._size)
            _write_all(fd, data, offset, self._name)
            self._size = max(self._size, offset + len(data))
        nanny.charge("filewrite", blocks_touched(offset, len(data)))

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                raise FileClosedError(f"{self._name} is already closed")
            fd, self._fd = self._fd, None
            os.close(fd)
        self._files.closed(self._name)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                self.close()
            except Exception:  # never let a collection raise into unrelated code
                pass

    def __repr__(self) -> str:
        return f"<file {self._name}>"
