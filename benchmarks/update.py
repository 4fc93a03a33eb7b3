"""Peer-to-peer update propagation: N managed nodes on version 1, version 2 published at one.

Each node is a real donor install from a self-contained installer (own prefix, private venv,
launcher, updater), joined to one DHT through a one-node ``seattle-testbed`` seed. Version 2
is released (TUF-signed), then handed to node 0 alone (``publish``, its inbox). The script
records when each node runs version 2 with its trial over (verified, staged, restarted,
health check passed), and how many bytes each node's mirror served. No central server: every
node but node 0 can only get the release from peers it finds in the DHT.

    .venv/bin/python benchmarks/update.py [--nodes 20] [--interval 10] [--wheelhouse DIR]

Nodes run with ``--no-sandbox`` (no vessel programs), so the figures are the updater's.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds files named like the packages (sandbox.py): keep it off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import shutil
import statistics
import tempfile
import time

import trio

from installer.packing.wheels import Wheelhouse, build_wheelhouse, open_wheelhouse, project_source
from installer.release.commands import publish_repo
from seattlecore import KeyPair, save_keypair
from testbed.local import start_testbed, stop_all
from testbed.updates import build_installer, create_repo, install_nodes, read_node, release, stop_node

VERSION = "2"


async def wait_updated(prefixes: list[Path], start: float, timeout: float) -> dict[Path, float]:
    """Seconds from ``start`` until each node runs VERSION healthy (missing: did not)."""
    done: dict[Path, float] = {}
    with trio.move_on_after(timeout):
        while len(done) < len(prefixes):
            for prefix in prefixes:
                if prefix not in done and read_node(prefix).healthy_on == VERSION:
                    done[prefix] = time.monotonic() - start
            await trio.sleep(0.2)
    return done


def report(prefixes: list[Path], done: dict[Path, float], setup: dict[str, float],
           interval: float) -> None:
    times = sorted(done.values())
    print(f"\n{len(prefixes)} nodes, check interval {interval:.0f} s (jittered +-50 %); "
          f"setup: {', '.join(f'{k} {v:.1f} s' for k, v in setup.items())}")
    print("\n| nodes on v2 | seconds after publish |\n|---|---|")
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        if times:
            k = max(1, round(q * len(prefixes)))
            print(f"| {k} ({q:.0%}) | {times[k - 1]:.1f} |" if k <= len(times)
                  else f"| {k} ({q:.0%}) | not reached |")
    served = [int(read_node(p).status.get("served_bytes", 0)) for p in prefixes]
    files = [int(read_node(p).status.get("served_files", 0)) for p in prefixes]
    print("\n| node | on v2 after s | files served | MB served |\n|---|---|---|---|")
    for i, prefix in enumerate(prefixes):
        when = f"{done[prefix]:.1f}" if prefix in done else "-"
        print(f"| n{i:02d}{' (publisher)' if i == 0 else ''} | {when} | {files[i]} | "
              f"{served[i] / 1e6:.2f} |")
    print(f"\nserved: total {sum(served) / 1e6:.1f} MB, median per node "
          f"{statistics.median(served) / 1e6:.2f} MB, max {max(served) / 1e6:.2f} MB; "
          f"{len(done)}/{len(prefixes)} nodes updated and verified")


async def run(args: argparse.Namespace, work: Path) -> None:
    setup: dict[str, float] = {}
    start = time.monotonic()
    source = project_source()
    assert source is not None, "run from a checkout"
    house: Wheelhouse = (open_wheelhouse(args.wheelhouse) if args.wheelhouse
                         else build_wheelhouse(source, work / "wheels"))
    setup["wheels"] = time.monotonic() - start
    repo = create_repo(work / "release")
    planner = KeyPair.generate()
    save_keypair(work, "planner", planner)
    seed = await start_testbed(work / "seed", 1, vessels=1, sandbox=False)
    prefixes = [work / f"n{i:02d}" for i in range(args.nodes)]
    try:
        pyz = build_installer(work, house, planner, root=repo.root, bootstrap=[seed["bootstrap"]])
        start = time.monotonic()
        await install_nodes(pyz, work / "planner.publickey", prefixes, interval=args.interval,
                            sandbox=False)
        setup["install"] = time.monotonic() - start
        start = time.monotonic()
        await trio.to_thread.run_sync(lambda: release(repo, VERSION, house, source))
        setup["release build"] = time.monotonic() - start
        start = time.monotonic()
        publish_repo(repo.repo, prefixes[0])
        done = await wait_updated(prefixes, start, args.timeout)
        report(prefixes, done, setup, args.interval)
    finally:
        for prefix in prefixes:
            await trio.to_thread.run_sync(stop_node, prefix)
        stop_all(seed["nodes"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--wheelhouse", type=Path, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="keep everything here")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="update-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        trio.run(run, args, work)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
