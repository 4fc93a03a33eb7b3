"""Local testbed start-up: ``seattle-testbed up --nodes N --wait`` until the testbed is usable.

For each N it runs the real command line (``python -m testbed.cli up --wait``) in a fresh
directory and reports: the wall time until every node manager is up (initialised, started,
listening, each a DHT node bootstrapped from node 0), the seconds ``--wait`` then took until
the testbed was usable from here (every vessel found in the DHT and answering, every node
reached by a crawl: testbed/ready.py), a crawl and a lookup run at once afterwards (nodes
and adverts they saw), then ``down``. Nodes run with the real sandbox.

    .venv/bin/python benchmarks/testbed.py [--nodes 5 20 50] [--no-sandbox]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the module it measures: keep its directory off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from typing import Any

import trio

from overlay import lookup_once, open_client
from seattlecore import PublicKey
from testbed.local import nodes_rss_mb


def run(*args: str) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "testbed.cli", *args], check=True,
                          capture_output=True, text=True)
    return time.monotonic() - start, done.stdout


def usable_after(out: str) -> float:
    match = re.search(r"usable ([0-9.]+) s after", out)
    return float(match.group(1)) if match else float("nan")


async def seen_now(data: dict[str, Any]) -> tuple[int, int]:
    """(DHT nodes a crawl reaches, nodes whose adverts a lookup finds), right now."""
    host, _, port = data["bootstrap"].rpartition(":")
    key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
    async with open_client([(host, int(port))]) as node:
        live, _ = await node.crawl()
    found = await lookup_once(key, [(host, int(port))], timeout=10)
    return len(live), len({a.node_key for a in found.candidates})


def measure(nodes: int, sandbox: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="testbed-bench-") as tmp:
        directory = Path(tmp) / "tb"
        extra = [] if sandbox else ["--no-sandbox"]
        try:
            wall, out = run("up", "--nodes", str(nodes), "--dir", str(directory), "--wait", *extra)
            data = json.loads((directory / "testbed.json").read_text())
            usable = usable_after(out)
            crawled, found = trio.run(seen_now, data)
            row = {"up": wall - usable, "usable": usable, "crawled": crawled, "found": found,
                   "rss": nodes_rss_mb(data)}
        finally:
            row["down"], _ = run("down", "--dir", str(directory))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    print(f"seattle-testbed up --wait / down on {os.cpu_count()} cores, 2 vessels per node, "
          f"sandbox {'off' if args.no_sandbox else 'on'}, load {os.getloadavg()[0]:.1f}")
    print(f"{'nodes':>6} {'up s':>7} {'+usable s':>10} {'crawl':>6} {'lookup':>7} {'down s':>7} "
          f"{'RSS MB':>8}")
    for nodes in args.nodes:
        row = measure(nodes, not args.no_sandbox)
        print(f"{nodes:>6} {row['up']:>7.1f} {row['usable']:>10.1f} {row['crawled']:>6.0f} "
              f"{row['found']:>7.0f} {row['down']:>7.1f} {row['rss']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
