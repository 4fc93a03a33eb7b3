"""Every node manager is an update mirror: a small read-only file service over TCP (trio).

Protocol (one request per connection; docs/updates.md)::

    client -> u32be length + msgpack {"v": 1, "get": PATH}
    server -> u32be length + msgpack {"v": 1, "ok": true, "size": N}, then N raw bytes
           |  u32be length + msgpack {"v": 1, "ok": false, "code": "not_found" | "bad_request"
                                       | "busy", "message": str}

``PATH`` is ``metadata/NAME`` or ``targets/DIR/NAME`` (``check_path``). A mirror serves only
what its own TUF client verified (``MirrorStore``), but a reader trusts nothing it receives:
TUF checks every byte, and the client side here bounds sizes and time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import trio

from nodemanager.errors import MirrorError

log = logging.getLogger(__name__)

VERSION = 1
HEADER_BYTES = 4
MAX_REQUEST = 1024
MAX_HEADER = 1024
MAX_FILE = 64 * 1024 * 1024
CHUNK = 64 * 1024
PATH_RE = re.compile(r"(metadata|targets)(/[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}){1,2}")


def check_path(path: object) -> str:
    """A safe mirror path (no ``..``, no hidden names, two or three parts); MirrorError else."""
    if type(path) is not str or len(path) > 300 or not PATH_RE.fullmatch(path):
        raise MirrorError(f"bad mirror path {str(path)[:80]!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise MirrorError(f"bad mirror path {path[:80]!r}")
    return path


class NotHeld(MirrorError):
    """Raised when a mirror answers that it does not hold the file (maps to a 404)."""


class Stalled(MirrorError):
    """Raised when a mirror sends nothing for a whole step timeout."""


class BadAnswer(MirrorError):
    """Raised when a mirror answers out of protocol (a bad frame, a size above the cap)."""


def _frame(obj: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(obj, use_bin_type=True)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


class _Reader:
    """Exact reads from a stream with one buffer (a frame, then raw file bytes)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(max(CHUNK, size - len(self.buffer)))
            if not chunk:
                raise MirrorError("connection closed early")
            self.buffer += chunk
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    async def frame(self, limit: int) -> dict[str, Any]:
        length = int.from_bytes(await self.exactly(HEADER_BYTES), "big")
        if length > limit:
            raise BadAnswer(f"frame of {length} bytes is above {limit}")
        try:
            obj = msgpack.unpackb(await self.exactly(length), raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BadAnswer("frame is not msgpack") from exc
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            raise BadAnswer("frame is not a version-1 map")
        return obj

    async def some(self, limit: int) -> bytes:
        """Buffered bytes first, then one receive (at most ``limit``)."""
        if self.buffer:
            out = bytes(self.buffer[:limit])
            del self.buffer[:limit]
            return out
        return bytes(await self.stream.receive_some(min(limit, CHUNK)))


@dataclass(slots=True)
class MirrorStats:
    files: int = 0
    bytes: int = 0
    refused: int = 0


class MirrorServer:
    """Serves files below ``root`` (a ``MirrorStore`` directory) to any peer."""

    def __init__(self, root: Path, *, max_clients: int = 32, request_timeout: float = 10.0,
                 send_timeout: float = 120.0) -> None:
        self.root = root
        self.stats = MirrorStats()
        self._limiter = trio.CapacityLimiter(max_clients)
        self.request_timeout = request_timeout
        self.send_timeout = send_timeout

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started(bound_port)``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self.handle, listeners)
            task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One request; every failure ends this connection only."""
        async with stream:
            try:
                if self._limiter.available_tokens == 0:
                    await stream.send_all(_frame({"v": VERSION, "ok": False, "code": "busy",
                                                  "message": "too many clients"}))
                    return
                async with self._limiter:
                    await self._answer(stream)
            except (MirrorError, trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                    trio.TooSlowError) as exc:
                self.stats.refused += 1
                log.debug("mirror request ended: %s", exc)
            except Exception:  # a daemon never dies of one request
                self.stats.refused += 1
                log.exception("mirror request failed")

    async def _answer(self, stream: trio.abc.Stream) -> None:
        reader = _Reader(stream)
        with trio.fail_after(self.request_timeout):
            request = await reader.frame(MAX_REQUEST)
        try:
            path = self.root / check_path(request.get("get"))
            handle = path.open("rb")
        except MirrorError as exc:
            await stream.send_all(_frame({"v": VERSION, "ok": False, "code": "bad_request",
                                          "message": str(exc)}))
            return
        except OSError:
            await stream.send_all(_frame({"v": VERSION, "ok": False, "code": "not_found",
                                          "message": "not held here"}))
            return
        with handle, trio.fail_after(self.send_timeout):
            size = os.fstat(handle.fileno()).st_size
            await stream.send_all(_frame({"v": VERSION, "ok": True, "size": size}))
            sent = 0
            while block := await trio.to_thread.run_sync(handle.read, CHUNK):
                await stream.send_all(block)
                sent += len(block)
        self.stats.files += 1
        self.stats.bytes += sent


class Download:
    """One file from one mirror, read chunk by chunk; every step bounded by ``timeout``.

    It has no context manager on purpose: ``tufclient`` drives it from a worker thread, one
    ``trio.from_thread.run`` call per step, and closes it explicitly.
    """

    def __init__(self, address: tuple[str, int], path: str, *, timeout: float = 10.0,
                 max_bytes: int = MAX_FILE) -> None:
        self.address = address
        self.path = check_path(path)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.size = 0
        self.received = 0
        self._stream: trio.SocketStream | None = None
        self._reader: _Reader | None = None

    @property
    def where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    async def open(self) -> int:
        """Connect, ask, read the answer's header; return the announced size."""
        try:
            with trio.fail_after(self.timeout):
                self._stream = await trio.open_tcp_stream(*self.address)
                self._reader = _Reader(self._stream)
                await self._stream.send_all(_frame({"v": VERSION, "get": self.path}))
                head = await self._reader.frame(MAX_HEADER)
        except trio.TooSlowError as exc:
            raise Stalled(f"mirror {self.where} sent no answer within {self.timeout} s") from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise MirrorError(f"mirror {self.where} failed: {exc!r}") from exc
        if head.get("ok") is not True:
            if head.get("code") == "not_found":
                raise NotHeld(f"{self.path} not held by {self.where}")
            raise MirrorError(f"mirror {self.where} refused {self.path}: "
                              f"{str(head.get('message'))[:200]}")
        size = head.get("size")
        if type(size) is not int or not 0 <= size <= self.max_bytes:
            raise BadAnswer(f"mirror {self.where} announced {str(size)[:20]} bytes for {self.path}"
                            f" (at most {self.max_bytes} allowed)")
        self.size = size
        return size

    async def chunk(self) -> bytes:
        """The next piece of the file; ``b""`` once ``size`` bytes came."""
        assert self._reader is not None, "open() first"
        remaining = self.size - self.received
        if remaining <= 0:
            return b""
        try:
            with trio.fail_after(self.timeout):
                data = await self._reader.some(min(remaining, CHUNK))
        except trio.TooSlowError as exc:
            raise Stalled(f"mirror {self.where} stalled after {self.received} of {self.size} "
                          "bytes") from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise MirrorError(f"mirror {self.where} failed: {exc!r}") from exc
        if not data:
            raise MirrorError(f"mirror {self.where} closed after {self.received} of {self.size}")
        self.received += len(data)
        return data

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None


