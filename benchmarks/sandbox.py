"""Benchmarks of the vessel sandbox: compute overhead, start latency, cpu and rate limits.

Usage: ``.venv/bin/python benchmarks/sandbox.py [--quick]``

1. Compute overhead: five kernels timed with ``getruntime()`` inside a hardened vessel
   (cpu 1.0) and the same source run by plain ``python3 -c`` in its own session (with
   ``log``/``getruntime`` shims); per-kernel medians and sandboxed/plain ratios. Goal:
   median ratio <= 1.3.
2. Start latency: ``Supervisor.start`` call to its return, to the first log line, and to
   the exit, of a trivial program; forked from the fork server and cold, alternating, and
   a bare ``python -I -S -c pass`` alongside. Goals: p50 start() < 40 ms, first line < 50 ms.
2b. End to end: a ~1 s CPU-bound program (the kernels of 1.), sandboxed from the ``start()``
   call to its exit vs plain ``python3 -c`` from process start to exit, interleaved.
   Goal: ratio of medians <= 1.15.
3. CPU limit: a busy loop at cpu 0.1 / 0.25 / 0.5; CPU seconds of the child (from /proc
   via psutil) over a wall-clock window.
4. Rate limits: filewrite, lograte and loopsend, measured by the program itself with
   ``getruntime()``; over the whole run (includes the nanny's initial one-second burst)
   and in steady state (from 1 s on).

``--quick`` shrinks repetitions and durations for a smoke run. The full run takes ~1.5 min.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This file is named like the package it measures: keep its own directory off the path
# so ``import sandbox`` finds the package in the repository root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import trio  # noqa: E402

from sandbox import ResourceTable, Supervisor, VesselReport, parse_resources  # noqa: E402

MESSPORT = 63100
DEST_PORT = 63101  # nobody listens: UDP to a closed loopback port is fine


# ---------------------------------------------------------------------------- output

class Printer:
    """Tables with rich on a terminal, plain aligned text otherwise."""

    def __init__(self) -> None:
        self.rich = sys.stdout.isatty()
        if self.rich:
            from rich.console import Console

            self.console = Console()

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
              notes: Sequence[str] = ()) -> None:
        if self.rich:
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for i, header in enumerate(headers):
                table.add_column(header, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            for note in notes:
                self.console.print(note, highlight=False, markup=False)
            self.console.print()
            return
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

        def line(cells: Sequence[str]) -> str:
            out = [cells[0].ljust(widths[0])]
            out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join(out).rstrip()

        print(title)
        print(line(headers))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print(line(row))
        for note in notes:
            print(note)
        print(flush=True)


class WarningCollector(logging.Handler):
    """Keeps the supervisor's warnings (e.g. runner stderr) for a summary at the end."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = re.sub(r"^vessel \S+ ", "vessel * ", record.getMessage()).strip()
        self.seen[message] += 1


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# ---------------------------------------------------------------------------- vessels

def table_for(**overrides: float) -> ResourceTable:
    """A generous resource table with ``overrides`` (rates in units per second)."""
    values: dict[str, float] = {
        "cpu": 1.0, "memory": 400_000_000, "diskused": 200_000_000, "events": 10,
        "filewrite": 1e9, "fileread": 1e9, "filesopened": 10, "insockets": 10,
        "outsockets": 10, "netsend": 1e9, "netrecv": 1e9, "loopsend": 1e9,
        "looprecv": 1e9, "lograte": 1e9, "random": 1e6,
    }
    values.update(overrides)
    lines = [f"resource {k} {v!r}" for k, v in values.items()]
    lines += [f"resource messport {MESSPORT}", f"resource connport {MESSPORT}"]
    return parse_resources("\n".join(lines) + "\n")


