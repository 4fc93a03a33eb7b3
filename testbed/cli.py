"""``seattle-testbed``: a whole testbed on one machine (N node managers on loopback, or
on N hosts of a network lab with NATs: docs/lab.md).

    seattle-testbed up --nodes 5 [--dir DIR] [--vessels 2] [--no-sandbox] [--wait]
                       [--lab [--nat F] [--nat-kind cone|symmetric|mixed] [--researcher-nat]
                        [--lab-net PUBLIC[,HOME]]]
    seattle-testbed shell [--dir DIR] [HOST] [-- COMMAND ...]
    seattle-testbed status [--dir DIR]
    seattle-testbed restart NODE [--kill] [--dir DIR]
    seattle-testbed down [--dir DIR]
    seattle-testbed demo [--nodes 5] [--dir DIR] [--program examples/hello.py] [ARGS...]

The command line only: the testbed itself is ``testbed/local.py``, the lab
``testbed/lab/nodes.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio

from installer.donor.status import NodeReport, query_nodes, report_json
from installer.errors import InstallError, TestbedError
from seattlecore import (
    CliParser,
    add_global_options,
    json_option,
    run_main,
    subparser,
    verbose_option,
)
from testbed.lab.nodes import (
    LabOptions,
    lab_hints,
    lab_of,
    lab_reports,
    run_on,
    start_lab,
    stop_lab,
)
from testbed.lab.plan import parse_net
from testbed.local import (
    DEMO,
    HOST,
    MANIFEST,
    load_manifest,
    restart_node,
    run_everywhere,
    running_nodes,
    start_testbed,
    stop_all,
)
from testbed.ready import WAIT_TIMEOUT, wait_usable


def lab_usage(args: argparse.Namespace) -> str | None:
    """Why ``up``'s lab options are bad usage (exit status 2), or None."""
    lab_only = [flag for flag, given in (("--nat", args.nat is not None),
                                         ("--nat-kind", args.nat_kind is not None),
                                         ("--researcher-nat", args.researcher_nat),
                                         ("--pin-reachability", args.pin_reachability),
                                         ("--lab-net", args.lab_net is not None)) if given]
    if lab_only and not args.lab:
        return f"{', '.join(lab_only)} need(s) --lab"
    return None


def _lab_options(args: argparse.Namespace) -> LabOptions | None:
    if not args.lab:
        return None
    nets = [parse_net(text) for text in (args.lab_net or "").split(",") if text.strip()]
    if len(nets) > 2:
        raise TestbedError("--lab-net takes PUBLIC[,HOME]")
    return LabOptions(nat=args.nat or 0.0, nat_kind=args.nat_kind or "cone",
                      researcher_nat=args.researcher_nat,
                      pin_reachability=args.pin_reachability,
                      public_net=nets[0] if nets else None,
                      home_net=nets[1] if len(nets) > 1 else None)


