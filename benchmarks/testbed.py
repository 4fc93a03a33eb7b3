"""Local testbed start-up: ``seattle-testbed up --nodes N`` until every node is discoverable.

For each N it runs the real command line (``python -m testbed.cli up``) in a fresh
directory, measures the wall time until it returns (all N node managers initialised, started
and listening, each a DHT node bootstrapped from node 0), then the time until a lookup of the
demo identity returns adverts from all N nodes, then ``down``. Nodes run with the real sandbox.

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
import subprocess
import tempfile
import time

import trio

from seattlecore import PublicKey
from testbed.local import nodes_rss_mb, wait_discoverable


def run(*args: str) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "testbed.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def measure(nodes: int, sandbox: bool) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory(prefix="testbed-bench-") as tmp:
        directory = Path(tmp) / "tb"
        extra = [] if sandbox else ["--no-sandbox"]
        try:
            up = run("up", "--nodes", str(nodes), "--dir", str(directory), *extra)
            data = json.loads((directory / "testbed.json").read_text())
            key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
            found = trio.run(wait_discoverable, data["bootstrap"], key, nodes, 60.0)
            memory = nodes_rss_mb(data)
        finally:
            down = run("down", "--dir", str(directory))
    return up, found, down, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    print(f"seattle-testbed up/down on {os.cpu_count()} cores, 2 vessels per node, "
          f"sandbox {'off' if args.no_sandbox else 'on'}")
    print(f"{'nodes':>6} {'up s':>7} {'+discoverable s':>16} {'total s':>8} {'down s':>7} {'RSS MB':>8}")
    for nodes in args.nodes:
        up, found, down, memory = measure(nodes, not args.no_sandbox)
        print(f"{nodes:>6} {up:>7.1f} {found:>16.1f} {up + found:>8.1f} {down:>7.1f} {memory:>8.0f}",
              flush=True)


if __name__ == "__main__":
    main()