class Vessels:
    """Writes programs into fresh vessel directories and runs them."""

    def __init__(self, sup: Supervisor, scratch: Path) -> None:
        self.sup = sup
        self.scratch = scratch
        self.count = 0

    async def start(self, source: str, table: ResourceTable) -> str:
        self.count += 1
        vessel = f"bench{self.count}"
        directory = self.scratch / vessel
        directory.mkdir()
        (directory / "program.py").write_text(source)
        await self.sup.start(vessel, directory, table, "program.py")
        return vessel

    async def run(self, source: str, table: ResourceTable, timeout: float = 120.0) -> str:
        """Run to the end; return the log; raise if the program did not end normally."""
        vessel = await self.start(source, table)
        with trio.move_on_after(timeout):
            report = await self.sup.wait(vessel)
        if self.sup.report(vessel).status == "Started":
            report = await self.sup.stop(vessel)
        return self.checked(vessel, report)

    def checked(self, vessel: str, report: VesselReport) -> str:
        text = self.sup.read_log(vessel).decode("utf-8", "replace")
        if report.exit_code != 0:
            raise RuntimeError(
                f"vessel program failed: {report.status}: {report.exit_reason}\n{text[-2000:]}"
            )
        return text

    async def wait_for_log(self, vessel: str, needle: bytes, timeout: float = 10.0) -> float:
        """Poll the log until ``needle`` shows up; return the trio time it was seen."""
        with trio.fail_after(timeout):
            while needle not in self.sup.read_log(vessel):
                if self.sup.report(vessel).status != "Started":
                    report = await self.sup.wait(vessel)
                    self.checked(vessel, report)
                    raise RuntimeError(f"{vessel} ended before logging {needle!r}")
                await trio.sleep(0.001)
        return trio.current_time()


def vessel_child(sup_pid: int, fork_server: int | None) -> psutil.Process:
    """The (single) running vessel child of this process (its fork server aside)."""
    children = [c for c in psutil.Process(sup_pid).children() if c.pid != fork_server]
    if len(children) != 1:
        raise RuntimeError(f"expected one vessel child, found {len(children)}")
    return children[0]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


# ---------------------------------------------------------------------------- 1. overhead

KERNELS_SOURCE = '''
def k_sum(n):
    total = 0
    for i in range(n):
        total += i
    return total

def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def k_fib(n):
    return fib(n)

def k_strings(n):
    parts = []
    for i in range(n):
        parts.append("item" + str(i) + ";")
    text = "".join(parts)
    word = ""
    for i in range(n // 4):
        word = word + chr(97 + i % 26)
    return len(text) + len(word) + text.count("9")

def k_dicts(n):
    counts = {}
    for i in range(n):
        key = (i * 7919) % 1000
        counts[key] = counts.get(key, 0) + 1
    pairs = sorted(counts.items())
    doubled = [v * 2 for k, v in pairs]
    seen = []
    for i in range(n // 10):
        seen.append(i % 97)
    return sum(doubled) + len(counts) + sum(seen)

# Vessel code cannot assign instance attributes (RestrictedPython's write guard wraps
# every object but dict/list, and the opt-out needs a "_" name), so objects are tuples.
class Vec(tuple):
    def add(self, other):
        return Vec((self[0] + other[0], self[1] + other[1]))
    def scale(self, k):
        return Vec((self[0] * k, self[1] * k))
    def dot(self, other):
        return self[0] * other[0] + self[1] * other[1]

def k_objects(n):
    acc = Vec((0, 0))
    step = Vec((1, 2))
    total = 0
    for i in range(n):
        acc = acc.add(step.scale(i % 7))
        total = (total + acc.dot(step)) % 1000003
    return total

KERNELS = [
    ("sum loop (+=)", k_sum, 1200000),
    ("fib recursion", k_fib, 27),
    ("string building", k_strings, 200000),
    ("dict/list work", k_dicts, 300000),
    ("class methods", k_objects, 75000),
]

k_sum(1000)
for rep in range(REPS):
    for entry in KERNELS:
        name = entry[0]
        fn = entry[1]
        size = entry[2]
        t0 = getruntime()
        result = fn(size)
        t1 = getruntime()
        log("K|" + name + "|" + str(rep) + "|" + repr(t1 - t0) + "|" + str(result))
'''

