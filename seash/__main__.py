"""``seash``: the researchers' shell.

    seash [--home DIR] [--bootstrap HOST:PORT ...] [--json] [-c "cmd; cmd" | FILE]

With ``set autosave on`` the last session (keys dir ``autosave.json``) is restored first.
Without ``-c`` or FILE, commands come from stdin: an interactive prompt on a terminal, a
script otherwise. The exit status is 1 when any command (or any target of one) failed, 2 for
bad command-line options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from seash.errors import SeashError
from seash.parse import parse_hostport, split_script
from seash.session import Session
from seash.settings import restore_autosave
from seash.shell import make_executor, passphrase_source, run_interactive, run_script
from seattlecore import CliParser, run_main


def _parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seash", description="the Seattle researchers' shell",
                       epilog="exit status: 0 all commands succeeded, 1 a command or a target "
                              "failed, 2 bad options. Type 'help' inside seash for its commands.")
    parser.add_argument("script", nargs="?", type=Path, help="run the commands in FILE")
    parser.add_argument("-c", dest="commands", help="run COMMANDS ('cmd; cmd') and exit")
    parser.add_argument("--home", type=Path, default=None,
                        help="keys directory (default: $SEASH_HOME or ~/.seash)")
    parser.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT",
                        help="DHT bootstrap peer (repeatable; default: $SEASH_BOOTSTRAP)")
    parser.add_argument("--json", action="store_true", help="one JSON object per command")
    parser.add_argument("--timeout", type=float, default=None, help="per-node deadline (s)")
    parser.add_argument("--passphrase-file", type=Path, default=None,
                        help="passphrase for savestate/loadstate (else $SEASH_PASSPHRASE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_main("seash", lambda: _run(args), verbose=args.verbose, usage=(SeashError,))


def _lines(args: argparse.Namespace, session: Session) -> list[str] | None:
    """Apply the options to the session; the script's lines (None: interactive)."""
    boot = args.bootstrap or os.environ.get("SEASH_BOOTSTRAP", "").replace(",", " ").split()
    if boot or not session.settings.bootstrap:
        session.settings.bootstrap = [parse_hostport(text) for text in boot]
    if args.timeout is not None:
        session.settings.timeout = args.timeout
    if args.commands is not None:
        return split_script(args.commands)
    if args.script is not None:
        try:
            return split_script(args.script.read_text())
        except OSError as exc:
            raise SeashError(f"cannot read {args.script}: {exc.strerror}") from exc
    if not sys.stdin.isatty():
        return split_script(sys.stdin.read())
    return None


def _run(args: argparse.Namespace) -> int:
    home = args.home or Path(os.environ.get("SEASH_HOME") or Path.home() / ".seash")
    session, warning = restore_autosave(home)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    lines = _lines(args, session)
    interactive = lines is None
    executor = make_executor(session, home=home, json_output=args.json,
                             passphrase=passphrase_source(args.passphrase_file, interactive))
    if lines is None:
        home.mkdir(parents=True, exist_ok=True)
        trio.run(run_interactive, executor, home / "history")
    else:
        trio.run(run_script, executor, lines)
    return 1 if executor.failed else 0


if __name__ == "__main__":
    sys.exit(main())
