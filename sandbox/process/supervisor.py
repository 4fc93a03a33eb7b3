"""trio supervisor: one child process per running vessel program, watched from outside.

For each running program a task in the supervisor's nursery starts ``sandbox.process.runner`` in a
fresh session with an empty environment (forked by the supervisor's fork server, or cold:
``sandbox.process.launcher``), sends it its config, and then, until it exits:
reads its log (kept as a 16 KiB ring, persisted to ``log_path``), reads its status channel,
samples CPU time and RSS every ``TICK`` seconds from /proc, stops it with SIGSTOP/SIGCONT to
hold its CPU share, and SIGKILLs its process group when memory or disk go over the limit.
Everything the child says is treated as hostile: lines are bounded, bad JSON is ignored,
and the exit code and the supervisor's own observations decide the status.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import trio

from sandbox.errors import (
    ProgramCompileError,
    ProgramStartError,
    SandboxError,
    VesselBusyError,
    VesselNotRunning,
)
from sandbox.process.hardening import default_read_paths, reset_rlimits
from sandbox.process.launcher import Launcher
from sandbox.process.limits import CpuThrottle, LogRing, LogSlice, check_quantities, decode_log, encode_log
from sandbox.process.spawn import ChildProcess, ChildRecords
from sandbox.process.status import CompileError, Event, Exit, Ready, StatusLines, UsageReport, parse_event
from sandbox.process.uidlease import SpareLeases, UidLease
from sandbox.process.yielding import Attached, Yielding
from sandbox.resources import ResourceTable
from sandbox.vessel.vesselfiles import disk_use

log = logging.getLogger(__name__)

VesselStatus = Literal["Fresh", "Started", "Stopped", "Terminated"]
TICK = 0.05
DISK_EVERY = 0.5
INTERNAL_EXIT = 8
STARTUP_CPU_LIMIT = 10.0
START_TIMEOUT = 60.0
"""Wall seconds ``start`` waits for the program to compile and run before giving up."""
"""CPU seconds the runner may use before the program starts (compiling is bounded by size)."""
MAX_BASELINE = 64 * 1024 * 1024
"""The interpreter's own RSS before the program runs is not charged, up to this much."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Usage:
    """A usage snapshot: cpu (seconds), memory (RSS bytes), diskused, and rate totals."""

    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VesselReport:
    """What the supervisor knows of one vessel's program."""

    status: VesselStatus = "Fresh"
    exit_reason: str | None = None
    exit_code: int | None = None
    usage: Usage = field(default_factory=Usage)
    started_at: float | None = None
    ended_at: float | None = None
    protection: str | None = None
    compile_errors: tuple[str, ...] = ()
    paused: str | None = None
    """Why the donor's side paused the program (frozen, not killed), or None."""


LogSink = Callable[[bytes], None]
"""Called with every chunk of program output as it arrives (e.g. a CLI printing it)."""


@dataclass
class _Running:
    process: ChildProcess
    table: ResourceTable
    directory: Path
    log_path: Path | None
    lease: UidLease | None
    on_log: LogSink | None = None
    ring: LogRing = field(default_factory=LogRing)
    report: VesselReport = field(default_factory=VesselReport)
    kill_reason: str | None = None
    stop_requested: bool = False
    child_exit: tuple[int, str] | None = None
    done: trio.Event = field(default_factory=trio.Event)
    settled: trio.Event = field(default_factory=trio.Event)
    """Set once the program runs, failed to compile, or the child ended."""
    log_dirty: bool = False
    stderr: str = ""
    monitor_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    baseline_rss: int | None = None
    """The interpreter's RSS when the program started; None until the runner says "ready"."""
    status_r: int = -1
    """Our end of the runner's status channel."""
    controls: Attached | None = None
    """Priority, cgroup and pause of the child (``sandbox.process.yielding``)."""
    limits_pending: bool = False
    """``table`` changed while running: the child has yet to hear it (``limits`` line)."""
    throttled: float = -1.0
    """The group's throttled seconds at the last look (-1: not looked yet)."""

    @property
    def ready(self) -> bool:
        """True once the program itself runs (the runner's "ready" arrived)."""
        return self.baseline_rss is not None


PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory that holds the ``sandbox`` package (a checkout or site-packages)."""


@functools.cache
def read_paths() -> tuple[str, ...]:
    """Paths a vessel child may read (Landlock): Python, its libraries, system libraries."""
    prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, str(PACKAGE_ROOT))
    return default_read_paths(prefixes)


def _proc_sample(pid: int) -> tuple[float, int] | None:
    """(cpu seconds, rss bytes) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/statm", "rb") as handle:
            rss_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu, rss_pages * PAGE


class Supervisor:
    """Starts, watches and stops vessel programs. Use ``async with Supervisor.open()``."""

    def __init__(
        self, nursery: trio.Nursery, *, harden: bool = True, my_ip: str = "127.0.0.1",
        run_dir: Path | None = None, launcher: Launcher | None = None, cgroups: bool = True,
        priority: str | None = None,
    ) -> None:
        self._nursery = nursery
        self.launcher = launcher if launcher is not None else Launcher(fork_server=False)
        self._leases = SpareLeases() if os.geteuid() == 0 else None
        """Vessel uids (root only), one kept leased ahead of need: see ``keep_filled``."""
        self._harden = harden
        self._my_ip = my_ip
        self._records = ChildRecords(run_dir) if run_dir is not None else None
        self._running: dict[str, _Running] = {}
        self._reports: dict[str, VesselReport] = {}
        self._logs: dict[str, LogRing] = {}
        self._yielding = Yielding(use_cgroups=cgroups, priority=priority)
        self._paused: str | None = None
        self._cpu_factor = 1.0
        self._rate_caps: dict[str, float] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls, *, harden: bool = True, my_ip: str = "127.0.0.1", run_dir: Path | None = None,
        fork_server: bool = True, cgroups: bool = True, priority: str | None = None,
    ) -> AsyncIterator[Supervisor]:
        """A supervisor whose programs all end when the block exits.

        With ``run_dir``, each running child is recorded there, and children that an earlier
        supervisor with the same ``run_dir`` left running (it was killed) are killed first.
        With ``fork_server`` (the default) programs start from a warm fork server
        (``sandbox.process.forkserver``), kept running and restarted by the supervisor;
        without it each start is a cold interpreter (a one-shot run gains nothing from one).
        ``cgroups=False`` holds CPU shares with the SIGSTOP duty cycle even where the host
        has cgroups (the fallback, for tests and comparisons). ``priority``: ``idle`` (lowest
        CPU and I/O priority: the donor always wins) or ``normal``; default
        ``$SEATTLE_VESSEL_PRIORITY``, else ``idle`` (``sandbox.process.yielding``).
        """
        async with trio.open_nursery() as nursery:
            launcher = Launcher(fork_server=fork_server)
            supervisor = cls(nursery, harden=harden, my_ip=my_ip, run_dir=run_dir,
                             launcher=launcher, cgroups=cgroups, priority=priority)
            if supervisor._records is not None:
                supervisor._records.kill_leftovers()
            nursery.start_soon(launcher.keep_fork_server)
            if supervisor._leases is not None:
                nursery.start_soon(supervisor._leases.keep_filled)
            try:
                yield supervisor
            finally:
                with trio.CancelScope(shield=True):
                    await supervisor.stop_all()
                supervisor._yielding.close()
                nursery.cancel_scope.cancel()

    async def start(
        self,
        vessel: str,
        directory: Path,
        resources: ResourceTable,
        program: str,
        args: Sequence[str] = (),
        log_path: Path | None = None,
        *,
        restricted: bool = True,
        on_log: LogSink | None = None,
    ) -> None:
        """Start ``program`` (a file in ``directory``); return once it compiled and runs.

        A new start clears the vessel's previous log. Raises ProgramCompileError (with each
        error) if the program does not compile, ProgramStartError if it ended before it ran;
        the vessel's report then tells the same story. ``on_log`` sees every output byte,
        however much the bounded log keeps. ``restricted=False`` drops the language layer
        and is for tests of the OS layers only.
        """
        if vessel in self._running:
            raise VesselBusyError(f"vessel {vessel} is already running a program")
        if not all(type(a) is str for a in args):
            raise SandboxError("program arguments must be strings")
        lease = await self._leases.take() if self._leases is not None else None
        try:
            running = await self._launch(vessel, directory, resources, program, args, log_path, lease,
                                   restricted=restricted, on_log=on_log)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        self._nursery.start_soon(self._watch, vessel, running)
        await self._wait_settled(vessel, running)
        if self._paused is not None:
            _set_paused(running, self._paused)

    @property
    def mechanism(self) -> str:
        """How CPU shares are held and pauses made, e.g. ``cgroup-v1 cpu quota + freezer``."""
        return self._yielding.mechanism

    @property
    def paused(self) -> str | None:
        """Why every program is paused (``pause_all``), or None."""
        return self._paused

    def pause_all(self, reason: str) -> None:
        """Freeze every running program, and each one started later, until ``resume_all``."""
        self._paused = reason
        for running in self._running.values():
            if running.ready:
                _set_paused(running, reason)

    def set_cpu_factor(self, factor: float) -> None:
        """Run every program at ``factor`` (0-1) of its CPU share (e.g. while the donor works)."""
        factor = min(1.0, max(0.0, factor))
        if factor == self._cpu_factor:
            return
        self._cpu_factor = factor
        for running in self._running.values():
            group = None if running.controls is None else running.controls.group
            if group is not None:
                try:
                    group.set_share(running.table["cpu"] * factor)
                except OSError as exc:
                    log.warning("cannot set the CPU quota of pid %d: %s", running.process.pid, exc)

    def set_resources(self, vessel: str, resources: ResourceTable) -> None:
        """Give a running program new limits now (the donor reshared; docs/donor.md).

        At once: the CPU share (cgroup quota, or the duty cycle's share), the memory and
        disk limits the monitor checks, and the child's RLIMIT_AS/FSIZE/NOFILE (``prlimit``,
        which needs CAP_SYS_RESOURCE for a child of another uid; else they stay). At the
        monitor's next tick: the child's own rate and item limits (a ``limits`` line). A
        vessel that does not run is not touched: its next start gets its table anyway."""
        running = self._running.get(vessel)
        if running is None or running.process.returncode is not None:
            return
        old, new = running.table, _capped(resources, self._rate_caps)
        running.table = new
        group = None if running.controls is None else running.controls.group
        kept = reset_rlimits(running.process.pid, old, new) if self._harden else []
        if group is not None:
            try:
                group.set_share(new["cpu"] * self._cpu_factor)
            except OSError as exc:
                kept.append(f"cpu quota: {exc}")
        if kept:
            log.warning("vessel %s keeps some of its old limits until it starts again: %s",
                        vessel, "; ".join(kept))
        running.limits_pending = True

    def set_rate_caps(self, caps: Mapping[str, float]) -> None:
        """Cap renewable rates (e.g. ``netsend``) of programs started from now on."""
        self._rate_caps = dict(caps)

    def resume_all(self) -> None:
        """Let every paused program go on where it was."""
        self._paused = None
        for running in self._running.values():
            _set_paused(running, None)

    async def _launch(
        self, vessel: str, directory: Path, resources: ResourceTable, program: str,
        args: Sequence[str], log_path: Path | None, lease: UidLease | None, *,
        restricted: bool, on_log: LogSink | None,
    ) -> _Running:
        """Start the runner (``Launcher``: forked, or spawned on this thread) and send its config."""
        resources = _capped(resources, self._rate_caps)
        config = {
            "vessel_dir": str(directory.resolve()), "resources": resources.to_text(),
            "program": program, "args": list(args), "my_ip": self._my_ip,
            "restricted": restricted, "harden": self._harden,
            "uid": None if lease is None else lease.uid, "read_paths": list(read_paths()),
            "parent_pid": os.getpid(),
        }
        status_r, status_w = os.pipe()

        def first_line(status_fd: int) -> bytes:
            return json.dumps({**config, "status_fd": status_fd}).encode() + b"\n"

        try:
            launched = await self.launcher.launch(status_w, cwd=str(directory),
                                                  first_line=first_line)
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        process = launched.process
        if self._records is not None:
            self._records.add(vessel, process.pid)
        controls = self._yielding.attach(vessel, process.pid, resources["cpu"] * self._cpu_factor)
        running = _Running(process, resources, directory, log_path, lease, on_log=on_log,
                           status_r=status_r, controls=controls)
        running.report = VesselReport(status="Started", started_at=time.time())
        self._running[vessel] = running
        self._logs.pop(vessel, None)
        if log_path is not None:  # a new start clears the previous program's log
            _write_log(log_path, running.ring)
        if launched.pending:  # a config too long to wait in the pipe
            with trio.move_on_after(5):
                try:
                    await process.stdin.send_all(launched.pending)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the child died already; _watch tells the story
        return running

    async def _wait_settled(self, vessel: str, running: _Running) -> None:
        with trio.move_on_after(START_TIMEOUT):
            await running.settled.wait()
        if not running.settled.is_set():
            running.kill_reason = f"did not start within {START_TIMEOUT:.0f} s"
            _kill(running)
        if running.ready:
            return
        await running.done.wait()
        report = self.report(vessel)
        if report.compile_errors:
            raise ProgramCompileError(report.compile_errors)
        if not running.ready:
            raise ProgramStartError(f"the program did not start: {report.exit_reason}")

    async def stop(self, vessel: str) -> VesselReport:
        """Kill the program's process group and wait; its status becomes Stopped."""
        running = self._running.get(vessel)
        if running is None:
            raise VesselNotRunning(f"vessel {vessel} is not running a program")
        running.stop_requested = True
        _kill(running)
        await running.done.wait()
        return self.report(vessel)

    async def stop_all(self) -> None:
        for vessel in list(self._running):
            try:
                await self.stop(vessel)
            except VesselNotRunning:
                pass

    async def wait(self, vessel: str) -> VesselReport:
        """Wait until ``vessel`` runs nothing; return its report."""
        running = self._running.get(vessel)
        if running is not None:
            await running.done.wait()
        return self.report(vessel)

    def report(self, vessel: str) -> VesselReport:
        running = self._running.get(vessel)
        if running is not None:
            return running.report
        return self._reports.get(vessel, VesselReport())

    def read_log(self, vessel: str, log_path: Path | None = None) -> bytes:
        """The kept tail (16 KiB) of the program's log (from ``log_path`` if not in memory)."""
        return self.log_since(vessel, None, log_path).data

    def log_since(self, vessel: str, since: int | None, log_path: Path | None = None) -> LogSlice:
        """The kept log bytes from stream offset ``since`` on, with the stream's total.

        Offsets count every byte of the current (or last) program's output, so a reader
        that passes the previous ``total`` back gets each byte once, and learns how many
        the ring dropped in between (``LogSlice.dropped_since``).
        """
        running = self._running.get(vessel)
        if running is not None:
            return running.ring.since(since)
        ring = self._logs.get(vessel)
        if ring is None and log_path is not None:
            try:
                ring = decode_log(log_path.read_bytes())
            except OSError:
                ring = None
        return (ring or LogRing()).since(since)

    def forget(self, vessel: str) -> None:
        """Drop what is known of ``vessel`` (reset or destroyed). It must not be running."""
        if vessel in self._running:
            raise VesselBusyError(f"vessel {vessel} is running; stop it first")
        self._reports.pop(vessel, None)
        self._logs.pop(vessel, None)

    def running(self) -> list[str]:
        return sorted(self._running)

    def pid_of(self, vessel: str) -> int | None:
        """The process id of the vessel's running program (for status and tests), or None."""
        running = self._running.get(vessel)
        return None if running is None else running.process.pid

    async def _watch(self, vessel: str, running: _Running) -> None:
        process = running.process
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump_log, running)
                nursery.start_soon(self._pump_stderr, vessel, running)
                nursery.start_soon(self._pump_status, running)
                nursery.start_soon(self._monitor, vessel, running)
                await process.wait()
                running.monitor_scope.cancel()
                nursery.cancel_scope.deadline = trio.current_time() + 1.0
        finally:
            _kill(running)
            with trio.CancelScope(shield=True):
                await process.wait()
                await process.aclose()
            self._finish(vessel, running)

    def _finish(self, vessel: str, running: _Running) -> None:
        code = running.process.returncode
        reason, status = _exit_story(running, code)
        report = replace(
            running.report, status=status, exit_reason=reason, exit_code=code,
            ended_at=time.time(), paused=None,
        )
        self._reports[vessel] = report
        self._logs[vessel] = running.ring
        self._persist_log(running)
        del self._running[vessel]
        if running.lease is not None:
            running.lease.release()
        if running.controls is not None:
            running.controls.release()
        if self._records is not None:
            self._records.remove(vessel)
        running.report = report
        running.done.set()
        running.settled.set()
        log.info("vessel %s %s: %s", vessel, status, reason)
        if code == INTERNAL_EXIT:
            log.warning("vessel %s: sandbox runner failed: %s", vessel, running.stderr[-2000:])

    def _persist_log(self, running: _Running) -> None:
        if running.log_path is None or not running.log_dirty:
            return
        running.log_dirty = False
        _write_log(running.log_path, running.ring)

    async def _pump_log(self, running: _Running) -> None:
        assert running.process.stdout is not None
        while chunk := await running.process.stdout.receive_some(65536):
            running.ring.add(chunk)
            running.log_dirty = True
            if running.on_log is not None:
                running.on_log(chunk)

    async def _pump_stderr(self, vessel: str, running: _Running) -> None:
        assert running.process.stderr is not None
        kept = LogRing(keep=4096)
        while chunk := await running.process.stderr.receive_some(65536):
            kept.add(chunk)
        running.stderr = kept.snapshot().decode("utf-8", "replace")
        if kept.total:
            log.debug("vessel %s runner stderr: %s", vessel, running.stderr)

    async def _pump_status(self, running: _Running) -> None:
        lines = StatusLines()
        async with trio.lowlevel.FdStream(running.status_r) as stream:
            while chunk := await stream.receive_some(65536):
                for line in lines.feed(chunk):
                    event = parse_event(line)
                    if event is not None:
                        _apply_status(running, event)

    async def _monitor(self, vessel: str, running: _Running) -> None:
        with running.monitor_scope:
            await self._monitor_loop(running)

    async def _monitor_loop(self, running: _Running) -> None:
        pid = running.process.pid
        throttle = CpuThrottle(share=running.table["cpu"])
        next_disk = 0.0
        next_usage = 0.0
        while running.process.returncode is None:
            now = trio.current_time()
            sample = _proc_sample(pid)
            if sample is None:
                return
            cpu, rss = sample
            baseline = MAX_BASELINE if running.baseline_rss is None else running.baseline_rss
            program_rss = max(0, rss - baseline)
            disk = None
            if now >= next_disk:
                disk = await trio.to_thread.run_sync(_disk_or_none, running.directory)
                next_disk = now + DISK_EVERY
                self._persist_log(running)
            _update_usage(running, cpu=cpu, rss=program_rss, disk=disk)
            reason = check_quantities(running.table, rss=program_rss, disk=disk)
            if reason is not None:
                running.kill_reason = reason
                _kill(running)
                return
            if running.limits_pending and running.ready:
                running.limits_pending = False
                await _send_line(running, limits_line(running.table))
            if now >= next_usage:
                await _send_line(running, b"usage\n")
                next_usage = now + 1.0
            # The runner's own start-up (interpreter, policy compile) is not the program's
            # CPU: the share is enforced from the moment the program is ready to run.
            throttle.share = running.table["cpu"] * self._cpu_factor
            pause = throttle.sample(now, cpu) if running.ready and _duty_cycle(running) else 0.0
            if not running.ready and cpu > STARTUP_CPU_LIMIT:
                running.kill_reason = f"start-up used more than {STARTUP_CPU_LIMIT} s of CPU"
                _kill(running)
                return
            if pause > 0:
                await _pause(running, pause)
            else:
                await _report_throttling(running)
                await trio.sleep(TICK)