KERNEL_TAIL = '''
stops = getresources()[2]
log("S|" + str(len(stops)) + "|" + repr(sum([s[1] for s in stops])))
'''


def kernel_source(reps: int) -> str:
    return f"REPS = {reps}\n" + KERNELS_SOURCE


def parse_kernel_log(text: str) -> dict[str, list[tuple[float, str]]]:
    out: dict[str, list[tuple[float, str]]] = {}
    for line in text.splitlines():
        if line.startswith("K|"):
            _, name, _rep, elapsed, result = line.split("|")
            out.setdefault(name, []).append((float(elapsed), result))
    return out


PLAIN_SHIMS = """
import time
_started = time.monotonic()
def log(*args):
    print(*args)
def getruntime():
    return time.monotonic() - _started
"""


def run_plain(source: str) -> str:
    """Run ``source`` in a plain ``python3 -c`` with Repy shims; return what it logged.

    A process of its own in a session of its own, like a vessel (see ``run_plain_process``).
    """
    done = subprocess.run([sys.executable, "-c", PLAIN_SHIMS + source], check=True,
                          capture_output=True, text=True, start_new_session=True)
    return done.stdout


async def bench_overhead(vessels: Vessels, out: Printer, reps: int) -> None:
    # Rounds alternate plain and sandboxed runs so that load from elsewhere on the machine
    # hits both sides alike; each round runs every kernel once (one fresh vessel per round).
    source = kernel_source(1)
    plain: dict[str, list[tuple[float, str]]] = {}
    boxed: dict[str, list[tuple[float, str]]] = {}
    stops = []
    for _ in range(reps):
        plain_log = await trio.to_thread.run_sync(run_plain, source)
        for name, runs in parse_kernel_log(plain_log).items():
            plain.setdefault(name, []).extend(runs)
        text = await vessels.run(source + KERNEL_TAIL, table_for(cpu=1.0))
        for name, runs in parse_kernel_log(text).items():
            boxed.setdefault(name, []).extend(runs)
        stops += [line.split("|") for line in text.splitlines() if line.startswith("S|")]
    rows = []
    ratios = []
    for name, plain_runs in plain.items():
        boxed_runs = boxed[name]
        same = {r for _, r in plain_runs} == {r for _, r in boxed_runs}
        p = statistics.median(t for t, _ in plain_runs)
        b = statistics.median(t for t, _ in boxed_runs)
        ratios.append(b / p)
        rows.append([name, ms(p), ms(b), f"{b / p:.2f}x", "ok" if same else "MISMATCH"])
    median_ratio = statistics.median(ratios)
    verdict = "met" if median_ratio <= 1.3 else "MISSED"
    notes = [f"median ratio {median_ratio:.2f}x (goal <= 1.30x: {verdict}); "
             f"{reps} interleaved runs per kernel, medians shown"]
    if stops:
        count = sum(int(s[1]) for s in stops)
        total = sum(float(s[2]) for s in stops)
        notes.append(f"cpu-throttle stops during the sandboxed runs: {count} "
                     f"({total * 1000:.0f} ms total)")
    out.table("1. Compute overhead: sandboxed (cpu 1.0, hardened) vs plain CPython exec",
              ["kernel", "plain ms", "sandbox ms", "ratio", "result"], rows, notes)


# ---------------------------------------------------------------------------- 2. latency

@dataclass
class StartTimes:
    """Seconds from the ``start()`` call to: its return, the first log line, the exit."""

    returned: list[float]
    first: list[float]
    ended: list[float]


