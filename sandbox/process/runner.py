"""Vessel child process entry point. Never imports trio; runs exactly one program.

Protocol with the supervisor (treated by it as hostile):
- lifetime: the kernel SIGKILLs the runner when the supervisor dies (``PR_SET_PDEATHSIG``,
  set first thing and again after the uid drop), whatever state it is in.
- stdin, line 1: the JSON ``RunnerConfig``; later lines are commands (``stop T D`` records a
  CPU stop for ``getresources``, ``usage`` asks for a usage event, ``limits HEX`` gives the
  nanny new limits: the hex of a resource text, after the donor reshared).
- stdout: the program's log bytes.
- the status descriptor (``status_fd``): JSON lines ``{"event": ...}``: ``ready``
  (protection level), ``compile_error`` (errors), ``usage`` (nanny counters), ``exit``
  (code, reason). The exit code tells the same story when the channel is lost.

Order before user code: read config, import everything, OS hardening (rlimits, uid,
Landlock, seccomp), compile, address-space limit, then ``exec``.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, NoReturn

from sandbox.errors import SandboxError
from sandbox.lang.compiler import CompileFailed, compile_program
from sandbox.process.hardening import die_with_parent
from sandbox.process.status import encode_event
from sandbox.repy import PolicyViolation
from sandbox.resources import ResourceTable, parse_resources
from sandbox.vessel.api import EXIT, VesselRuntime, format_user_traceback, rss_bytes
from sandbox.vessel.nanny import Nanny
from sandbox.vessel.vesselfiles import check_filename

MAX_CONFIG = 1 << 20
PRELOAD = ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
           "stringprep", "unicodedata", "linecache", "tokenize")
"""Loaded before hardening: after the uid drop and Landlock the stdlib may be unreadable."""
for _module in PRELOAD:
    importlib.import_module(_module)
THREAD_STACK = 512 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerConfig:
    """What the supervisor tells the child (JSON on stdin, line 1)."""

    vessel_dir: str
    resources: str
    program: str
    args: list[str]
    status_fd: int
    my_ip: str = "127.0.0.1"
    restricted: bool = True
    harden: bool = True
    uid: int | None = None
    read_paths: list[str] | None = None
    parent_pid: int | None = None
    """The supervisor's pid: the runner dies with it (``die_with_parent``)."""


class ChildHost:
    """The runner side of the API's ``Host``: log out, status out, hard exits."""

    def __init__(self, status_fd: int) -> None:
        self.status_fd = status_fd
        self.status_lock = threading.Lock()
        self.stops: deque[tuple[float, float]] = deque(maxlen=100)
        self.runtime: VesselRuntime | None = None

    def write_log(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]

    def status(self, event: str, **fields: Any) -> None:
        line = encode_event(event, **fields)
        with self.status_lock:
            try:
                os.write(self.status_fd, line)
            except OSError:
                pass

    def hard_exit(self, code: int, reason: str) -> NoReturn:
        self.status("exit", code=code, reason=reason)
        os._exit(code)

    def stoptimes(self) -> list[tuple[float, float]]:
        return list(self.stops)

    def serve_commands(self) -> None:
        """Daemon thread: read supervisor commands from stdin; EOF means the supervisor died.

        A program never outlives its supervisor (e.g. a node manager killed with SIGKILL).
        """
        for raw in sys.stdin.buffer:
            parts = raw.split()
            if parts[:1] == [b"stop"] and len(parts) == 3:
                self.stops.append((float(parts[1]), float(parts[2])))
            elif parts == [b"usage"] and self.runtime is not None:
                self.status("usage", usage=self.runtime.nanny.totals())
            elif parts[:1] == [b"limits"] and len(parts) == 2 and self.runtime is not None:
                self.set_limits(parts[1])
        self.hard_exit(EXIT.internal, "supervisor went away")

    def set_limits(self, encoded: bytes) -> None:
        """``limits HEX``: the supervisor's new resource text (a reshare) for the nanny."""
        try:
            table = parse_resources(bytes.fromhex(encoded.decode("ascii")).decode())
        except (ValueError, SandboxError):
            return  # only a supervisor bug sends a bad line: the old limits stay
        assert self.runtime is not None
        self.runtime.nanny.set_limits(table)


def read_config() -> RunnerConfig:
    line = sys.stdin.buffer.readline(MAX_CONFIG)
    data = json.loads(line)
    return RunnerConfig(**data)


def read_program(dir_fd: int, name: str) -> bytes:
    check_filename(name)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(2_000_000)


