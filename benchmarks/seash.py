"""seash fan-out: wall time of ``browse`` and ``list`` on 10, 100 and 500 vessels.

Starts N node manager daemons (separate processes, ``--no-sandbox``, 10 vessels each; the
first is the DHT bootstrap), then runs seash's executor in-process against them and compares
with sequential baselines over the same vessels:

* ``seq/vessel``: one fresh connection and one signed GetVessels per vessel, one at a time
  (how a naive loop, or the original seash with one handle per vessel, talks to nodes);
* ``seq/node``: one connection per node, all its vessels' requests, one node at a time.

Without a node's key (as for the vessels ``browse`` could not see: the DHT returns at most
100 adverts per key) a client's first call is the unsigned GetVessels that learns it, which
also answers a GetVessels asked for, so both ``list`` and ``seq`` then cost those nodes one
unsigned call. ``list`` is the fourth of a session, on the connections that ``browse`` and
the first ``list`` opened, in sessions by then (the steady state of an interactive session); ``cold list`` in
a new executor that opens every connection inside the timed region (a fresh ``seash -c
list``). For ``cold list`` the table also gives the CPU time it cost: seash's process and
the daemons together (``/proc/PID/schedstat``; the daemons' own background work, about 0.1
CPU-s a second for 50, included): on two cores its wall time cannot fall below half of that
sum. ``x`` is seq / list, ``x cold`` seq / cold list.

Per-vessel commands (``show files``: ListFilesInVessel on every vessel) reach a node of
protocol revision 7 as one ``Batch`` per node (docs/protocol.md §16), and from revision 10
on a connection that already carried a signed call, in a session (§18: MACs, no
signatures); ``signed files`` is the same command on connections that never open one;
``seq files`` is one fresh connection and one signed ListFilesInVessel per vessel. With ``--rounds N``
each row is measured N times and the table gives medians.

    python benchmarks/seash.py [--nodes 50] [--per-node 10] [--rounds 1]
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

# run as a script, this file's directory would shadow the ``seash`` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time

import trio

from nodemanager import open_node_client
from overlay import lookup_once
from seash.client import NodePool
from seash.executor import Executor
from seash.session import Identity, Session, VesselRef
from seash.tree import TREE
from seattlecore import KeyPair

sys.path.append(str(Path(__file__).resolve().parent))  # after seash: see _seash.py
from _seash import Quiet

RESOURCES = "resource cpu 0.01\nresource memory 10000000\nresource diskused 100000\n"


Proc = tuple[subprocess.Popen[bytes], int, int]


def start_nodes(root: Path, owner: KeyPair, nodes: int, per_node: int) -> list[Proc]:
    spec = root / "spec.json"
    spec.write_text(json.dumps({"vessels": [{"owner": owner.public.to_text(), "resources": RESOURCES}
                                            for _ in range(per_node)]}))
    out: list[Proc] = []
    boot: list[str] = []
    for i in range(nodes):
        state = root / f"nm{i}"
        subprocess.run([sys.executable, "-m", "nodemanager", "init", "--state", str(state), "--spec",
                        str(spec)], check=True, capture_output=True)
        proc = subprocess.Popen([sys.executable, "-m", "nodemanager", "--state", str(state),
                                 "--no-sandbox", *boot], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (state / "dht.port").exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"node {i} did not start")
            time.sleep(0.02)
        port, dht = int((state / "nodemanager.port").read_text()), int((state / "dht.port").read_text())
        out.append((proc, port, dht))
        if not boot:
            boot = ["--bootstrap", f"127.0.0.1:{dht}"]
    return out


def stop_nodes(procs: list[Proc]) -> None:
    """SIGTERM every node manager (a clean stop), then kill what is still up after 10 s."""
    for proc, _, _ in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, _, _ in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_adverts(owner: KeyPair, dht: int, want: int) -> int:
    with trio.move_on_after(120):
        while True:
            found = await lookup_once(owner.public, [("127.0.0.1", dht)], timeout=10)
            nodes = {a.address for a in found.candidates}
            if len(nodes) >= want:
                return len(nodes)
            await trio.sleep(0.5)
    return len(nodes)


def cpu_of(pids: list[int]) -> float:
    """CPU seconds the processes (all their threads) have run, from the scheduler."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


