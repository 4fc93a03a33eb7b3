"""``seattle-testbed``: a whole testbed on one machine (N node managers on loopback).

    seattle-testbed up --nodes 5 [--dir DIR] [--vessels 2] [--no-sandbox] [--wait]
    seattle-testbed status [--dir DIR]
    seattle-testbed down [--dir DIR]
    seattle-testbed demo [--nodes 5] [--dir DIR] [--program examples/hello.py] [ARGS...]

The command line only: the testbed itself is ``installer/testbed.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from installer.errors import InstallError, TestbedError
from installer.status import query_nodes
from installer.testbed import (
    DEMO,
    MANIFEST,
    load_manifest,
    run_everywhere,
    running_nodes,
    start_testbed,
    stop_all,
    wait_discoverable,
)
from seattlecore import CliParser, PublicKey, add_global_options, run_main, subparser, verbose_option


def cmd_up(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    started = time.monotonic()
    try:
        data = trio.run(start_testbed, directory, args.nodes, args.vessels, not args.no_sandbox)
    except OSError as exc:
        raise TestbedError(f"cannot set up {directory}: {exc}") from exc
    print(f"testbed up: {args.nodes} node managers in {time.monotonic() - started:.1f} s, "
          f"{args.vessels} vessels each, owned by the demo identity")
    if args.wait:
        key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
        took = trio.run(wait_discoverable, data["bootstrap"], key, args.nodes)
        print(f"all nodes discoverable in the DHT after {took:.1f} s more")
    print(f"  DHT bootstrap peer: {data['bootstrap']}")
    print(f"  demo identity:      {data['demo']['publickey']} (+ .privatekey)")
    print(f"  details:            {directory / MANIFEST}")
    print("point seash at it:")
    print(f"  seash --home {directory / 'keys'} --bootstrap {data['bootstrap']}")
    print(f"  then: loadkeys {DEMO}; browse; list")
    print(f"stop it with: seattle-testbed down --dir {directory}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    data = load_manifest(directory)
    stopped = stop_all(data["nodes"])
    left = running_nodes(data)
    if left:
        raise TestbedError(f"{len(left)} node(s) still running")
    print(f"testbed down: stopped {stopped} of {len(data['nodes'])} node managers")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    data = load_manifest(directory)
    nodes = data["nodes"]
    alive = {n["name"] for n in running_nodes(data)}
    reports = trio.run(query_nodes, [Path(n["state"]) for n in nodes])
    print(f"testbed in {directory}: {len(alive)}/{len(nodes)} running, bootstrap {data['bootstrap']}")
    print(f"{'node':<6} {'pid':>7} {'state':<8} {'tcp':>6} {'dht':>6} {'vessels':>7} {'peers':>5}  key")
    for node, report in zip(nodes, reports, strict=True):
        up = node["name"] in alive
        peers = "-" if report.dht_peers is None else str(report.dht_peers)
        key = (report.node_key or "")[:16] if up else ""
        print(f"{node['name']:<6} {node['pid']:>7} {'running' if up else 'stopped':<8} "
              f"{node['port']:>6} {node['dht_port']:>6} {len(report.vessels) if up else '-':>7} "
              f"{peers if up else '-':>5}  {key}")
    return 0 if len(alive) == len(nodes) else 1


def _example(program: Path | None) -> Path:
    """The demo program: as given, else examples/hello.py here or in the source tree."""
    if program is not None:
        return program
    here = Path("examples") / "hello.py"
    return here if here.exists() else Path(__file__).resolve().parents[1] / "examples" / "hello.py"


def cmd_demo(args: argparse.Namespace) -> int:
    """up -> run a program on every vessel -> print the logs -> down."""
    program = _example(args.program)
    if not program.is_file():
        raise TestbedError(f"no program {program}; pass --program FILE")
    with tempfile.TemporaryDirectory(prefix="seattle-demo-") as scratch:
        if args.dir is None:
            Path(scratch).chmod(0o755)  # vessels may run as another uid: let them reach their dirs
        directory = (args.dir or Path(scratch) / "testbed").absolute()
        return _demo(args, directory, program)


def _demo(args: argparse.Namespace, directory: Path, program: Path) -> int:
    started = time.monotonic()
    try:
        data = trio.run(start_testbed, directory, args.nodes, args.vessels, True)
    except OSError as exc:
        raise TestbedError(f"cannot set up {directory}: {exc}") from exc
    try:
        print(f"testbed up: {args.nodes} nodes x {args.vessels} vessels in "
              f"{time.monotonic() - started:.1f} s; bootstrap {data['bootstrap']}")
        results = trio.run(run_everywhere, data, program, args.args)
        print(f"ran {program.name} on {len(results)} vessels:")
        for result in results:
            print(f"--- {result.address} {result.vessel}: {result.status}")
            print(result.log.rstrip())
    finally:
        stop_all(data["nodes"])
        print(f"testbed down ({time.monotonic() - started:.1f} s in all)")
    ok = bool(results) and all(r.status != "Started" for r in results)
    return 0 if ok else 1


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seattle-testbed", description="a local Seattle testbed on loopback",
                       epilog="exit status: 0 ok, 1 failure (status: some node is down), 2 bad usage")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = subparser(sub, "up", help="start N node managers",
                   description="start N node managers on loopback, node 0 the DHT bootstrap")
    up.add_argument("--nodes", type=_count, default=5, help="how many node managers (default 5)")
    up.add_argument("--vessels", type=_count, default=2, help="vessels per node (default 2)")
    up.add_argument("--no-sandbox", action="store_true", help="nodes run no programs")
    up.add_argument("--wait", action="store_true", help="wait until all nodes are discoverable")
    demo = subparser(sub, "demo", help="up, run a program on every vessel, print logs, down",
                     description="start a testbed, run a program on every vessel, print the "
                                 "logs, stop the testbed")
    demo.add_argument("--nodes", type=_count, default=5, help="how many node managers (default 5)")
    demo.add_argument("--vessels", type=_count, default=2, help="vessels per node (default 2)")
    demo.add_argument("--program", type=Path, default=None,
                      help="program to run (default examples/hello.py)")
    demo.add_argument("--dir", type=Path, default=None,
                      help="testbed directory (default: a temporary one, removed after)")
    demo.add_argument("args", nargs="*", metavar="ARGS", help="arguments for the program")
    down = subparser(sub, "down", help="stop every node", description="stop every node of the testbed")
    status = subparser(sub, "status", help="table of nodes",
                       description="one line per node: pid, ports, vessels, DHT peers")
    for command in (up, down, status):
        command.add_argument("--dir", type=Path, default=Path("testbed"),
                             help="testbed directory (default ./testbed)")
    add_global_options(parser, sub.choices.values(), [verbose_option()])
    return parser


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_main("seattle-testbed", lambda: COMMANDS[args.command](args), verbose=args.verbose,
                    failures=(InstallError,))


if __name__ == "__main__":
    sys.exit(main())
