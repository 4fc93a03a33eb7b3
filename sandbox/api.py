"""The Repy V2 API handed to a vessel program (docs/seattle.md, The program's API), assembled per vessel.

Everything here runs inside the vessel child. Arguments are checked by exact type, so str
or int subclasses with lying methods never reach a host-side check.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from sandbox.compiler import PROGRAM_FILENAME, CompileFailed, compile_program
from sandbox.nanny import Nanny
from sandbox.policy import build_globals
from sandbox.repy import (
    CodeUnsafeError,
    ContextUnsafeError,
    LockDoubleReleaseError,
    RepyArgumentError,
)
from sandbox.vesselfiles import VesselFiles, disk_use
from sandbox.vesselnet import VesselNet

MAX_SLEEP = 10 * 365 * 86400.0
MAX_LOG_LINE = 1 << 20


class Host(Protocol):
    """What the API needs from the runner."""

    def write_log(self, data: bytes) -> None: ...
    def hard_exit(self, code: int, reason: str) -> NoReturn: ...
    def stoptimes(self) -> list[tuple[float, float]]: ...


@dataclass(frozen=True, slots=True)
class ExitCodes:
    """Exit codes of a vessel child (after Seattle's harshexit codes)."""

    normal: int = 0
    compile_error: int = 3
    uncaught: int = 6
    policy: int = 7
    internal: int = 8
    thread_uncaught: int = 30
    resource: int = 98
    exitall: int = 200


EXIT = ExitCodes()


class RepyLock:
    """``createlock()``: ``acquire(blocking)`` and ``release()``."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: object) -> bool:
        if type(blocking) is not bool:
            raise RepyArgumentError("blocking must be a bool")
        return self._lock.acquire(blocking)

    def release(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            raise LockDoubleReleaseError("lock is not held") from None


class LogPrinter:
    """What RestrictedPython's ``_print_`` hook makes: ``print(...)`` goes to the vessel log."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit

    def __call__(self) -> str:
        return ""  # ``printed``: output went to the log, nothing is collected

    def _call_print(self, *objects: object, **kwargs: object) -> None:
        sep = kwargs.pop("sep", " ")
        end = kwargs.pop("end", "\n")
        if kwargs or type(sep) is not str or type(end) is not str:
            raise RepyArgumentError("print() accepts only sep= and end= in vessels")
        self._emit(sep.join(str(o) for o in objects) + end)


class VirtualNamespace:
    """``createvirtualnamespace(code, name)``: code checked now, run by ``evaluate``."""

    __slots__ = ("_code", "_runtime")

    def __init__(self, runtime: VesselRuntime, code: object, name: object) -> None:
        if type(code) is not str or type(name) is not str:
            raise RepyArgumentError("code and name must be str")
        result = compile_program(code, filename=PROGRAM_FILENAME)
        if isinstance(result, CompileFailed):
            raise CodeUnsafeError("; ".join(result.errors))
        self._code = result.code
        self._runtime = runtime

    def evaluate(self, context: object) -> dict[str, Any]:
        if type(context) is not dict:
            raise RepyArgumentError("context must be a dict")
        for key in context:
            if type(key) is not str or key.startswith("_"):
                raise ContextUnsafeError(f"context key {key!r} is not allowed")
        namespace = self._runtime.namespace()
        namespace.update(context)
        exec(self._code, namespace)
        return {k: v for k, v in namespace.items() if not k.startswith("_")}


class VesselRuntime:
    """Owns the nanny, file table, socket factory and the API dict of one vessel."""

    def __init__(
        self, *, nanny: Nanny, dir_fd: int, host: Host, args: list[str], my_ip: str
    ) -> None:
        self.nanny = nanny
        self.host = host
        self.args = args
        self.dir_fd = dir_fd
        self.files = VesselFiles(dir_fd, nanny, self._disk_full)
        self.net = VesselNet(nanny, my_ip)
        self.started = time.monotonic()
        self.my_ip = my_ip
        self.baseline_rss = 0
        nanny.items["events"].used += 1  # the main thread is an event, as in Seattle
        self._log_lock = threading.Lock()

    def _disk_full(self, reason: str) -> None:
        self.host.hard_exit(EXIT.resource, reason)

    def emit(self, text: str, *, charge: bool = True) -> None:
        """Write to the log; the runner's own reports (tracebacks) are not charged."""
        data = text.encode("utf-8", "replace")[:MAX_LOG_LINE]
        if charge:
            self.nanny.charge("lograte", len(data))
        with self._log_lock:
            self.host.write_log(data)

    def log(self, *args: object) -> None:
        """Write the arguments, space-separated, as one line of the vessel log."""
        self.emit(" ".join(str(a) for a in args) + "\n")

    def sleep(self, seconds: object) -> None:
        if type(seconds) not in (int, float) or not 0 <= seconds <= MAX_SLEEP:  # type: ignore[operator]
            raise RepyArgumentError("sleep needs a number of seconds >= 0")
        deadline = time.monotonic() + float(seconds)  # type: ignore[arg-type]
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)

    def getruntime(self) -> float:
        return time.monotonic() - self.started

    def randombytes(self) -> bytes:
        self.nanny.charge("random", 1024)
        return os.urandom(1024)

    def exitall(self) -> None:
        self.host.hard_exit(EXIT.exitall, "exitall() called")

    def createthread(self, function: object) -> None:
        if not callable(function):
            raise RepyArgumentError("createthread needs a callable")
        self.nanny.add_item("events")
        thread = threading.Thread(target=self._thread_main, args=(function,), daemon=False)
        try:
            thread.start()
        except RuntimeError:
            self.nanny.remove_item("events")
            raise RepyArgumentError("the system refused a new thread") from None

    def _thread_main(self, function: Callable[[], object]) -> None:
        try:
            function()
        except Exception:
            self.emit(format_user_traceback(), charge=False)
            self.host.hard_exit(EXIT.thread_uncaught, "uncaught exception in a thread")
        finally:
            self.nanny.remove_item("events")

    def getthreadname(self) -> str:
        return threading.current_thread().name

    def getresources(self) -> tuple[dict[str, Any], dict[str, float], list[tuple[float, float]]]:
        limits: dict[str, Any] = self.nanny.table.as_dict()
        usage = self.nanny.usage()
        times = os.times()
        usage["cpu"] = times.user + times.system
        usage["memory"] = float(max(0, rss_bytes() - self.baseline_rss))
        usage["diskused"] = float(disk_use(self.dir_fd))
        return limits, usage, self.host.stoptimes()

    def getlasterror(self) -> str | None:
        if sys.exc_info()[0] is None:
            return None
        return format_user_traceback()

    def getmyip(self) -> str:
        return self.my_ip

    def namespace(self) -> dict[str, Any]:
        """A fresh global namespace for a program or a virtual namespace."""
        api: dict[str, Any] = {
            "log": self.log, "sleep": self.sleep, "getruntime": self.getruntime,
            "randombytes": self.randombytes, "exitall": self.exitall,
            "createthread": self.createthread, "createlock": RepyLock,
            "getthreadname": self.getthreadname, "getresources": self.getresources,
            "getlasterror": self.getlasterror, "getmyip": self.getmyip,
            "openfile": self.files.openfile, "listfiles": self.files.listfiles,
            "removefile": self.files.removefile,
            "openconnection": self.net.openconnection,
            "listenforconnection": self.net.listenforconnection,
            "sendmessage": self.net.sendmessage, "listenformessage": self.net.listenformessage,
            "gethostbyname": self.net.gethostbyname,
            "createvirtualnamespace": self.createvirtualnamespace,
            "callargs": list(self.args),
        }
        return build_globals(api, self._printer)

    def _printer(self, _getattr_: object = None) -> LogPrinter:
        """RestrictedPython's ``_print_`` hook, called once per function that prints."""
        return LogPrinter(self.emit)

    def createvirtualnamespace(self, code: object, name: object) -> VirtualNamespace:
        return VirtualNamespace(self, code, name)


def format_user_traceback() -> str:
    """The current exception's traceback, keeping only frames of vessel code."""
    kind, value, tb = sys.exc_info()
    frames = [f for f in traceback.extract_tb(tb) if f.filename == PROGRAM_FILENAME]
    lines = ["Traceback (most recent call last):\n"]
    lines += [f'  line {f.lineno}, in {f.name}\n' for f in frames]
    name = kind.__name__ if kind else "Exception"
    lines.append(f"{name}: {value}\n")
    return "".join(lines)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
