"""What every console script shares: argument parsing conventions and one-line errors.

Exit statuses of every ``seattle-*`` command and ``seash``:

    0    success
    1    failure: the command could not do its job (unreachable peer, bad bundle, ...)
    2    usage: bad arguments or options
    130  interrupted (Ctrl-C)

An error is one line on stderr, ``PROG: message``; the traceback is printed only with
``-v``/``--verbose``. A closed stdout (``PROG ... | head``) ends the command quietly.

    parser = CliParser(prog="seattle-dht", description="...")
    sub = parser.add_subparsers(dest="command", required=True)
    ...
    add_global_options(parser, sub.choices.values(), [GlobalOption(("--json",), ...)])
    return run_main("seattle-dht", lambda: body(args), verbose=args.verbose,
                    usage=(OverlayUsageError,))
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, NoReturn

DISTRIBUTION = "seattle-p2p"
USAGE = 2
FAILURE = 1
INTERRUPTED = 130


def version_text(prog: str) -> str:
    """``PROG 0.1.0`` (the installed distribution's version)."""
    try:
        return f"{prog} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{prog} (version unknown: {DISTRIBUTION} is not installed)"


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (exit status 2) and which
    answers ``--version``; its subparsers are CliParsers too."""

    def __init__(self, *args: Any, version: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if version:
            self.add_argument("--version", action="version", version=version_text(self.prog),
                              help="print the version and exit")

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def subparser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """``sub.add_parser`` without a second ``--version`` (the command has it)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, version=False, **kwargs)
    return parser


@dataclass(frozen=True, slots=True)
class GlobalOption:
    """An option accepted before and after the subcommand (``PROG --json lookup K`` and
    ``PROG lookup K --json``)."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def add_global_options(parser: argparse.ArgumentParser, subparsers: Iterable[argparse.ArgumentParser],
                       options: Sequence[GlobalOption]) -> None:
    """Add ``options`` to ``parser`` and to every subparser; a value given after the
    subcommand wins, one given before it is kept (subparser defaults are suppressed)."""
    subs = list(subparsers)
    for option in options:
        parser.add_argument(*option.flags, **option.kwargs)
        for sub in subs:
            sub.add_argument(*option.flags, **{**option.kwargs, "default": argparse.SUPPRESS})


def verbose_option() -> GlobalOption:
    return GlobalOption(("-v", "--verbose"), {"action": "store_true", "default": False,
                                              "help": "more logging; tracebacks on errors"})


def json_option() -> GlobalOption:
    return GlobalOption(("--json",), {"action": "store_true", "default": False,
                                      "help": "print the result as one JSON object"})


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups (trio nurseries)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    """One line for the user: the message, with the file name for OS errors."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else None
        return f"{exc.strerror}: {where}" if where is not None else exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _quiet_stdout() -> None:
    """After EPIPE on stdout: point it at /dev/null so the exit flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run_main(prog: str, body: Callable[[], int], *, verbose: bool,
             usage: tuple[type[BaseException], ...] = (),
             failures: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``body``; turn exceptions into one line on stderr and an exit status.

    ``usage`` exceptions exit 2, ``failures`` and any other ``Exception`` exit 1 (an
    unexpected one says so and how to see the traceback).
    """
    try:
        return body()
    except BaseException as raised:  # the program's edge: every exception ends here
        return _report(prog, raised, verbose=verbose, usage=usage, failures=failures)


def _report(prog: str, raised: BaseException, *, verbose: bool,
            usage: tuple[type[BaseException], ...], failures: tuple[type[BaseException], ...]) -> int:
    exc = leaf(raised)
    if isinstance(exc, SystemExit):
        raise exc
    if isinstance(exc, BrokenPipeError):
        _quiet_stdout()
        return FAILURE
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    if not isinstance(exc, Exception):
        raise raised
    if verbose:
        traceback.print_exception(raised)
    if isinstance(exc, usage):
        print(f"{prog}: {describe(exc)}", file=sys.stderr)
        return USAGE
    if isinstance(exc, (*failures, OSError)):
        print(f"{prog}: {describe(exc)}", file=sys.stderr)
        return FAILURE
    hint = "" if verbose else " (run with -v for the traceback)"
    print(f"{prog}: unexpected error: {type(exc).__name__}: {describe(exc)}{hint}", file=sys.stderr)
    return FAILURE