async def time_one_start(vessels: Vessels, times: StartTimes) -> None:
    vessels.count += 1
    vessel = f"lat{vessels.count}"
    directory = vessels.scratch / vessel
    directory.mkdir()
    (directory / "program.py").write_text('log("up")\n')
    t0 = trio.current_time()
    await vessels.sup.start(vessel, directory, table_for(cpu=1.0), "program.py")
    times.returned.append(trio.current_time() - t0)
    times.first.append(await vessels.wait_for_log(vessel, b"up") - t0)
    report = await vessels.sup.wait(vessel)
    times.ended.append(trio.current_time() - t0)
    vessels.checked(vessel, report)


def bare_interpreter() -> float:
    """Wall seconds of ``python -I -S -c pass`` (what a cold start pays before any import)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
    return time.monotonic() - t0


async def bench_latency(vessels: Vessels, cold: Vessels, out: Printer, starts: int) -> None:
    # Forked and cold starts alternate, so load from elsewhere hits both alike.
    forked = StartTimes([], [], [])
    spawned = StartTimes([], [], [])
    bare = []
    for _ in range(starts):
        await time_one_start(vessels, forked)
        await time_one_start(cold, spawned)
        bare.append(bare_interpreter())
    rows = []
    for label, times in (("forked", forked), ("cold", spawned)):
        for what, xs in (("start() returns", times.returned), ("first log line", times.first),
                         ("program exited", times.ended)):
            rows.append([f"{what} ({label})", ms(percentile(xs, 0.5)), ms(percentile(xs, 0.9)),
                         ms(min(xs)), ms(max(xs))])
    rows.append(["bare python -I -S -c pass", ms(percentile(bare, 0.5)),
                 ms(percentile(bare, 0.9)), ms(min(bare)), ms(max(bare))])
    start_p50 = percentile(forked.returned, 0.5)
    first_p50 = percentile(forked.first, 0.5)
    verdicts = [f"{name} p50 {ms(value)} ms (goal < {ms(goal)} ms: "
                f"{'met' if value < goal else 'MISSED'})"
                for name, value, goal in (("start()", start_p50, 0.040),
                                          ("first line", first_p50, 0.050))]
    out.table(f"2. Start latency of a trivial program ({starts} starts each, hardened; forked "
              "from the fork server vs a cold interpreter)",
              ["from start() call to", "p50 ms", "p90 ms", "min ms", "max ms"], rows,
              ["; ".join(verdicts)])


# ---------------------------------------------------------------------------- 2b. end to end

def run_plain_process(source: str) -> float:
    """Wall seconds of plain ``python3 -c SOURCE`` (start included), with Repy shims.

    In its own session, as a vessel is: with the kernel's autogroup scheduling each
    session shares the CPU fairly with the others, so anything else would compare a vessel
    with a process competing against this benchmark's session.
    """
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", PLAIN_SHIMS + source], check=True,
                   stdout=subprocess.DEVNULL, start_new_session=True)
    return time.monotonic() - t0


async def bench_end_to_end(vessels: Vessels, out: Printer, rounds: int, reps: int) -> None:
    """A ~1 s CPU-bound program (the five kernels, ``reps`` times): whole wall time."""
    source = kernel_source(reps)
    plain: list[float] = []
    boxed: list[float] = []
    for _ in range(rounds):
        plain.append(await trio.to_thread.run_sync(run_plain_process, source))
        t0 = trio.current_time()
        await vessels.run(source, table_for(cpu=1.0))
        boxed.append(trio.current_time() - t0)
    p, b = statistics.median(plain), statistics.median(boxed)
    ratios = sorted(x / y for x, y in zip(boxed, plain, strict=True))
    verdict = "met" if b / p <= 1.15 else "MISSED"
    out.table(f"2b. A ~1 s CPU-bound program end to end ({rounds} interleaved runs, start to exit)",
              ["run", "median s", "min s", "max s"],
              [["plain python3 -c (process start included)", f"{p:.3f}", f"{min(plain):.3f}",
                f"{max(plain):.3f}"],
               ["sandboxed: start() call to exit (forked)", f"{b:.3f}", f"{min(boxed):.3f}",
                f"{max(boxed):.3f}"]],
              [f"ratio of medians {b / p:.2f}x (goal <= 1.15x: {verdict}); per-round ratios "
               f"{ratios[0]:.2f}-{ratios[-1]:.2f}x"])


# ---------------------------------------------------------------------------- 3. cpu

BUSY_SOURCE = '''
log("go")
x = 0
while True:
    x = x + 1
'''


def sample_cpu(vessels: Vessels, vessel: str, child: psutil.Process) -> tuple[float, float, float]:
    """(wall time, child CPU seconds from /proc, CPU seconds in the supervisor's report)."""
    reported = vessels.sup.report(vessel).usage.values.get("cpu", float("nan"))
    return time.monotonic(), cpu_seconds(child), reported


async def bench_cpu(vessels: Vessels, out: Printer, shares: Sequence[float], seconds: float) -> None:
    rows = []
    for share in shares:
        vessel = await vessels.start(BUSY_SOURCE, table_for(cpu=share))
        await vessels.wait_for_log(vessel, b"go")
        child = vessel_child(os.getpid(), vessels.sup.launcher.server_pid)
        await trio.sleep(0.25)  # skip the first throttle decisions

        w0, c0, r0 = sample_cpu(vessels, vessel, child)
        await trio.sleep(seconds)
        w1, c1, r1 = sample_cpu(vessels, vessel, child)
        await vessels.sup.stop(vessel)
        measured = (c1 - c0) / (w1 - w0)
        reported = (r1 - r0) / (w1 - w0)
        rows.append([f"{share:.2f}", f"{measured:.3f}", f"{(measured - share) * 100:+.1f}",
                     f"{(measured / share - 1) * 100:+.1f}%", f"{c1 - c0:.2f} / {w1 - w0:.2f}",
                     f"{reported:.3f}"])
    out.table(f"3. CPU limit accuracy (busy loop, {seconds:.0f} s window per share)",
              ["target share", "measured", "error (points)", "error (rel)", "cpu s / wall s",
               "report.usage share"],
              rows, ["measured = child CPU seconds (/proc via psutil) / wall seconds over the "
                     "window; report.usage share = the same from the supervisor's report"])


# ---------------------------------------------------------------------------- 4. rates

# Each program records (elapsed, units) marks every 0.25 s while it works and logs them
# only afterwards, so the measurement itself is not charged to the limited resource.
RATE_HEAD = '''
marks = []
next_mark = 0.25
done = 0
t0 = getruntime()
'''

RATE_TAIL = '''
for m in marks:
    log("M|" + repr(m[0]) + "|" + str(m[1]))
'''

FILEWRITE_SOURCE = '''
handle = openfile("blob.bin", True)
block = "x" * 4096
''' + RATE_HEAD + '''
while True:
    handle.writeat(block, done)
    done += 4096
    now = getruntime() - t0
    if now >= next_mark:
        marks.append((now, done))
        next_mark += 0.25
        if now >= DURATION:
            break
handle.close()
''' + RATE_TAIL

LOGRATE_SOURCE = '''
line = "y" * 99
''' + RATE_HEAD + '''
while True:
    log(line)
    done += 100
    now = getruntime() - t0
    if now >= next_mark:
        marks.append((now, done))
        next_mark += 0.25
        if now >= DURATION:
            break
''' + RATE_TAIL

LOOPSEND_SOURCE = '''
payload = "z" * 1000
''' + RATE_HEAD + '''
while True:
    sendmessage("127.0.0.1", DEST_PORT, payload, "127.0.0.1", MESSPORT)
    done += 1064
    now = getruntime() - t0
    if now >= next_mark:
        marks.append((now, done))
        next_mark += 0.25
        if now >= DURATION:
            break
''' + RATE_TAIL


@dataclass(frozen=True)
class RateCase:
    label: str
    kind: str
    limit: float
    source: str
    unit_note: str


def parse_marks(text: str) -> list[tuple[float, int]]:
    marks = []
    for line in text.splitlines():
        if line.startswith("M|"):
            _, t, n = line.split("|")
            marks.append((float(t), int(n)))
    return marks


async def bench_rates(vessels: Vessels, out: Printer, seconds: float) -> None:
    cases = [
        RateCase("filewrite", "filewrite", 200_000, FILEWRITE_SOURCE, "4096-byte writeat"),
        RateCase("lograte", "lograte", 20_000, LOGRATE_SOURCE, "100-byte log lines"),
        RateCase("loopsend", "loopsend", 100_000, LOOPSEND_SOURCE,
                 "1000-byte datagrams, charged 1064"),
    ]
    rows = []
    for case in cases:
        head = f"DURATION = {seconds!r}\nDEST_PORT = {DEST_PORT}\nMESSPORT = {MESSPORT}\n"
        text = await vessels.run(head + case.source, table_for(**{case.kind: case.limit}))
        marks = parse_marks(text)
        t_end, n_end = marks[-1]
        overall = n_end / t_end
        base = next((m for m in marks if m[0] >= 1.0), marks[0])
        steady = (n_end - base[1]) / (t_end - base[0])
        rows.append([
            case.label, case.unit_note, f"{case.limit:,.0f}", f"{overall:,.0f}",
            f"{(overall / case.limit - 1) * 100:+.1f}%", f"{steady:,.0f}",
            f"{(steady / case.limit - 1) * 100:+.1f}%",
        ])
    out.table(f"4. Rate limit accuracy (~{seconds:.0f} s per resource, B/s)",
              ["resource", "workload", "target", "whole run", "error", "steady (>=1 s)", "error"],
              rows, ["whole run = units / elapsed from the first call (getruntime); "
                     "steady = from the first mark at >= 1 s to the end"])


# ---------------------------------------------------------------------------- main

@dataclass(frozen=True)
class Plan:
    reps: int
    starts: int
    rounds: int
    e2e_reps: int
    cpu_seconds: float
    rate_seconds: float


async def main_async(plan: Plan, out: Printer) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        # When run as root each vessel gets its own uid, which must be able to reach the
        # vessel directories below this (otherwise 0700) scratch directory.
        os.chmod(scratch, 0o711)
        async with Supervisor.open(harden=True) as sup, \
                Supervisor.open(harden=True, fork_server=False) as cold_sup:
            vessels = Vessels(sup, Path(scratch))
            cold = Vessels(cold_sup, Path(scratch))
            cold.count = 100_000  # its own vessel names
            await vessels.run('log("warm")\n', table_for())  # the fork server is up
            steps: list[Callable[[], Any]] = [
                lambda: bench_overhead(vessels, out, plan.reps),
                lambda: bench_latency(vessels, cold, out, plan.starts),
                lambda: bench_end_to_end(vessels, out, plan.rounds, plan.e2e_reps),
                lambda: bench_cpu(vessels, out, (0.1, 0.25, 0.5), plan.cpu_seconds),
                lambda: bench_rates(vessels, out, plan.rate_seconds),
            ]
            for step in steps:
                await step()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        plan = Plan(reps=2, starts=5, rounds=2, e2e_reps=4, cpu_seconds=1.5, rate_seconds=1.5)
    else:
        plan = Plan(reps=7, starts=25, rounds=7, e2e_reps=4, cpu_seconds=6.0, rate_seconds=4.0)
    out = Printer()
    collector = WarningCollector()
    sandbox_log = logging.getLogger("sandbox")
    sandbox_log.addHandler(collector)
    sandbox_log.propagate = False
    began = time.monotonic()
    trio.run(main_async, plan, out)
    if collector.seen:
        print("Supervisor warnings (deduplicated):")
        for message, count in collector.seen.items():
            print(f"  [{count}x] " + message.replace("\n", "\n        "))
        print()
    print(f"total benchmark time {time.monotonic() - began:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