def _write_log(path: Path, ring: LogRing) -> None:
    """Persist ``ring`` (kept bytes and stream total) atomically; failures are logged."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(encode_log(ring))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write log %s: %s", path, exc)


def _disk_or_none(directory: Path) -> int | None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        return disk_use(fd)
    finally:
        os.close(fd)


async def _pause(running: _Running, seconds: float) -> None:
    """SIGSTOP the program for ``seconds`` (the CPU duty cycle), then SIGCONT."""
    pid = running.process.pid
    try:
        os.killpg(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return
    try:
        await trio.sleep(seconds)
    finally:
        try:
            if running.controls is None or running.controls.paused is None:
                os.killpg(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    await _send_line(running, f"stop {time.time():.3f} {seconds:.4f}\n".encode())


async def _report_throttling(running: _Running) -> None:
    """With a cgroup quota, the time the kernel held the program back is its stop time
    (Seattle's ``getresources`` stoptimes), told to the child like a duty-cycle stop."""
    group = None if running.controls is None else running.controls.group
    if group is None or not running.ready:
        return
    total = group.throttled_seconds()
    delta = total - running.throttled
    if delta >= 0.001 and running.throttled >= 0:
        await _send_line(running, f"stop {time.time():.3f} {delta:.4f}\n".encode())
    running.throttled = total


async def _send_line(running: _Running, line: bytes) -> None:
    stdin = running.process.stdin
    if stdin is None:
        return
    with trio.move_on_after(0.5):
        try:
            await stdin.send_all(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _update_usage(running: _Running, *, cpu: float, rss: int, disk: int | None) -> None:
    values = dict(running.report.usage.values)
    values.update(cpu=cpu, memory=float(rss))
    if disk is not None:
        values["diskused"] = float(disk)
    running.report = replace(running.report, usage=Usage(values))


def _apply_status(running: _Running, event: Event) -> None:
    """Fold one status event into the report; only the runner speaks before the program runs."""
    match event:
        case Ready() | CompileError() if running.ready:
            return  # claims after the program started are the program's, so forged
        case Ready(protection, rss):
            running.baseline_rss = min(rss, MAX_BASELINE)
            if running.controls is not None:
                running.controls.settle()  # the program runs: now it yields to the host
            running.report = replace(running.report, protection=protection)
            running.settled.set()
        case CompileError(errors):
            running.report = replace(running.report, compile_errors=errors)
            running.settled.set()
        case Exit(code, reason):
            running.child_exit = (code, reason)
        case UsageReport(usage):
            values = dict(running.report.usage.values)
            values.update({f"{key}_total": value for key, value in usage.items()
                           if key in running.table.values})
            running.report = replace(running.report, usage=Usage(values))


def _exit_story(running: _Running, code: int | None) -> tuple[str, VesselStatus]:
    """(reason, status) from what the supervisor did, what the child said, and the exit code."""
    if running.stop_requested:
        return "stopped by request", "Stopped"
    if running.kill_reason is not None:
        return running.kill_reason, "Terminated"
    if running.child_exit is not None and running.child_exit[0] == code:
        return running.child_exit[1], "Terminated"
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (cpu time backstop)" if -code == signal.SIGXCPU else ""
        return f"killed by {name}{hint}", "Terminated"
    return f"exited with code {code}", "Terminated"


def limits_line(table: ResourceTable) -> bytes:
    """The runner's ``limits HEX`` command: the table's resource text, hex on one line."""
    return b"limits " + table.to_text().encode().hex().encode() + b"\n"


def _capped(table: ResourceTable, caps: Mapping[str, float]) -> ResourceTable:
    """``table`` with each capped kind lowered to its cap (never raised)."""
    if not caps:
        return table
    values = {k: (min(v, caps[k]) if k in caps else v) for k, v in table.values.items()}
    return ResourceTable(values, table.messport, table.connport)


def _duty_cycle(running: _Running) -> bool:
    """True when the share is held with SIGSTOP/SIGCONT (no cgroup quota), and not paused."""
    controls = running.controls
    return controls is None or (controls.duty_cycle and controls.paused is None)


def _set_paused(running: _Running, reason: str | None) -> None:
    """Pause (freeze) or resume one program and say so in its report; errors are logged."""
    if running.controls is None or running.process.returncode is not None:
        return
    try:
        if reason is None:
            running.controls.resume()
        else:
            running.controls.pause(reason)
    except OSError as exc:
        log.warning("cannot %s pid %d: %s", "resume" if reason is None else "pause",
                    running.process.pid, exc)
        return
    running.report = replace(running.report, paused=reason)


def _kill(running: _Running) -> None:
    """SIGKILL the program's process group; thaw it so a frozen program can die."""
    _kill_group(running.process)
    if running.controls is not None:
        running.controls.killed()


def _kill_group(process: ChildProcess) -> None:
    """SIGKILL the child's process group (and the child itself, in case it is not in its
    own group yet: a forked child calls ``setsid`` first thing, but it may not have run)."""
    if process.returncode is not None:
        return
    for kill, sig in ((os.killpg, signal.SIGKILL), (os.killpg, signal.SIGCONT),
                      (os.kill, signal.SIGKILL)):
        try:
            kill(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
