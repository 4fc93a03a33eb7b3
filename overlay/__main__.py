"""``seattle-dht``: the operators' view of the discovery DHT.

    seattle-dht lookup USERKEY --bootstrap HOST:PORT [--json]
    seattle-dht status --node HOST:PORT | --state DIR [--json]
    seattle-dht peers  --node HOST:PORT | --state DIR | --bootstrap HOST:PORT [--json]
        (a node's routing table; with --bootstrap, the live peers of the network walked from there)
    seattle-dht crawl  --bootstrap HOST:PORT [--max N] [--json]
    seattle-dht serve  [--host H] [--port P] [--bootstrap HOST:PORT] [--state DIR]

USERKEY is 64 hex digits or a path to a ``NAME.publickey`` file. ``--json``, ``--timeout``,
``--bind`` and ``-v`` may come before or after the subcommand. Exit status: 0 success,
1 the DHT could not be reached, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from overlay.advert import describe_tag, pool_listing_key
from overlay.client import lookup_once, open_client, parse_hostport, query_status
from overlay.errors import OverlayError, OverlayUsageError
from overlay.node import DhtConfig, serve_dht
from overlay.results import LookupResult
from overlay.status import read_status_file
from seattlecore import (
    CliParser,
    CoreError,
    GlobalOption,
    PublicKey,
    add_global_options,
    load_public,
    run_main,
    subparser,
    verbose_option,
)

Output = dict[str, Any]


def _user_key(text: str) -> PublicKey:
    path = Path(text)
    if path.suffix == ".publickey" or path.exists():
        return load_public(path)
    return PublicKey.from_text(text)


def _boot(args: argparse.Namespace) -> list[tuple[str, int]]:
    if not args.bootstrap:
        raise OverlayUsageError("--bootstrap HOST:PORT is required")
    return [parse_hostport(b) for b in args.bootstrap]


def lookup_document(result: LookupResult) -> Output:
    return {
        "complete": result.complete,
        "queries": result.queries,
        "elapsed_ms": round(result.elapsed * 1000, 1),
        "candidates": [
            {
                "node_key": a.node_key.to_text(),
                "address": a.address,
                "vessel": a.vessel,
                "seq": a.seq,
                "expires_in": round(a.expires_at - time.time(), 1),
                "relays": list(a.relays),
                "user_key": a.user_key.to_text(),
                "tag": describe_tag(a.tag),
            }
            for a in result.candidates
        ],
        "rejected": [{"reason": r.reason, "detail": r.detail, "source": r.source} for r in result.rejected],
        "withdrawn": result.withdrawn,
        "peers_answered": list(result.peers_answered),
        "holders": list(result.holders),
    }


async def cmd_lookup(args: argparse.Namespace) -> Output:
    user = _user_key(args.userkey)
    if args.pool:  # a community pool's free vessels (docs/pool.md)
        user = pool_listing_key(user)
    result = await lookup_once(user, _boot(args), timeout=args.timeout, host=args.bind)
    return lookup_document(result)


async def _status(args: argparse.Namespace) -> Output:
    if args.state:
        return read_status_file(Path(args.state))
    if args.node:
        return await query_status(parse_hostport(args.node), timeout=args.timeout, host=args.bind)
    raise OverlayUsageError("give --node HOST:PORT or --state DIR")


async def cmd_status(args: argparse.Namespace) -> Output:
    return await _status(args)


async def cmd_peers(args: argparse.Namespace) -> Output:
    """``--node``/``--state``: that node's routing table; ``--bootstrap``: the live peers of
    the network, found by walking it from there (a short-lived client has no table of its
    own worth showing: it holds the bootstrap peer only)."""
    if args.bootstrap and not (args.node or args.state):
        with trio.move_on_after(args.timeout):
            async with open_client(_boot(args), host=args.bind) as node:
                return {"peers": await node.crawl_peers()}
        raise OverlayError(f"walking the network did not finish within {args.timeout} s")
    return {"peers": (await _status(args))["peers"]}


async def cmd_crawl(args: argparse.Namespace) -> Output:
    start = trio.current_time()
    with trio.move_on_after(args.timeout):
        async with open_client(_boot(args), host=args.bind) as node:
            live, dead = await node.crawl(max_nodes=args.max)
            return {
                "live": len(live),
                "unreachable": len(dead),
                "live_nodes": sorted(live),
                "unreachable_nodes": sorted(dead),
                "elapsed_s": round(trio.current_time() - start, 2),
            }
    raise OverlayError(f"crawl did not finish within {args.timeout} s")


async def cmd_serve(args: argparse.Namespace) -> Output:
    boot = [parse_hostport(b) for b in args.bootstrap or []]
    state = Path(args.state) if args.state else None
    config = DhtConfig(host=args.host, port=args.port, bootstrap=tuple(boot), state_dir=state)
    async with trio.open_nursery() as nursery:
        node = await nursery.start(lambda task_status: serve_dht(config=config, task_status=task_status))
        print(serving_text(args.host, node.port), flush=True)
    return {}


def serving_text(host: str, port: int) -> str:
    """What ``serve`` prints once it listens: its address and how others join through it."""
    where = f"{host}:{port}"
    return (f"DHT node listening on {where} (UDP); Ctrl-C stops it\n"
            f"use it as a bootstrap peer:\n"
            f"  seattle-nodemanager --state DIR --bootstrap {where}\n"
            f"  seattle-installer build ... --bootstrap {where}\n"
            f"  seash --bootstrap {where}\n"
            f"  seattle-dht status --node {where}")


# -- rendering ---------------------------------------------------------------------------------
def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    return table


def render_lookup(con: Console, doc: Output) -> None:
    partial = "" if doc["complete"] else ", partial: the lookup hit its deadline"
    con.print(
        _table(
            f"{len(doc['candidates'])} verified adverts ({doc['elapsed_ms']} ms{partial})",
            ["node", "address", "vessel", "seq", "expires in (s)", "tag"],
            [
                (c["node_key"][:16], c["address"], c["vessel"], c["seq"], c["expires_in"],
                 c.get("tag", ""))
                for c in doc["candidates"]
            ],
        )
    )
    if doc["rejected"]:
        con.print(
            _table(
                "rejected",
                ["reason", "detail", "from"],
                [(r["reason"], r["detail"], r["source"]) for r in doc["rejected"]],
            )
        )
    con.print(
        f"withdrawn: {doc['withdrawn']}  peers answered ({len(doc['peers_answered'])}): "
        f"{', '.join(doc['peers_answered'])}"
    )


def render_peers(con: Console, doc: Output) -> None:
    now = time.time()
    con.print(
        _table(
            f"{len(doc['peers'])} peers",
            ["id", "address", "bucket", "last seen (s ago)"],
            [
                (
                    p["id"][:16],
                    p["address"],
                    "-" if p["bucket"] is None else p["bucket"],
                    "-" if p["last_seen"] is None else round(now - p["last_seen"], 1),
                )
                for p in doc["peers"]
            ],
        )
    )


def render_status(con: Console, doc: Output) -> None:
    st = doc["stats"]
    con.print(f"node {st['node_id']} at {doc['address']}  uptime {st['uptime']:.0f} s  peers {st['peers']}"
              f"  mode {doc.get('mode', 'server')}")
    con.print(
        _table(
            "routing table",
            ["bucket", "depth", "peers", "replacements", "idle (s)"],
            [(b["index"], b["depth"], b["peers"], b["replacements"], b["idle"]) for b in doc["buckets"]],
        )
    )
    render_peers(con, doc)
    store = doc["store"]
    con.print(
        _table(
            f"stored: {store['keys']} keys, {store['records']} records, {store['tombstones']} tombstones",
            ["DHT key", "records"],
            store["per_key"],
        )
    )
    counters = {
        **{f"rejected {k}": v for k, v in st["rejected"].items()},
        "accepted": st["accepted"],
        "garbage datagrams": st["garbage_datagrams"],
        "rate limited": st["rate_limited"],
        "rpc timeouts": st["rpc_timeouts"],
        "ignored (client mode)": st.get("client_ignored", 0),
        **{f"rpc {k}": v for k, v in st["requests"].items()},
    }
    con.print(_table("counters", ["counter", "value"], sorted(counters.items())))


def render_crawl(con: Console, doc: Output) -> None:
    con.print(f"live nodes: {doc['live']}  unreachable: {doc['unreachable']}  ({doc['elapsed_s']} s)")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], Any], Callable[[Console, Output], None]]]
COMMANDS = {
    "lookup": (cmd_lookup, render_lookup),
    "status": (cmd_status, render_status),
    "peers": (cmd_peers, render_peers),
    "crawl": (cmd_crawl, render_crawl),
    "serve": (cmd_serve, lambda con, doc: None),
}


GLOBAL_OPTIONS = [
    GlobalOption(("--json",), {"action": "store_true", "default": False,
                               "help": "print JSON instead of tables"}),
    GlobalOption(("--timeout",), {"type": float, "default": 10.0, "metavar": "S",
                                  "help": "seconds to wait for the DHT (default 10)"}),
    GlobalOption(("--bind",), {"default": None, "metavar": "HOST",
                               "help": "local address for client sockets (default 127.0.0.1 "
                                       "when the peers are on loopback, else 0.0.0.0)"}),
    verbose_option(),
]
NODE_HELP = "ask the DHT node at HOST:PORT (its UDP port)"
STATE_HELP = "read a node manager's or DHT node's status file in DIR"
BOOT_HELP = "a DHT peer to start from (repeatable)"


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seattle-dht", description=__doc__.split("\n")[0],
                       epilog="exit status: 0 ok, 1 the DHT could not be reached, 2 bad usage")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lookup = subparser(sub, "lookup", help="find the adverts for a user key",
                       description="find the verified adverts stored under a user key")
    lookup.add_argument("userkey", metavar="USERKEY", help="64 hex digits or NAME.publickey")
    lookup.add_argument("--pool", action="store_true",
                        help="USERKEY is a community pool's (planner's) key: list its free "
                             "vessels (docs/pool.md)")
    for name, text in (("status", "show a DHT node's status"),
                       ("peers", "show a DHT node's peers (its routing table), or with "
                                 "--bootstrap the live peers of the network walked from there")):
        p = subparser(sub, name, help=text, description=text)
        p.add_argument("--node", metavar="HOST:PORT", help=NODE_HELP)
        p.add_argument("--state", metavar="DIR", help=STATE_HELP)
    crawl = subparser(sub, "crawl", help="walk the network and count live nodes",
                      description="walk the DHT from a bootstrap peer and count live nodes")
    crawl.add_argument("--max", type=int, default=10_000, metavar="N",
                       help="stop after N nodes (default 10000)")
    serve = subparser(sub, "serve", help="run a standalone DHT node (bootstrap server)",
                      description="run a DHT node until Ctrl-C; others can bootstrap from it")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="UDP port (default: any free port)")
    serve.add_argument("--state", metavar="DIR", help="keep the node id and a status file in DIR")
    for p in (lookup, crawl, serve, sub.choices["peers"]):
        p.add_argument("--bootstrap", action="append", metavar="HOST:PORT", help=BOOT_HELP)
    add_global_options(parser, sub.choices.values(), GLOBAL_OPTIONS)
    return parser


def check_hosts(args: argparse.Namespace) -> None:
    """Resolve every HOST:PORT given, so a typo is one clear line, not a resolver traceback."""
    given = [*(getattr(args, "bootstrap", None) or []), getattr(args, "node", None)]
    for text in [t for t in given if t]:
        host, port = parse_hostport(text)
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OverlayError(f"cannot resolve {host!r} in {text!r}: {exc.strerror}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    return run_main("seattle-dht", lambda: _run(args), verbose=args.verbose,
                    usage=(OverlayUsageError, CoreError), failures=(OverlayError,))


def _run(args: argparse.Namespace) -> int:
    run, render = COMMANDS[args.command]
    check_hosts(args)
    doc = trio.run(run, args)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        render(Console(), doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
