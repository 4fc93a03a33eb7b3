"""Peer-to-peer update propagation: N managed nodes on version 1, version 2 published at one.

Each node is a real donor install from a self-contained installer (own prefix, private venv,
launcher, updater), joined to one DHT through a one-node ``seattle-testbed`` seed. Version 2
is released (TUF-signed), then handed to node 0 alone (``publish``, its inbox). The script
records when each node runs version 2 with its trial over (verified, staged, restarted,
health check passed), and how many bytes each node's mirror served. No central server: every
node but node 0 can only get the release from peers it finds in the DHT.

    .venv/bin/python benchmarks/update.py [--nodes 20] [--interval 10] [--wheelhouse DIR]

With ``--hostile M`` it measures something else (issue 26): two managed nodes, n00 (the
publisher, an honest holder) and n01, and M hostile holders (``testbed/attackers/mirror.py``:
forged next roots, forged and replayed timestamps, forged metadata and wheels, drips,
stalls, withholding), each on its own /24 and advertised in the DHT under the update channel
as holders of version 2. It records when n01 runs version 2, counted in check intervals
from the moment n00 has verified it, and what n01's status said about the holders.

    .venv/bin/python benchmarks/update.py --hostile 10 --interval 30 [--runs 3]

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
from nodemanager.updates.updatecore import advert_name, channel_key
from overlay import make_advert, open_client, parse_hostport
from seattlecore import KeyPair, save_keypair
from testbed.attackers.mirror import UpdateAttacker, spread_hosts, ten_liars
from testbed.local import loopback_net, start_testbed, stop_all
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


async def advertise(bootstrap: str, anchor: bytes, names: list[str]) -> None:
    """Hostile holders' adverts on the update channel, each signed by its own fresh key."""
    adverts = [make_advert(KeyPair.generate(), address=name, vessel=advert_name(VERSION),
                           user_key=channel_key(anchor), seq=1, expires_at=time.time() + 3600)
               for name in names]
    async with open_client([parse_hostport(bootstrap)]) as node:
        await node.publish(adverts)


async def hostile_run(args: argparse.Namespace, work: Path, house: Wheelhouse,
                      source: Path) -> dict[str, object]:
    """One hostile run in ``work``: returns n01's time to v2 and what its status said."""
    repo = create_repo(work / "release")
    planner = KeyPair.generate()
    save_keypair(work, "planner", planner)
    seed = await start_testbed(work / "seed", 1, vessels=1, sandbox=False)
    prefixes = [work / "n00", work / "n01"]
    try:
        pyz = build_installer(work, house, planner, root=repo.root, bootstrap=[seed["bootstrap"]])
        await install_nodes(pyz, work / "planner.publickey", prefixes, interval=args.interval,
                            sandbox=False)
        old = (repo.repo / "metadata" / "timestamp.json").read_bytes()
        await trio.to_thread.run_sync(lambda: release(repo, VERSION, house, source))
        plans = (ten_liars(old) * (args.hostile // 10 + 1))[:args.hostile]
        async with trio.open_nursery() as nursery:
            hosts = spread_hosts(args.hostile, first=loopback_net() + 1)
            hostile = [await UpdateAttacker(repo.repo, plan, host=host).start(nursery)
                       for plan, host in zip(plans, hosts, strict=True)]
            await advertise(seed["bootstrap"], repo.root.read_bytes(), [a.name for a in hostile])
            publish_repo(repo.repo, prefixes[0])
            with trio.move_on_after(args.timeout):
                while read_node(prefixes[0]).status.get("latest_verified") != VERSION:
                    await trio.sleep(0.2)
            start = time.monotonic()
            done = await wait_updated(prefixes[1:], start, args.timeout)
            nursery.cancel_scope.cancel()
        state = read_node(prefixes[1])
        good = state.status.get("last_good_check") or {}
        last = state.status.get("last_check") or {}
        return {"seconds": done.get(prefixes[1]), "good_elapsed": good.get("elapsed"),
                "good_result": good.get("result"),
                "holders": [(h["holder"], h["state"], h["reason"][:70])
                            for h in last.get("holders", [])],
                "asked": sum(1 for a in hostile if a.requests)}
    finally:
        for prefix in prefixes:
            await trio.to_thread.run_sync(stop_node, prefix)
        stop_all(seed["nodes"])


async def run_hostile(args: argparse.Namespace, work: Path) -> None:
    source = project_source()
    assert source is not None, "run from a checkout"
    house: Wheelhouse = (open_wheelhouse(args.wheelhouse) if args.wheelhouse
                         else build_wheelhouse(source, work / "wheels"))
    runs = []
    for index in range(args.runs):
        runs.append(await hostile_run(args, work / f"run{index}", house, source))
    print(f"\n{args.hostile} hostile holders + 1 honest (n00), check interval {args.interval:.0f} s "
          f"(jittered +-50 %); time from n00 having verified v2 until n01 runs it healthy")
    print("\n| run | n01 on v2 after s | check intervals | verifying check took s | "
          "hostile holders asked |\n|---|---|---|---|---|")
    for index, run in enumerate(runs):
        seconds = run["seconds"]
        shown = f"{seconds:.1f}" if isinstance(seconds, float) else "not reached"
        ratio = f"{seconds / args.interval:.2f}" if isinstance(seconds, float) else "-"
        print(f"| {index} | {shown} | {ratio} | {run['good_elapsed']} | "
              f"{run['asked']}/{args.hostile} |")
    reached = [r["seconds"] for r in runs if isinstance(r["seconds"], float)]
    if reached:
        median = statistics.median(reached)
        print(f"\nmedian {median:.1f} s = {median / args.interval:.2f} intervals; "
              f"{len(reached)}/{len(runs)} runs updated")
    print(f"\nn01's last good check (last run): {runs[-1]['good_result']}; its holders:")
    for holder, state, reason in runs[-1]["holders"]:  # type: ignore[attr-defined]
        print(f"  {holder:24} {state:12} {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--wheelhouse", type=Path, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="keep everything here")
    parser.add_argument("--hostile", type=int, default=0,
                        help="measure one node's update among this many hostile holders")
    parser.add_argument("--runs", type=int, default=3, help="runs of the --hostile measurement")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="update-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        trio.run(run_hostile if args.hostile else run, args, work)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
