"""Run Seattle's Repy V2 API tests (ported to this dialect, in ``repyv2/``) in real vessels.

Seattle's convention (``SeattleTestbed/utf``): a test passes when it prints nothing, unless
``#pragma out TEXT`` / ``#pragma error TEXT`` say what it must print (each TEXT a substring
of a later line than the previous one; an empty TEXT matches anything). Here the vessel log
holds both what Seattle printed on stdout and on stderr, so in addition: a test without
``#pragma error`` must end normally (or by ``exitall()``), and one with it must not.
``#pragma repy [restrictions.NAME] [args...]`` picks the resource file and the arguments.

Every port a test's resource file grants (and the refused-connection target 43214) is
remapped to a free port for that run, in the resource file and in the program text, so tests
run side by side and beside other test runs on the same machine.

Run directly for a table: ``python -m tests.sandbox.repyv2_suite`` (a thin entry point to ``main``).
"""

from __future__ import annotations

import re
import shutil
import socket
import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import trio

from sandbox import Supervisor, parse_resources

SUITE = Path(__file__).parents[1] / "sandbox" / "repyv2"
NEEDS_INTERNET = frozenset({"ut_repyv2api_openconnectiontimeout.r2py"})
"""Tests that reach hosts on the internet: never run (traffic stays on loopback)."""
EXTRA_REMAPPED = (43214,)
"""A port the tests expect nobody to listen on: remapped to a free one as well."""
NORMAL_EXITS = (0, 200)
TIMEOUT = 40.0
PARALLEL = 3
DUMMY_SIZE = 16 * 1024
"""The tests open ``repy.py`` (Seattle's own source sat in the test directory): a stand-in."""


@dataclass(frozen=True)
class Pragmas:
    restrictions: str
    args: tuple[str, ...]
    out: tuple[str, ...] | None
    error: tuple[str, ...] | None


@dataclass(frozen=True)
class Outcome:
    name: str
    failure: str | None
    seconds: float
    log: str


def parse_pragmas(text: str) -> Pragmas:
    restrictions, args = "restrictions.default", ()
    out: list[str] | None = None
    error: list[str] | None = None
    for line in text.splitlines():
        match = re.match(r"\s*#\s*pragma\s+(\w+)\s?(.*)$", line)
        if not match:
            continue
        kind, arg = match.group(1), match.group(2).strip()
        if kind == "repy":
            words = arg.split()
            restrictions, args = (words[0], tuple(words[1:])) if words else ("restrictions.default", ())
        elif kind == "out":
            out = [*(out or []), arg]
        elif kind in ("error", "err"):
            error = [*(error or []), arg]
    return Pragmas(restrictions, args, tuple(out) if out is not None else None,
                   tuple(error) if error is not None else None)


def runnable_tests(directory: Path = SUITE) -> list[Path]:
    return [p for p in sorted(directory.glob("ut_*.r2py")) if p.name not in NEEDS_INTERNET]


def free_ports(count: int, avoid: set[int]) -> list[int]:
    """``count`` distinct loopback ports free for TCP and UDP right now."""
    ports: list[int] = []
    with ExitStack() as stack:
        while len(ports) < count:
            tcp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in avoid and port not in ports:
                ports.append(port)
    return ports


def remap(text: str, mapping: dict[int, int]) -> str:
    def swap(match: re.Match[str]) -> str:
        return str(mapping.get(int(match.group(0)), match.group(0)))

    return re.sub(r"(?<![\d.])\d{2,5}(?![\d.])", swap, text)


def prepare(test: Path, workdir: Path) -> tuple[Path, str, Pragmas]:
    """A vessel directory for ``test`` (every .r2py beside it + repy.py) and its resources."""
    source = test.read_text()
    pragmas = parse_pragmas(source)
    resources = (SUITE / pragmas.restrictions).read_text()
    granted = parse_resources(resources)
    old = sorted(granted.messport | granted.connport | set(EXTRA_REMAPPED))
    literals = {int(n) for n in re.findall(r"\d+", source)}
    mapping = dict(zip(old, free_ports(len(old), literals), strict=True))
    vessel = workdir / test.stem.replace("_", "-").lower()
    vessel.mkdir(parents=True)
    for other in test.parent.glob("*.r2py"):
        shutil.copyfile(other, vessel / other.name)
    (vessel / test.name).write_text(remap(source, mapping))
    (vessel / "repy.py").write_bytes(b"# stand-in for Seattle's repy.py\n".ljust(DUMMY_SIZE, b"#"))
    return vessel, remap(resources, mapping), pragmas


def judge(pragmas: Pragmas, exit_code: int | None, status: str, log: str) -> str | None:
    """Seattle's pass rule (see the module docstring); None for a pass."""
    if pragmas.error is not None:
        if exit_code in NORMAL_EXITS:
            return f"expected an error, but it ended normally (exit {exit_code})"
    elif status != "Terminated" or exit_code not in NORMAL_EXITS:
        return f"ended abnormally: {status}, exit {exit_code}"
    expected = [*(pragmas.out or ()), *(pragmas.error or ())]
    if pragmas.out is None and pragmas.error is None:
        return f"printed output: {log[:800]!r}" if log else None
    remaining = [line for line in expected if line]
    for line in log.split("\n"):
        if remaining and remaining[0] in line:
            remaining.pop(0)
    return f"missing output {remaining[0]!r} in {log[:800]!r}" if remaining else None


async def run_one(sup: Supervisor, test: Path, workdir: Path, limiter: trio.CapacityLimiter) -> Outcome:
    async with limiter:
        vessel, resources, pragmas = prepare(test, workdir)
        started = time.monotonic()
        key = str(vessel)
        await sup.start(key, vessel, parse_resources(resources), test.name, list(pragmas.args))
        with trio.move_on_after(TIMEOUT):
            await sup.wait(key)
        if sup.report(key).status == "Started":
            await sup.stop(key)
        report = sup.report(key)
        log = sup.read_log(key).decode("utf-8", "replace")
        failure = judge(pragmas, report.exit_code, report.status, log)
        if failure and report.exit_reason:
            failure += f" [{report.exit_reason}]"
        return Outcome(test.name, failure, time.monotonic() - started, log)


async def run_suite(tests: Iterable[Path], workdir: Path) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    limiter = trio.CapacityLimiter(PARALLEL)

    async def one(sup: Supervisor, test: Path) -> None:
        results[test.name] = await run_one(sup, test, workdir, limiter)

    async with Supervisor.open() as sup, trio.open_nursery() as nursery:
        for test in tests:
            nursery.start_soon(one, sup, test)
    return results


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="repyv2-") as scratch:
        started = time.monotonic()
        results = trio.run(run_suite, runnable_tests(), Path(scratch))
        elapsed = time.monotonic() - started
    for name, outcome in sorted(results.items()):
        print(f"{'PASS' if outcome.failure is None else 'FAIL'} {outcome.seconds:5.1f}s {name}"
              + (f"  {outcome.failure}" if outcome.failure else ""))
    passed = sum(o.failure is None for o in results.values())
    print(f"{passed} passed, {len(results) - passed} failed ({elapsed:.1f} s); "
          f"not run (internet): {', '.join(sorted(NEEDS_INTERNET))}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
