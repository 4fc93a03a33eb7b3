"""The community pool (docs/pool.md): ``get 10`` on a 50-node pool, lease expiry, overshoot.

1. ``get``: ``seattle-testbed up --pool --nodes N --vessels 1`` (loopback, ``--no-sandbox``,
   each node on its own 127.x.y.1), then seash's executor in-process runs ``get 10``
   (DHT lookup of the pool's listing + AcquireVessel on as many nodes as needed) and
   ``release get``, ``--rounds`` times: median and worst wall time, vessels leased.
2. ``expiry``: 100 leases of 2 s on the same testbed's nodes; for each, the time from its
   deadline until the node's status shows the vessel free (polled every 0.1 s).
3. ``overshoot``: a member with quota q (1..3) asks for every pool vessel of ``--race-nodes``
   nodes at once (one connection per vessel), ``--races`` times; the largest number granted
   above q, and how long the give-back took when it happened.
4. ``work``: an open pool's proof of work (``solve_work``, one CPU) at 16..24 bits, over
   ``--work-tries`` seeded acquisitions each: median seconds, and acquisitions one CPU
   buys per hour (what a Sybil with CPU gets, docs/pool.md, Open pool).

    SEATTLE_TESTBED_NET=150 .venv/bin/python benchmarks/pool.py [--nodes 50] [--races 200]
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import trio

from nodemanager import open_node_client
from nodemanager.errors import Forbidden, PoolError, QuotaReached
from nodemanager.proto.pool import listing_key, read_credential, solve_work
from overlay import lookup_once
from seash.executor import Executor
from seash.session import Identity, Session
from seash.tree import TREE
from seattlecore import KeyPair, PublicKey, load_private
from testbed.local import start_testbed, stop_all
from testbed.pool import write_grant

sys.path.append(str(Path(__file__).resolve().parent))  # after seash: see _seash.py
from _seash import Quiet


def executor(data: dict[str, Any], directory: Path) -> tuple[Executor, Quiet]:
    session = Session()
    demo = load_private(Path(data["demo"]["privatekey"]))
    session.add_identity(Identity("demo", demo.public, demo))
    session.grants["demo"] = Path(data["pool"]["grant"]).read_bytes()
    host, _, port = data["bootstrap"].rpartition(":")
    session.settings.bootstrap = [(host, int(port))]
    quiet = Quiet()
    return Executor(TREE, session, quiet, home=directory), quiet


async def wait_listed(ex: Executor, want: int) -> None:
    pool = read_credential(ex.session.grants["demo"]).pool
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = await lookup_once(listing_key(pool), ex.session.settings.bootstrap, timeout=10)
        if len(found.candidates) >= want:
            return
        await trio.sleep(1)
    raise SystemExit(f"fewer than {want} free vessels listed after 120 s")


async def bench_get(data: dict[str, Any], directory: Path, count: int,
                    rounds: int) -> list[tuple[float, int]]:
    ex, quiet = executor(data, directory)
    await wait_listed(ex, len(data["nodes"]))
    out = []
    for _ in range(rounds):
        quiet.ok = 0
        start = time.perf_counter()
        await ex.execute(f"get {count}")
        took = time.perf_counter() - start
        got = len(ex.session.groups.get("get", []))
        out.append((took, got))
        await ex.execute("release get")
        await trio.sleep(1.0)  # the listing shows the released vessels again
    await ex.aclose()
    reasons = Counter(text.split(":")[0] for text in quiet.failed)
    if reasons:
        print(f"  refusals during get: {dict(reasons)}")
    return out


def ended_at(state: Path, vessel: str = "v1") -> list[float]:
    """Wall-clock times at which the node's log says a lease of ``vessel`` ended by expiry
    (the line is written right after the commit that frees the vessel)."""
    out = []
    for line in (state / "nodemanager.log").read_text(errors="replace").splitlines():
        if f"lease of {vessel} by " in line and line.endswith("ended: expired"):
            stamp, _, millis = line[:23].partition(",")
            out.append(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))  # local time
                       + int(millis) / 1000)
    return out


async def bench_expiry(data: dict[str, Any], directory: Path, leases: int) -> list[float]:
    """Lease ``leases`` vessels for 2 s (batches over the nodes) by a member whose quota is
    ``leases``; for each, seconds from its deadline to the node's log line saying it ended
    (the node's clock, logged after the commit that frees the vessel)."""
    planner = load_private(directory / "keys" / "planner.privatekey")
    member = KeyPair.generate()
    grant = Path(write_grant(directory, planner, member, leases)).read_bytes()
    nodes = data["nodes"]
    deadlines: dict[str, list[float]] = {}

    async def one(node: dict[str, Any]) -> None:
        async with open_node_client(node["address"], node["port"], identity=member) as client:
            for _ in range(5):  # a refused claim (DHT busy) is retried
                try:
                    answer = await client.acquire_vessel("v1", grant, lease=2.0)
                    break
                except (QuotaReached, PoolError):
                    await trio.sleep(0.5)
            else:
                raise SystemExit(f"could not lease a vessel on {node['address']}")
        deadlines.setdefault(node["state"], []).append(float(answer["deadline"]))
        await trio.sleep(max(0.0, float(answer["deadline"]) - time.time()) + 6.0)

    batch = min(len(nodes), 25)
    done = 0
    while done < leases:
        take = min(batch, leases - done)
        async with trio.open_nursery() as nursery:
            for k in range(take):
                nursery.start_soon(one, nodes[(done + k) % len(nodes)])
        done += take
    lags: list[float] = []
    for state, wanted in deadlines.items():
        ends = ended_at(Path(state))[-len(wanted):]
        lags += [end - deadline for end, deadline in zip(ends, sorted(wanted), strict=False)]
        lags += [float("inf")] * (len(wanted) - len(ends))  # never ended: counts as late
    return lags


async def bench_overshoot(data: dict[str, Any], directory: Path, nodes: int,
                          races: int, seed: int) -> tuple[list[int], list[float]]:
    """``races`` grabs of every vessel of the first ``nodes`` nodes by fresh members."""
    planner = load_private(directory / "keys" / "planner.privatekey")
    members = directory / "members"
    members.mkdir(exist_ok=True)
    rng = random.Random(seed)
    targets = data["nodes"][:nodes]
    over: list[int] = []
    give_back: list[float] = []
    for race in range(races):
        quota = 1 + race % 3
        member = KeyPair.generate()
        grant = Path(write_grant(directory, planner, member, quota)).read_bytes()
        won: list[dict[str, Any]] = []

        async def grab(node: dict[str, Any], key: KeyPair = member, blob: bytes = grant,
                       won: list[dict[str, Any]] = won) -> None:
            try:
                async with open_node_client(node["address"], node["port"], identity=key) as c:
                    await c.acquire_vessel("v1", blob)
                    won.append(node)
            except Exception:
                pass

        order = list(targets)
        rng.shuffle(order)
        async with trio.open_nursery() as nursery:
            for node in order:
                nursery.start_soon(grab, node)
        over.append(len(won) - quota)
        start = time.monotonic()
        held = list(won)
        while len(held) > quota and time.monotonic() - start < 30:
            await trio.sleep(0.2)
            held = [n for n in won if await _leased(n, member.public)]
        if len(won) > quota:
            give_back.append(time.monotonic() - start)
        for node in held:
            async with open_node_client(node["address"], node["port"], identity=member) as c:
                with contextlib.suppress(Forbidden):  # given back (or ended) meanwhile
                    await c.release_vessel("v1")
    return over, give_back


async def _leased(node: dict[str, Any], key: PublicKey) -> bool:
    async with open_node_client(node["address"], node["port"]) as client:
        status = await client.get_node_status()
    lease = (status.pool or {}).get("vessels", {}).get("v1")
    return bool(lease) and lease["researcher"] == key.raw


def bench_work(bits: Sequence[int], tries: int,
               seed: int) -> tuple[float, list[tuple[int, float, float]]]:
    """Hashes per CPU-second of ``solve_work`` (one core), and per difficulty (bits, median
    CPU seconds measured over ``tries`` seeded acquisitions, expected seconds 2**bits/rate)."""
    rng = random.Random(seed)
    pool = KeyPair(rng.randbytes(32)).public
    medians = {}
    hashes = cpu = 0.0
    for width in bits:
        times = []
        for _ in range(tries):
            researcher, node = KeyPair(rng.randbytes(32)).public, KeyPair(rng.randbytes(32)).public
            start = time.process_time()
            work = solve_work(pool, researcher, node, f"v{rng.randrange(10)}",
                              1.8e9 + rng.random() * 1e6, width)
            took = time.process_time() - start
            times.append(took)
            hashes += int.from_bytes(work, "big") + 1  # the counter starts at 0
            cpu += took
        medians[width] = statistics.median(times)
    rate = hashes / cpu
    return rate, [(width, medians[width], 2**width / rate) for width in bits]


def report_work(rate: float, rows: list[tuple[int, float, float]], tries: int) -> None:
    print(f"proof of work: {rate / 1e6:.2f} M hashes per CPU-second (one core; "
          f"{tries} seeded acquisitions per row)")
    print(f"  {'bits':>4}  {'median s':>9}  {'expected s':>10}  {'acquisitions per CPU-hour':>26}")
    for bits, median, expected in rows:
        print(f"  {bits:>4}  {median:>9.2f}  {expected:>10.2f}  {3600 / expected:>26.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--get", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--leases", type=int, default=100)
    parser.add_argument("--race-nodes", type=int, default=8)
    parser.add_argument("--races", type=int, default=200)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--work-bits", type=int, nargs="+", default=[16, 18, 20, 22, 24])
    parser.add_argument("--work-tries", type=int, default=12)
    parser.add_argument("--only", choices=("get", "expiry", "overshoot", "work"),
                        action="append", help="run only these parts (repeatable; default all)")
    args = parser.parse_args()
    parts = set(args.only or ("get", "expiry", "overshoot", "work"))
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if "work" in parts:
        report_work(*bench_work(args.work_bits, args.work_tries, args.seed), args.work_tries)
        parts.discard("work")
        if not parts:
            return
    with tempfile.TemporaryDirectory(prefix="seattle-pool-bench-") as scratch:
        directory = Path(scratch)
        started = time.monotonic()
        data = trio.run(lambda: start_testbed(directory, args.nodes, 1, False, pool=True))
        print(f"pool testbed: {args.nodes} nodes x 1 pool vessel, up in "
              f"{time.monotonic() - started:.1f} s")
        try:
            if "get" in parts:
                report_get(trio.run(bench_get, data, directory, args.get, args.rounds), args)
            if "expiry" in parts:
                report_expiry(trio.run(bench_expiry, data, directory, args.leases))
            if "overshoot" in parts:
                report_overshoot(*trio.run(bench_overshoot, data, directory, args.race_nodes,
                                           args.races, args.seed), args)
        finally:
            stop_all(data["nodes"])
            print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def report_get(gets: list[tuple[float, int]], args: argparse.Namespace) -> None:
    times = [t for t, _ in gets]
    print(f"get {args.get} on {args.nodes} nodes: median {statistics.median(times):.2f} s, "
          f"worst {max(times):.2f} s over {len(gets)} rounds; leased "
          f"{min(g for _, g in gets)}..{max(g for _, g in gets)} of {args.get}")


def report_expiry(lags: list[float]) -> None:
    within = sum(1 for lag in lags if lag <= 5.0)
    print(f"expired leases back in the pool: {within}/{len(lags)} within 5 s of the "
          f"deadline; median {statistics.median(lags):.2f} s, worst {max(lags):.2f} s")


def report_overshoot(over: list[int], back: list[float], args: argparse.Namespace) -> None:
    print(f"overshoot over {len(over)} races on {args.race_nodes} nodes: largest "
          f"{max(over)}, races above quota {sum(1 for o in over if o > 0)}, "
          f"granting the full quota {sum(1 for o in over if o == 0)}; give-back "
          + (f"median {statistics.median(back):.1f} s, worst {max(back):.1f} s"
             if back else "not needed"))


if __name__ == "__main__":
    main()
