"""``seash``: the researchers' shell.

    seash [--home DIR] [--bootstrap HOST:PORT ...] [--json] [-c "cmd; cmd" | FILE]

Without ``-c`` or FILE, commands come from stdin: an interactive prompt on a terminal, a
script otherwise. The exit status is 1 when any command (or any target of one) failed.
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
from seash.shell import make_executor, passphrase_source, run_interactive, run_script


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seash", description="the Seattle researchers' shell")
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
    home = args.home or Path(os.environ.get("SEASH_HOME") or Path.home() / ".seash")
    session = Session()
    try:
        boot = args.bootstrap or os.environ.get("SEASH_BOOTSTRAP", "").replace(",", " ").split()
        session.settings.bootstrap = [parse_hostport(text) for text in boot]
        if args.timeout is not None:
            session.settings.timeout = args.timeout
        if args.commands is not None:
            lines = split_script(args.commands)
        elif args.script is not None:
            lines = split_script(args.script.read_text())
        elif not sys.stdin.isatty():
            lines = split_script(sys.stdin.read())
        else:
            lines = None
    except (SeashError, OSError) as exc:
        print(f"seash: {exc}", file=sys.stderr)
        return 2
    interactive = lines is None
    executor = make_executor(session, home=home, json_output=args.json,
                             passphrase=passphrase_source(args.passphrase_file, interactive))
    try:
        if lines is None:
            home.mkdir(parents=True, exist_ok=True)
            trio.run(run_interactive, executor, home / "history")
        else:
            trio.run(run_script, executor, lines)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if executor.failed else 0


if __name__ == "__main__":
    sys.exit(main())
