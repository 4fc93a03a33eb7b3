"""The Repy V2 API handed to a vessel program (docs/seattle.md, The program's API), assembled per vessel.

Everything here runs inside the vessel child. Arguments are checked by exact type, so str
or int subclasses with lying methods never reach a host-side check.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from sandbox.lang.policy import build_builtins
from sandbox.lang.safedict import view_of
from sandbox.repy import LockDoubleReleaseError, RepyArgumentError
from sandbox.resources import RENEWABLE, ResourceTable
from sandbox.vessel.dylink import Linker, library_read_charge
from sandbox.vessel.namespaces import VirtualNamespace, format_user_traceback
from sandbox.vessel.nanny import Nanny
from sandbox.vessel.vesselfiles import VesselFiles, disk_use
from sandbox.vessel.vesselnet import VesselNet

__all__ = ["EXIT", "ExitCodes", "Host", "VesselRuntime", "format_user_traceback", "rss_bytes"]

MAX_SLEEP = 10 * 365 * 86400.0
MAX_LOG_LINE = 1 << 20
DISK_CACHE = 0.5
RANDOM_BYTES = 1024
"""What ``randombytes()`` returns, as in Seattle; the ``random`` rate is charged per byte."""


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
        self._baseline_rss = 0
        self._baseline_cpu = (0.0, 0.0)
        self._main_thread = threading.get_ident()
        self._disk_cache = (0, float("-inf"))
        nanny.items["events"].used += 1  # the main thread is an event, as in Seattle
        self._log_lock = threading.Lock()
        self.builtins = build_builtins(self._printer)
        self.api = self._api()
        self.linker = Linker(self, frozenset(self.api))

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

    @property
    def baseline_rss(self) -> int:
        """RSS when the program started; the runner sets it just before the program runs.

        CPU is counted from the same moment (process and main-thread time), so the
        interpreter's start-up and the policy compile are not the program's usage.
        """
        return self._baseline_rss

    @baseline_rss.setter
    def baseline_rss(self, value: int) -> None:
        self._baseline_rss = value
        self._baseline_cpu = (process_cpu(), time.thread_time())

    def getruntime(self) -> float:
        return time.monotonic() - self.started

    def randombytes(self) -> bytes:
        self.nanny.charge("random", RANDOM_BYTES)
        return os.urandom(RANDOM_BYTES)

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

    def getresources(self) -> tuple[dict[str, Any], dict[str, Any], list[tuple[float, float]]]:
        """Seattle's ``(limits, usage, stoptimes)``: copies, with Seattle's types."""
        usage: dict[str, Any] = dict(self.nanny.usage())
        process, main_thread = self._baseline_cpu
        usage["cpu"] = max(0.0, process_cpu() - process)
        thread = time.thread_time()
        usage["threadcpu"] = max(0.0, thread - main_thread) if self._is_main() else thread
        usage["memory"] = max(0, rss_bytes() - self.baseline_rss)
        usage["diskused"] = self._disk_used()
        return seattle_limits(self.nanny.table), usage, self._stoptimes()

    def _disk_used(self) -> int:
        """Disk use, recounted at most every DISK_CACHE seconds (Seattle's was a cached
        figure from its monitor too); a directory scan costs more than the rest of
        getresources()."""
        now = time.monotonic()
        if now - self._disk_cache[1] > DISK_CACHE:
            self._disk_cache = (disk_use(self.dir_fd), now)
        return self._disk_cache[0]

    def _is_main(self) -> bool:
        return threading.get_ident() == self._main_thread

    def _stoptimes(self) -> list[tuple[float, float]]:
        """The supervisor's stops, as Seattle gave them: (getruntime() at the stop, seconds)."""
        offset = time.time() - self.getruntime()
        return [(round(when - offset, 3), seconds) for when, seconds in self.host.stoptimes()]

    def getlasterror(self) -> str | None:
        if sys.exc_info()[0] is None:
            return None
        return format_user_traceback()

    def getmyip(self) -> str:
        return self.my_ip

    def _api(self) -> dict[str, Any]:
        """The Repy API functions every program namespace starts with."""
        return {
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
        }

    def namespace(self, callfunc: str = "initialize", args: list[str] | None = None) -> dict[str, Any]:
        """A fresh program namespace: Seattle's user context.

        The API, ``mycontext = {}``, ``callfunc``, ``callargs``, ``usercontext`` (a SafeDict
        view of this namespace: Seattle's ``_context``) and the ``dy_*`` import functions.
        """
        namespace: dict[str, Any] = {"__builtins__": self.builtins, "__name__": "vessel"}
        namespace.update(self.api)
        namespace["mycontext"] = {}
        namespace["callfunc"] = callfunc
        namespace["callargs"] = list(self.args if args is None else args)
        namespace["usercontext"] = view_of(namespace)
        self.linker.bind(namespace)
        return namespace

    def prepare_context(self, namespace: dict[str, Any]) -> None:
        """What ``evaluate`` adds to a context: the builtins (hidden from the program)."""
        namespace["__builtins__"] = self.builtins
        namespace.setdefault("__name__", "vessel")

    def _printer(self, _getattr_: object = None) -> LogPrinter:
        """RestrictedPython's ``_print_`` hook, called once per function that prints."""
        return LogPrinter(self.emit)

    def createvirtualnamespace(self, code: object, name: object) -> VirtualNamespace:
        return VirtualNamespace(self.prepare_context, code, name)

    def read_vessel_file(self, name: str) -> str:
        """A library's text from the vessel, charged as openfile + readat."""
        handle = self.files.openfile(name, False)
        try:
            data = handle.readat(None, 0)
        finally:
            handle.close()
        return data.decode("utf-8", "replace")

    def charge_library_read(self, size: int) -> None:
        self.nanny.charge("fileread", library_read_charge(size))


def seattle_limits(table: ResourceTable) -> dict[str, Any]:
    """The limits dict as Seattle typed it: rates float, counts and sizes int, ports sets."""
    limits: dict[str, Any] = {
        kind: float(value) if kind in RENEWABLE else int(value) for kind, value in table.values.items()
    }
    limits["messport"] = set(table.messport)
    limits["connport"] = set(table.connport)
    return limits


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
