"""Experiment API: its fan-out against seash's, and the all-pairs example at scale.

``fanout``: N node managers (separate processes, ``--no-sandbox``, 10 vessels each; the
same set-up as benchmarks/seash.py), then per round, on the same vessels and warm
connections: seash's ``list`` and ``show files`` (Executor, in-process) against the API's
``Experiment.status`` and ``Experiment.do`` (ListFilesInVessel) on the same vessels.
Medians over ``--rounds``; the ratio is API / seash (1.00: as fast).

``allpairs``: a loopback testbed of ``--nodes`` sandboxed node managers x 2 vessels, then
examples/allpairs.py's experiment (find, deploy, probe until every pair answered or
``--seconds``, collect, CSV, PNG), timed from the first lookup to the written heat map.

    python benchmarks/experiment.py fanout [--nodes 50] [--rounds 5]
    python benchmarks/experiment.py allpairs [--nodes 20] [--seconds 60] [--priority idle|normal]
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

# run as a script, this file's directory would shadow the ``seash`` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from types import ModuleType

import trio

from nodemanager import NodeClient
from seash.client import Job
from seash.executor import Executor
from seash.experiment import BlockingExperiment, Experiment, Vessel, load_identity
from seash.parse import parse_hostport
from seash.session import Identity, Session, VesselRef
from seash.tree import TREE
from seattlecore import KeyPair
from testbed.local import load_manifest, start_testbed, stop_all, wait_discoverable

HERE = Path(__file__).resolve().parent


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def list_files(client: NodeClient, job: Job) -> list[str]:
    return await client.list_files(job.vessel)


async def fanout_round(owner: KeyPair, ports: list[int], per_node: int, quiet: type,
                       flip: bool) -> dict[str, float]:
    """One round of the four rows (API first when ``flip``: no side always goes first)."""
    session = Session()
    session.add_identity(Identity("bench", owner.public, owner))
    session.settings.timeout = 20
    vessels = [Vessel("127.0.0.1", port, f"v{i}") for port in ports
               for i in range(1, per_node + 1)]
    for v in vessels:
        session.add_vessel(VesselRef(v.host, v.port, v.name))
    reporter = quiet()
    ex = Executor(TREE, session, reporter, home=Path(tempfile.gettempdir()))
    out: dict[str, float] = {}
    async with Experiment(owner, timeout=20) as exp:
        await ex.execute("list")                   # warm: connections open
        await exp.status(vessels)
        rows = [("seash list", lambda: ex.execute("list")),
                ("api status", lambda: exp.status(vessels)),
                ("seash files", lambda: ex.execute("show files")),
                ("api files", lambda: exp.do(vessels, list_files))]
        if flip:
            rows = [rows[1], rows[0], rows[3], rows[2]]
        for name, run in rows:
            t0 = time.perf_counter()
            result = await run()
            out[name] = time.perf_counter() - t0
            if isinstance(result, list):
                assert all(r.ok for r in result), [r for r in result if not r.ok][:3]
    await ex.aclose()
    assert reporter.ok == 3 * len(vessels), reporter.ok  # warm-up, list, files
    return out


def fanout(args: argparse.Namespace) -> None:
    bench = load(HERE / "seash.py", "seash_benchmark")
    owner = KeyPair.generate()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        procs = bench.start_nodes(Path(tmp), owner, args.nodes, args.per_node)
        print(f"started {len(procs)} node managers x {args.per_node} vessels in "
              f"{time.perf_counter() - t0:.1f} s (load {load_avg()})", flush=True)
        try:
            ports = [p for _, p, _ in procs]
            runs = [trio.run(fanout_round, owner, ports, args.per_node, bench.Quiet, n % 2 == 1)
                    for n in range(args.rounds)]
            med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            vessels = len(ports) * args.per_node
            print(f"{'vessels':>7} {'op':<6} {'seash s':>8} {'api s':>8} {'api/seash':>9}")
            for op in ("list", "files"):
                seash_s, api_s = med[f"seash {op}"], med[f"api {'status' if op == 'list' else op}"]
                print(f"{vessels:>7} {op:<6} {seash_s:>8.3f} {api_s:>8.3f} {api_s / seash_s:>9.2f}")
            print(f"medians of {args.rounds} rounds; load average at the end: {load_avg()}")
        finally:
            bench.stop_nodes(procs)


def allpairs(args: argparse.Namespace) -> None:
    example = load(HERE.parent / "examples" / "allpairs.py", "allpairs")
    os.environ["SEATTLE_VESSEL_PRIORITY"] = args.priority  # the testbed's daemons inherit it
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "tb"
        t0 = time.perf_counter()
        data = trio.run(start_testbed, directory, args.nodes, 2)
        try:
            identity = load_identity(Path(data["demo"]["privatekey"]))
            trio.run(wait_discoverable, data["bootstrap"], identity.public, args.nodes, 120.0)
            print(f"testbed of {args.nodes} nodes x 2 vessels up in {time.perf_counter() - t0:.1f} s"
                  f" (load {load_avg()})", flush=True)
            with BlockingExperiment(identity, bootstrap=[parse_hostport(data["bootstrap"])],
                                    timeout=30) as exp:
                t0 = time.perf_counter()
                pairs = example.experiment(exp, args.out, args.seconds, 2 * args.nodes)
                elapsed = time.perf_counter() - t0
            vessels = len({p.source for p in pairs})
            answered = sum(1 for p in pairs if p.median_ms is not None)
            medians = sorted(p.median_ms for p in pairs if p.median_ms is not None)
            print(f"{'vessels':>7} {'pairs':>6} {'answered':>8} {'priority':>8} {'total s':>7} "
                  f"{'median rtt ms':>13}")
            print(f"{vessels:>7} {len(pairs):>6} {answered:>8} {args.priority:>8} {elapsed:>7.1f} "
                  f"{medians[len(medians) // 2] if medians else float('nan'):>13.1f}")
            print(f"load average at the end: {load_avg()}; CSV and PNG in {args.out}")
        finally:
            stop_all(load_manifest(directory)["nodes"])


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    fan = sub.add_parser("fanout")
    fan.add_argument("--nodes", type=int, default=50)
    fan.add_argument("--per-node", type=int, default=10)
    fan.add_argument("--rounds", type=int, default=5)
    pairs = sub.add_parser("allpairs")
    pairs.add_argument("--nodes", type=int, default=20)
    pairs.add_argument("--seconds", type=float, default=60.0, help="most probing time")
    pairs.add_argument("--priority", choices=("idle", "normal"), default="idle",
                       help="vessel CPU priority (idle: a donor's default; normal: as in the "
                            "test suite, on a machine busy with other work)")
    pairs.add_argument("--out", type=Path, default=Path("allpairs-results"))
    args = parser.parse_args()
    fanout(args) if args.what == "fanout" else allpairs(args)


if __name__ == "__main__":
    main()