async def measure(owner: KeyPair, dht: int, ports: list[int], per_node: int,
                  pids: list[int]) -> dict[str, float]:
    session = Session()
    session.add_identity(Identity("bench", owner.public, owner))
    session.settings.bootstrap = [("127.0.0.1", dht)]
    session.settings.timeout = 20
    reporter = Quiet(echo=True)
    ex = Executor(TREE, session, reporter, home=Path(tempfile.gettempdir()))
    t0 = time.perf_counter()
    await ex.execute("browse")
    browse = time.perf_counter() - t0
    found = len(session.vessels)
    # the DHT returns at most 100 adverts per key: add the vessels browse could not see
    for port in ports:
        for i in range(1, per_node + 1):
            session.add_vessel(VesselRef("127.0.0.1", port, f"v{i}"))
    wanted = {("127.0.0.1", p) for p in ports}
    session.set_group("bench", [n for n, r in session.vessels.items() if r.node in wanted])
    session.target = "bench"
    await ex.execute("list")                     # connections open, keys known
    await ex.execute("list")                     # signed calls: connections trusted
    await ex.execute("list")                     # sessions open (protocol §18)
    reporter.ok = 0
    t0 = time.perf_counter()
    await ex.execute("list")
    listing = time.perf_counter() - t0
    listed = reporter.ok
    t0 = time.perf_counter()
    await ex.execute("show files")
    files = time.perf_counter() - t0
    await ex.aclose()
    ex3 = Executor(TREE, session, Quiet(), home=Path(tempfile.gettempdir()),
                   pool=NodePool(sessions=False))
    await ex3.execute("list")                    # warm, as above, but never a session
    await ex3.execute("list")
    t0 = time.perf_counter()
    await ex3.execute("show files")
    signed_files = time.perf_counter() - t0
    await ex3.aclose()
    # cold list: new pool, connections opened inside the timed region
    ex2 = Executor(TREE, session, Quiet(echo=True), home=Path(tempfile.gettempdir()))
    daemons, client = cpu_of(pids), time.process_time()
    t0 = time.perf_counter()
    await ex2.execute("list")
    cold = time.perf_counter() - t0
    cold_client, cold_daemons = time.process_time() - client, cpu_of(pids) - daemons
    await ex2.aclose()

    t0 = time.perf_counter()
    for port in ports:
        for _ in range(per_node):
            async with open_node_client("127.0.0.1", port, identity=owner) as nm:
                await nm.get_vessels()
    seq_vessel = time.perf_counter() - t0
    t0 = time.perf_counter()
    for port in ports:
        async with open_node_client("127.0.0.1", port, identity=owner) as nm:
            for _ in range(per_node):
                await nm.get_vessels()
    seq_node = time.perf_counter() - t0
    t0 = time.perf_counter()
    for port in ports:
        for i in range(1, per_node + 1):
            async with open_node_client("127.0.0.1", port, identity=owner) as nm:
                await nm.list_files(f"v{i}")
    seq_files = time.perf_counter() - t0
    return {"files": files, "signed_files": signed_files, "seq_files": seq_files,
            "browse": browse, "found": found,
            "list": listing, "listed": listed, "cold": cold,
            "cold_client": cold_client, "cold_daemons": cold_daemons,
            "seq_vessel": seq_vessel, "seq_node": seq_node}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--per-node", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="runs per row (medians)")
    args = parser.parse_args()
    owner = KeyPair.generate()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        procs = start_nodes(Path(tmp), owner, args.nodes, args.per_node)
        print(f"started {len(procs)} node managers x {args.per_node} vessels in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        try:
            dht = procs[0][2]
            advertised = trio.run(wait_adverts, owner, dht, len(procs))
            print(f"DHT lookup sees {advertised} of {len(procs)} nodes", flush=True)
            header = (f"{'vessels':>7} {'nodes':>5} {'browse s':>9} {'found':>5} {'list s':>7} "
                      f"{'cold list s':>11} {'cold cpu s':>10} {'seq list s':>10} "
                      f"{'seq/node s':>10} {'x':>6} {'x cold':>6} "
                      f"{'files s':>8} {'signed files s':>14} {'seq files s':>11} {'x':>6}")
            print(header)
            for vessels in (10, 100, 500):
                count = max(1, vessels // args.per_node)
                if count > len(procs):
                    break
                ports = [p for _, p, _ in procs[:count]]
                pids = [proc.pid for proc, _, _ in procs]
                runs = [trio.run(measure, owner, dht, ports, args.per_node, pids)
                        for _ in range(args.rounds)]
                r = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                print(f"{vessels:>7} {count:>5} {r['browse']:>9.3f} {int(r['found']):>5} "
                      f"{r['list']:>7.3f} {r['cold']:>11.3f} "
                      f"{r['cold_client']:>4.3f}+{r['cold_daemons']:.3f} {r['seq_vessel']:>10.3f} "
                      f"{r['seq_node']:>10.3f} {r['seq_vessel'] / r['list']:>5.1f}x "
                      f"{r['seq_vessel'] / r['cold']:>5.1f}x "
                      f"{r['files']:>8.3f} {r['signed_files']:>14.3f} {r['seq_files']:>11.3f} "
                      f"{r['seq_files'] / r['files']:>5.1f}x",
                      flush=True)
        finally:
            print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            stop_nodes(procs)


if __name__ == "__main__":
    main()