class MirrorStore:
    """The directory a mirror serves: only metadata and targets this node verified.

    Invariant: ``timestamp.json`` is written last, so a peer never finds a timestamp
    naming a snapshot (or a snapshot naming targets) that is not here yet.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata = root / "metadata"
        self.targets = root / "targets"

    def target_path(self, target: str, sha256: str) -> Path:
        """Where target ``DIR/NAME`` with this hash lives (``targets/DIR/<sha256>.NAME``)."""
        directory, _, base = target.rpartition("/")
        return self.targets / directory / f"{sha256}.{base}"

    def export(self, tuf_dir: Path) -> None:
        """Copy the verified metadata from ngclient's cache under consistent-snapshot names."""
        self.metadata.mkdir(parents=True, exist_ok=True)
        for root in sorted((tuf_dir / "root_history").glob("*.root.json")):
            self._copy(root, self.metadata / root.name)
        for role in ("targets", "snapshot"):
            source = tuf_dir / f"{role}.json"
            if source.exists():
                version = json.loads(source.read_bytes())["signed"]["version"]
                self._copy(source, self.metadata / f"{int(version)}.{role}.json")
        if (tuf_dir / "timestamp.json").exists():
            self._copy(tuf_dir / "timestamp.json", self.metadata / "timestamp.json")

    def _copy(self, source: Path, dest: Path) -> None:
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)

    def prune(self, keep_targets: set[Path], keep_versions: int = 2) -> None:
        """Drop targets not in ``keep_targets`` and all but the newest snapshot/targets files."""
        for path in self.targets.rglob("*"):
            if path.is_file() and path not in keep_targets:
                path.unlink(missing_ok=True)
        for role in ("targets", "snapshot"):
            files = sorted(self.metadata.glob(f"*.{role}.json"),
                           key=lambda p: int(p.name.split(".")[0]))
            for old in files[:-keep_versions]:
                old.unlink(missing_ok=True)