def harden(config: RunnerConfig, table: ResourceTable) -> str:
    """Apply the OS layers; return the protection level text."""
    if not config.harden:
        return "none (hardening disabled)"
    import socket

    from sandbox.process.hardening import HardeningPlan, apply_hardening, disk_bytes_for, open_files_for

    plan = HardeningPlan(
        vessel_dir=config.vessel_dir,
        read_paths=tuple(config.read_paths or ()),
        memory_bytes=int(table["memory"]),
        disk_bytes=disk_bytes_for(table),
        max_open_files=open_files_for(table),
        max_threads=int(table["events"]) + 4,
        cpu_seconds_backstop=None,
        uid=config.uid,
        tcp_bind_ports=table.connport,
        allow_socket_families=frozenset({socket.AF_INET, socket.AF_INET6}),
    )
    return apply_hardening(plan).level()


def warm_up() -> None:
    """Import what ``harden`` imports lazily (a fork server calls this before forking)."""
    import socket  # noqa: F401

    from sandbox.process.hardening import HardeningPlan, apply_hardening  # noqa: F401


def run(config: RunnerConfig, host: ChildHost) -> None:
    """Everything from the vessel directory to the program's end; exits the process."""
    dir_fd = os.open(config.vessel_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(dir_fd)  # a forked child starts in "/", a cold one already here
    table = parse_resources(config.resources)
    try:
        source = read_program(dir_fd, config.program)
    except Exception as exc:
        host.hard_exit(EXIT.compile_error, f"cannot read program {config.program!r}: {exc}")
    level = harden(config, table)
    die_with_parent(config.parent_pid)  # the uid drop cleared the parent-death signal
    threading.Thread(target=host.serve_commands, daemon=True).start()
    threading.stack_size(THREAD_STACK)
    runtime = VesselRuntime(
        nanny=Nanny(table), dir_fd=dir_fd, host=host, args=config.args, my_ip=config.my_ip
    )
    host.runtime = runtime
    namespace = runtime.namespace()
    if config.restricted:
        result = compile_program(source)
        if isinstance(result, CompileFailed):
            host.status("compile_error", errors=list(result.errors))
            host.hard_exit(EXIT.compile_error, f"compile error: {result.summary()}")
        code = result.code
    else:  # test-only: proves the OS layers alone stop what reaches the kernel
        code = compile(source, "<vessel>", "exec")
        namespace["__builtins__"] = builtins.__dict__
    limit_address_space(table, config)
    runtime.baseline_rss = rss_bytes()
    host.status("ready", protection=level, rss=runtime.baseline_rss)
    execute(code, namespace, host, runtime)


def limit_address_space(table: ResourceTable, config: RunnerConfig) -> None:
    """Backstop for the memory limit: RLIMIT_AS = current size + limit + thread stacks."""
    if not config.harden:
        return
    from sandbox.process.hardening import set_address_space_limit

    stacks = int(table["events"] + 4) * THREAD_STACK
    set_address_space_limit(int(table["memory"]) + stacks + 64 * 1024 * 1024)


def execute(code: Any, namespace: dict[str, Any], host: ChildHost, runtime: VesselRuntime) -> None:
    """Run the program, wait for its threads, and exit with the code that tells how it ended."""
    try:
        exec(code, namespace)
    except MemoryError:
        runtime.emit("MemoryError: the vessel's memory limit was reached\n", charge=False)
        host.hard_exit(EXIT.resource, "memory limit exceeded (allocation refused)")
    except PolicyViolation as exc:
        runtime.emit(format_user_traceback(), charge=False)
        host.hard_exit(EXIT.policy, f"policy violation: {exc}")
    except Exception as exc:
        runtime.emit(format_user_traceback(), charge=False)
        host.hard_exit(EXIT.uncaught, f"uncaught {type(exc).__name__}: {str(exc)[:200]}")
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    host.hard_exit(EXIT.normal, "program ended")


def main() -> None:
    """Child entry: never returns."""
    os.umask(0o077)
    try:
        die_with_parent()
        config = read_config()
        die_with_parent(config.parent_pid)
        host = ChildHost(config.status_fd)
    except Exception:
        traceback.print_exc()
        os._exit(EXIT.internal)
    try:
        run(config, host)
    except BaseException as exc:  # the runner itself failed: never blame the program
        traceback.print_exc()
        host.hard_exit(EXIT.internal, f"sandbox internal error: {type(exc).__name__}: {exc}")
