"""``seattle-sandbox run``: run one program locally exactly as a vessel would (like repy.py)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from sandbox.errors import ProgramStartError, SandboxError
from sandbox.process.supervisor import Supervisor, VesselReport
from sandbox.repy import RepyArgumentError
from sandbox.resources import ResourceTable, parse_resources
from sandbox.vessel.api import EXIT
from sandbox.vessel.vesselfiles import check_filename
from seattlecore import CliParser, run_main

USAGE_ERRORS = (SandboxError, RepyArgumentError)
"""A bad resource file or program name: exit status 2 (other failures: 1)."""


def _parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seattle-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run PROGRAM.py in a sandboxed vessel and print its log")
    run.add_argument("--resources", type=Path, help="resource file (default: built-in)")
    run.add_argument("--dir", type=Path, help="vessel directory (default: a temporary one)")
    run.add_argument("--timeout", type=float, default=None, help="stop the program after N s")
    run.add_argument("--no-harden", action="store_true", help="skip the OS layers (debugging)")
    run.add_argument("--no-cgroups", action="store_true",
                     help="hold the CPU share with the SIGSTOP duty cycle, not a cgroup quota")
    run.add_argument("-v", "--verbose", action="store_true", help="show supervisor logging")
    run.add_argument("program", type=Path, metavar="PROGRAM.py", help="the vessel program")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="its arguments (callargs)")
    check = sub.add_parser("check", help="compile PROGRAM.py under the policy; do not run it")
    check.add_argument("program", type=Path, metavar="PROGRAM.py", help="the vessel program")
    port = sub.add_parser("port", help="convert a Python 2 Repy program to this dialect")
    port.add_argument("program", type=Path, metavar="OLD.r2py", help="the Seattle program")
    port.add_argument("-o", "--output", type=Path, help="write the result here (default: stdout)")
    return parser


def default_resources() -> ResourceTable:
    text = (Path(__file__).parent / "default.resources").read_text()
    return parse_resources(text)


class _Output:
    """Writes every byte of program output to stdout as it arrives; notes a closed pipe."""

    def __init__(self) -> None:
        self.broken = trio.Event()

    def write(self, chunk: bytes) -> None:
        if self.broken.is_set():
            return
        try:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            self.broken.set()


async def run_program(args: argparse.Namespace, table: ResourceTable, vessel_dir: Path) -> Ending:
    """Run the program to its end (or the timeout, or a closed stdout); stream its output."""
    name = args.program.name.lower()
    check_filename(name)
    target = vessel_dir / name
    if target.resolve() != args.program.resolve():
        shutil.copyfile(args.program, target)
    output = _Output()
    # One program, once: a fork server would only add a process (it pays off from the 2nd start).
    async with Supervisor.open(harden=not args.no_harden, fork_server=False,
                               cgroups=not args.no_cgroups) as supervisor:
        try:
            await supervisor.start("local", vessel_dir, table, name, args.args, on_log=output.write)
        except ProgramStartError:
            return Ending(supervisor.report("local"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on, output.broken, nursery.cancel_scope)
            with trio.move_on_after(args.timeout if args.timeout else float("inf")) as scope:
                await supervisor.wait("local")
            nursery.cancel_scope.cancel()
        if supervisor.report("local").status == "Started":
            await supervisor.stop("local")
        timed_out = args.timeout if scope.cancelled_caught else None
        return Ending(supervisor.report("local"), timed_out, output.broken.is_set())


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


CLEAN_EXITS = (EXIT.normal, EXIT.exitall)
"""A program that ran to its end or called ``exitall()`` ended normally (as in Seattle)."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How a local run ended: the report, the timeout that stopped it, a closed stdout."""

    report: VesselReport
    timed_out: float | None = None
    broken_pipe: bool = False

    def message(self) -> str | None:
        """The one-line summary for stderr, or None for a clean end."""
        if self.broken_pipe:
            return None
        if self.timed_out is not None:
            return f"timed out after {self.timed_out:g} s"
        if self.report.exit_code in CLEAN_EXITS and self.report.status == "Terminated":
            return None
        return f"{self.report.status}: {self.report.exit_reason}"

    @property
    def ok(self) -> bool:
        """Ended cleanly (a closed stdout, ``| head``, is not a failure either: exit 0)."""
        return self.timed_out is None and self.message() is None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return run_main("seattle-sandbox", lambda: _check(args.program), verbose=False,
                        usage=USAGE_ERRORS)
    if args.command == "port":
        return run_main("seattle-sandbox", lambda: _port(args.program, args.output),
                        verbose=False, usage=USAGE_ERRORS)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_main("seattle-sandbox", lambda: _run(args), verbose=args.verbose, usage=USAGE_ERRORS)


def _readable(path: Path, what: str) -> bytes:
    """The bytes of a file the command was given; unreadable is bad usage (exit status 2)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SandboxError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _run(args: argparse.Namespace) -> int:
    _readable(args.program, "program")
    table = (parse_resources(_readable(args.resources, "resource file").decode("utf-8", "replace"))
             if args.resources else default_resources())
    with tempfile.TemporaryDirectory(prefix="vessel-") as scratch:
        vessel_dir = args.dir or Path(scratch)
        vessel_dir.mkdir(parents=True, exist_ok=True)
        ending = trio.run(run_program, args, table, vessel_dir)
    if ending.broken_pipe:  # like `| head`: quiet, and no second error at interpreter exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    message = ending.message()
    if message is not None:
        print(f"seattle-sandbox: {message}", file=sys.stderr)
    return 0 if ending.ok else 1


def _check(program: Path) -> int:
    from sandbox.lang.compiler import CompileFailed, compile_program

    result = compile_program(_readable(program, "program"))
    if isinstance(result, CompileFailed):
        for error in result.errors:
            print(f"{program}: {error}", file=sys.stderr)
        return 1
    print(f"{program}: ok")
    return 0


def _port(program: Path, output: Path | None) -> int:
    """Convert; the program goes to ``output`` or stdout, the report to stderr."""
    from sandbox.lang.port import port_source

    try:
        source = program.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"seattle-sandbox: cannot read {program}: {exc}", file=sys.stderr)
        return 2
    result = port_source(source, program.name)
    if output is None:
        sys.stdout.write(result.source)
    else:
        output.write_text(result.source, "utf-8")
    for line in result.changes:
        print(f"{program}: changed: {line}", file=sys.stderr)
    for line in result.problems:
        print(f"{program}: NOT CONVERTED: {line}", file=sys.stderr)
    verdict = "ready to run" if result.clean else f"{len(result.problems)} problem(s) left"
    print(f"{program}: {len(result.changes)} change(s), {verdict}", file=sys.stderr)
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