def _start(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    lab = _lab_options(args)
    try:
        if lab is not None:
            return start_lab(directory, args.nodes, args.vessels, not args.no_sandbox, lab,
                             pool=getattr(args, "pool", False))
        return trio.run(partial(start_testbed, directory, args.nodes, args.vessels,
                                not args.no_sandbox, pool=getattr(args, "pool", False)))
    except OSError as exc:
        raise TestbedError(f"cannot set up {directory}: {exc}") from exc


def cmd_up(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    started = time.monotonic()
    data = _start(args, directory)
    where = "lab hosts" if lab_of(data) else "node managers"
    print(f"testbed up: {args.nodes} {where} in {time.monotonic() - started:.1f} s, "
          f"{args.vessels} vessels each, "
          + ("in a community pool" if "pool" in data else "owned by the demo identity"))
    if args.wait:
        took = wait_usable(data, args.wait_timeout)
        print(f"all {args.nodes} nodes usable {took:.1f} s after the last node manager started: "
              f"every vessel found and reachable from the researcher's host, every node "
              f"settled (public ones reached by a DHT crawl, NATed ones decided private)")
    print(f"  DHT bootstrap peer: {data['bootstrap']}")
    print(f"  demo identity:      {data['demo']['publickey']} (+ .privatekey)")
    print(f"  details:            {directory / MANIFEST}")
    if lab_of(data):
        print("\n".join(lab_hints(data, directory)))
    else:
        print("point seash at it:")
        print(f"  seash --home {directory / 'keys'} --bootstrap {data['bootstrap']}")
    if "pool" in data:
        print(f"  community pool:     {data['pool']['key'][:16]}... (every vessel); "
              f"credential {data['pool']['grant']}")
        print(f"  then: loadkeys {DEMO}; loadgrant {Path(data['pool']['grant']).name}; "
              "get 3; on get run hello.py; release get")
    else:
        print(f"  then: loadkeys {DEMO}; browse; list")
    print(f"stop it with: seattle-testbed down --dir {directory}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    data = load_manifest(directory)
    stopped, namespaces = stop_lab(data)
    left = running_nodes(data)
    if left:
        raise TestbedError(f"{len(left)} node(s) still running")
    lab = lab_of(data)
    removed = f"; lab {lab['id']}: {namespaces} namespaces removed" if lab else ""
    print(f"testbed down: stopped {stopped} of {len(data['nodes'])} node managers{removed}")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    data = load_manifest(args.dir.absolute())
    return run_on(data, args.host, args.command_words or [os.environ.get("SHELL", "/bin/sh")])


def cmd_status(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    data = load_manifest(directory)
    nodes = data["nodes"]
    alive = {n["name"] for n in running_nodes(data)}
    reports = (lab_reports(data) if lab_of(data) and alive
               else trio.run(partial(query_nodes, [Path(n["state"]) for n in nodes],
                                     hosts=[n.get("address", HOST) for n in nodes])))
    code = 0 if len(alive) == len(nodes) else 1
    if args.json:
        print(json.dumps({
            "directory": str(directory), "bootstrap": data["bootstrap"], "running": len(alive),
            "nodes": [{"name": node["name"], "pid": node["pid"], "running": node["name"] in alive,
                       "address": node.get("address", "127.0.0.1"), "nat": node.get("nat"),
                       "port": node["port"], "dht_port": node["dht_port"],
                       "report": report_json(report) if node["name"] in alive else None}
                      for node, report in zip(nodes, reports, strict=True)],
        }, default=str))
        return code if all(r.node_key is not None for n, r in zip(nodes, reports, strict=True)
                           if n["name"] in alive) else 1
    print(f"testbed in {directory}: {len(alive)}/{len(nodes)} running, bootstrap {data['bootstrap']}")
    print(f"{'node':<6} {'pid':>7} {'state':<8} {'address':<15} {'nat':<9} {'tcp':>6} {'dht':>6} "
          f"{'vessels':>7} {'peers':>5} {'reach tcp/udp':<15} {'dht':<6}  key")
    failed = 0
    for node, report in zip(nodes, reports, strict=True):
        line, ok = status_line(node, report, node["name"] in alive)
        failed += not ok
        print(line)
    return 0 if not failed else 1


def status_line(node: dict[str, Any], report: NodeReport, up: bool) -> tuple[str, bool]:
    """One node's line of ``status``, and whether it is running and answered. A node that
    could not be asked shows the error, never zeros."""
    head = (f"{node['name']:<6} {node['pid']:>7} {'running' if up else 'stopped':<8} "
            f"{node.get('address', HOST):<15} {node.get('nat', '-'):<9} "
            f"{node['port']:>6} {node['dht_port']:>6} ")
    if not up:
        return head + f"{'-':>7} {'-':>5} {'-':<15} {'-':<6}", False
    if report.node_key is None:
        return head + f"error: {report.error or 'no answer'}", False
    peers = "-" if report.dht_peers is None else str(report.dht_peers)
    line = (head + f"{len(report.vessels):>7} {peers:>5} {_reach(report):<15} "
            f"{report.dht_mode or '-':<6}  {report.node_key[:16]}")
    if report.error and not report.error.endswith("(remote status is off)"):
        line += f"  ({report.error})"  # (the DHT answers status queries from loopback only)
    return line, True


def cmd_restart(args: argparse.Namespace) -> int:
    directory: Path = args.dir.absolute()
    done = trio.run(partial(restart_node, directory, args.node, crash=args.kill))
    before, after = done.before, done.after
    how = "killed (SIGKILL)" if args.kill else "stopped"

    def port(name: str) -> str:
        same = before.get(name) == after[name]
        return f"{after[name]}" + (" (same)" if same else f" (was {before.get(name)})")

    print(f"{after['name']} {how} and restarted: pid {after['pid']}, tcp {port('port')}, "
          f"dht {port('dht_port')}")
    return 0


def _reach(report: NodeReport) -> str:
    reach = report.reachability or {}
    return f"{reach.get('tcp', '?')}/{reach.get('udp', '?')}"


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


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds (more than 0), got {text!r}")
    return value


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
    up.add_argument("--wait", action="store_true",
                    help="return once every vessel is usable from the researcher's host and "
                         "every node has settled its reachability (fails naming the nodes "
                         "that did not)")
    up.add_argument("--wait-timeout", type=_seconds, default=WAIT_TIMEOUT, metavar="S",
                    help=f"seconds --wait waits (default {WAIT_TIMEOUT:.0f})")
    up.add_argument("--pool", action="store_true",
                    help="put every vessel in a community pool and write a credential for "
                         "the demo identity (docs/pool.md)")
    up.add_argument("--lab", action="store_true",
                    help="each node on a host of its own in a network lab (root; docs/lab.md)")
    up.add_argument("--nat", type=_fraction, default=None, metavar="F",
                    help="share of lab hosts behind a NAT router, 0 to 1 (default 0)")
    up.add_argument("--nat-kind", choices=("cone", "symmetric", "mixed"), default=None,
                    help="cone (keeps ports), symmetric (random port per destination) or mixed "
                         "(default cone)")
    up.add_argument("--researcher-nat", action="store_true",
                    help="put the researcher's host behind a cone NAT too")
    up.add_argument("--pin-reachability", action="store_true",
                    help="tell each lab node whether it is behind NAT (--reachability "
                         "public|private) instead of letting it probe")
    up.add_argument("--lab-net", default=None, metavar="PUBLIC[,HOME]",
                    help="lab ranges (default: the first free of 198.18.0.0/16, "
                         "198.51.100.0/24, 203.0.113.0/24; homes 198.19.N.0/24)")
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
                       description="one line per node: pid, address, ports, vessels, DHT peers")
    restart = subparser(sub, "restart", help="stop one node and start it again",
                        description="stop NODE (SIGTERM: a clean stop that withdraws its "
                                    "adverts; --kill: SIGKILL, as a crash) and start it again "
                                    "with its state: it keeps its ports and rejoins through the "
                                    "peers it remembers; testbed.json gets its new pid")
    restart.add_argument("node", metavar="NODE", help="node name (n000, n001, ...) or index")
    restart.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    shell = subparser(sub, "shell", help="run a command on a lab host",
                      description="run COMMAND (default: $SHELL) on HOST of the testbed: "
                                  "the researcher's host unless named (n000, n001, ...); "
                                  "in a lab, inside that host's network namespace",
                      usage="seattle-testbed shell [--dir DIR] [HOST] [-- COMMAND ...]")
    shell.add_argument("host", nargs="?", default=None, metavar="HOST",
                       help="researcher (default) or a node name")
    for command in (up, down, status, shell, restart):
        command.add_argument("--dir", type=Path, default=Path("testbed"),
                             help="testbed directory (default ./testbed)")
    add_global_options(parser, sub.choices.values(), [verbose_option()])
    add_global_options(parser, [status], [json_option()])
    return parser


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "demo": cmd_demo,
            "shell": cmd_shell, "restart": cmd_restart}


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``shell ... -- CMD ...``: the words before ``--`` and the command after it."""
    if "shell" in argv and "--" in argv[argv.index("shell"):]:
        cut = argv.index("--", argv.index("shell"))
        return argv[:cut], argv[cut + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    own, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(own)
    if args.json and args.command != "status":
        parser.error(f"--json is for 'status', not '{args.command}'")
    if args.command == "up" and (problem := lab_usage(args)):
        parser.error(problem)
    args.command_words = command
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_main("seattle-testbed", lambda: COMMANDS[args.command](args), verbose=args.verbose,
                    failures=(InstallError,))


if __name__ == "__main__":
    sys.exit(main())
