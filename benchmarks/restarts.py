"""Repeated restarts of a loopback testbed: how soon is a restarted node findable again?

For each mode it starts an N-node testbed (``testbed.local.start_testbed``), then every
``--interval`` seconds for ``--duration`` seconds restarts one node chosen at random (seeded;
node 0, the bootstrap peer, first), by SIGKILL or SIGTERM at random, with its state, as
``seattle-testbed restart`` does. After each restart it looks the demo identity up from
another random node every 0.25 s until that node's adverts *from the new process* (``seq``
at or after its start) are found at its current address: that wait, from the moment the new
process was started, is "findable" ("up": until it listened, i.e. Python start-up). At the end
every node looks up every advert; "stale" counts adverts naming an address no node has.

Modes:
- ``remember`` (default): the code as shipped (remembered ports and peers);
- ``forget``: before each start the node's remembered peers and ports are deleted and it
  is started with the original bootstrap address, as every restart was before issue 24.

    .venv/bin/python benchmarks/restarts.py [--nodes 8] [--interval 30] [--duration 600]
                                            [--modes remember forget] [--seed 24] [--no-sandbox]
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds files named like the packages (overlay.py): keep it off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import trio

from overlay import LookupResult, OverlayError, lookup_once
from overlay.routing import PEERS_FILE
from seattlecore import PublicKey, write_atomic
from testbed.local import MANIFEST, load_manifest, restart_node, start_testbed, stop_all

VESSELS = 2
FIND_LIMIT = 25.0
"""Seconds a restarted node may take to be findable before it counts as not found."""


async def lookup(node: dict[str, Any], key: PublicKey) -> LookupResult | None:
    try:
        return await lookup_once(key, [(node["address"], node["dht_port"])], timeout=5)
    except OverlayError:
        return None


async def findable_after(data: dict[str, Any], index: int, key: PublicKey, node_key: PublicKey,
                         since: float, rng: random.Random) -> float | None:
    """Seconds from ``since`` until another node finds ``index``'s new adverts (None: never)."""
    node = data["nodes"][index]
    want = f"{node['address']}:{node['port']}"
    others = [n for i, n in enumerate(data["nodes"]) if i != index]
    with trio.move_on_after(FIND_LIMIT - (time.time() - since)):
        while True:
            result = await lookup(rng.choice(others), key)
            if result is not None:
                fresh = [a for a in result.candidates if a.node_key == node_key
                         and a.address == want and a.seq >= int(since * 1000)]
                if len(fresh) == VESSELS:
                    return time.time() - since
            await trio.sleep(0.25)
    return None


def forget(state: Path) -> None:
    """Delete what a node remembers across restarts (its peers and its ports)."""
    (state / PEERS_FILE).unlink(missing_ok=True)
    with sqlite3.connect(state / "state.sqlite") as db:
        db.execute("DELETE FROM meta WHERE key = 'ports'")


def set_bootstrap(directory: Path, bootstrap: str) -> None:
    data = load_manifest(directory)
    data["bootstrap"] = bootstrap
    write_atomic(directory / MANIFEST, (json.dumps(data, indent=1) + "\n").encode())


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)  # which node, how: the same sequence in every run and mode
    ask = random.Random(args.seed + 1)  # which node looks up (used a timing-dependent number of times)
    with tempfile.TemporaryDirectory(prefix="restarts-bench-") as tmp:
        directory = Path(tmp) / "tb"
        data = await start_testbed(directory, args.nodes, VESSELS, sandbox=not args.no_sandbox)
        original = data["bootstrap"]
        key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
        waits: list[float | None] = []
        ups: list[float] = []
        moved = 0
        try:
            await trio.sleep(args.interval)
            rounds = int(args.duration // args.interval)
            for number in range(rounds):
                start = trio.current_time()
                index = 0 if number == 0 else rng.randrange(args.nodes)
                node = data["nodes"][index]
                crash = rng.random() < 0.5
                done = await restart_node(directory, node["name"], crash=crash,
                                          before_start=forget if mode == "forget" else None)
                ups.append(time.time() - done.started_at)
                if mode == "forget":
                    set_bootstrap(directory, original)  # others keep their original command line
                data = load_manifest(directory)
                moved += done.after["port"] != done.before["port"]
                node_key = PublicKey.from_text((Path(node["state"]) / "node.publickey").read_text())
                wait = await findable_after(data, index, key, node_key, done.started_at, ask)
                waits.append(wait)
                shown = "never" if wait is None else f"{wait:.1f} s"
                print(f"  {mode} {number + 1}/{rounds}: {node['name']} "
                      f"{'SIGKILL' if crash else 'SIGTERM'}, listening after {ups[-1]:.1f} s, "
                      f"findable after {shown}", flush=True)
                await trio.sleep(max(0.0, args.interval - (trio.current_time() - start)))
            data = load_manifest(directory)
            current = {f"{n['address']}:{n['port']}" for n in data["nodes"]}
            finals = [await lookup(n, key) for n in data["nodes"]]
        finally:
            stop_all(load_manifest(directory)["nodes"])
    found = [len({(a.address, a.vessel) for a in r.candidates if a.address in current})
             if r is not None else 0 for r in finals]
    stale = max((sum(1 for a in r.candidates if a.address not in current)
                 for r in finals if r is not None), default=0)
    return {"waits": waits, "ups": ups, "moved": moved, "found": found, "stale": stale,
            "want": len(current) * VESSELS}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--modes", nargs="+", choices=("remember", "forget"), default=["remember"])
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    results = {}
    for mode in args.modes:
        results[mode] = trio.run(run_mode, mode, args)
    print(f"\n{args.nodes} nodes x {VESSELS} vessels, one restart every {args.interval:.0f} s for "
          f"{args.duration:.0f} s (seed {args.seed}), {os.cpu_count()} cores; findable = a lookup "
          f"from another node returns the new process's adverts")
    print("up: until the restarted process listened (Python start-up); findable: from its start "
          "until found; after up: findable minus up (the rejoin and announce)")
    print(f"{'mode':<9} {'restarts':>8} {'port moved':>10} {'up p50/p90 s':>13} "
          f"{'findable p50/p90/max s':>23} {'after up p50/p90 s':>19} {'never':>6} "
          f"{'final found (min..max of nodes)':>32} {'stale':>6}")
    for mode, r in results.items():
        waits = [float("inf") if w is None else w for w in r["waits"]]  # never counts as slowest
        after = [w - up for w, up in zip(waits, r["ups"], strict=True)]
        never = sum(1 for w in r["waits"] if w is None)
        final = f"{min(r['found'])}/{r['want']} .. {max(r['found'])}/{r['want']}"
        ups = f"{statistics.median(r['ups']):.1f}/{quantile(r['ups'], 0.9):.1f}"
        found = f"{statistics.median(waits):.1f}/{quantile(waits, 0.9):.1f}/{max(waits):.1f}"
        rejoin = f"{statistics.median(after):.1f}/{quantile(after, 0.9):.1f}"
        print(f"{mode:<9} {len(waits):>8} {r['moved']:>10} {ups:>13} {found:>23} {rejoin:>19} "
              f"{never:>6} {final:>32} {r['stale']:>6}")
    for mode, r in results.items():
        print(f"final lookup, adverts found through each node ({mode}): "
              + " ".join(f"n{i:03d}={count}" for i, count in enumerate(r["found"])))


if __name__ == "__main__":
    main()
