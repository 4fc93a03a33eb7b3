"""Discovery benchmark: lookup latency and success vs DHT size, with and without 30 % churn.

Run: ``.venv/bin/python benchmarks/overlay.py [--sizes 50 200 500] [--lookups 40]``

All nodes run in this one process on one trio_asyncio loop, on 127.0.0.1 with ports bound
to 0. For each N: build the network (each node bootstraps from node 0 and a random earlier
node), publish USERS user keys with PUBLISHERS node managers each, look up random users from
random nodes. Then stop 30 % of the nodes without warning (socket closed, no goodbye), let
the surviving publishers republish once, and look up again. A lookup succeeds when every
live publisher of that user is found.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overlay import DhtConfig, DhtNode, dht_loop, make_advert, open_dht_node
from seattlecore import KeyPair, PublicKey

USERS = 20
PUBLISHERS = 5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rpc_total(nodes: list[DhtNode]) -> int:
    return sum(sum(n.statistics().requests.values()) for n in nodes)


async def build(stack: AsyncExitStack, n: int, rng: random.Random) -> list[DhtNode]:
    nodes: list[DhtNode] = []
    for i in range(n):
        boot = ()
        if nodes:
            boot = (("127.0.0.1", nodes[0].port), ("127.0.0.1", rng.choice(nodes).port))
        cfg = DhtConfig(bootstrap=boot, refresh_interval=3600.0, status_interval=3600.0)
        nodes.append(await stack.enter_async_context(open_dht_node(cfg)))
        del i
    return nodes


async def publish_all(plan: dict[PublicKey, list[tuple[KeyPair, DhtNode]]], seq: int) -> list[float]:
    costs = []
    for user, pubs in plan.items():
        for keys, node in pubs:
            blob = make_advert(
                keys,
                address=f"127.0.0.1:{node.port}",
                vessel="v1",
                user_key=user,
                seq=seq,
                expires_at=time.time() + 750,
            )
            start = time.perf_counter()
            await node.publish([blob])
            costs.append(time.perf_counter() - start)
    return costs


async def measure(
    nodes: list[DhtNode],
    plan: dict[PublicKey, list[tuple[KeyPair, DhtNode]]],
    lookups: int,
    rng: random.Random,
    dead: set[int],
) -> tuple[list[float], float]:
    users = list(plan)
    live_nodes = [n for n in nodes if id(n) not in dead]
    lat, ok = [], 0
    for _ in range(lookups):
        user = rng.choice(users)
        expect = {k.public for k, node in plan[user] if id(node) not in dead}
        start = time.perf_counter()
        result = await rng.choice(live_nodes).lookup(user)
        lat.append(time.perf_counter() - start)
        ok += expect <= {a.node_key for a in result.candidates}
    return lat, ok / lookups


async def run_size(n: int, lookups: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    rows = []
    async with dht_loop(), AsyncExitStack() as stack:
        t0 = time.perf_counter()
        nodes = await build(stack, n, rng)
        boot_s = time.perf_counter() - t0
        plan = {
            KeyPair.generate().public: [(KeyPair.generate(), rng.choice(nodes)) for _ in range(PUBLISHERS)]
            for _ in range(USERS)
        }
        rpc0 = rpc_total(nodes)
        costs = await publish_all(plan, seq=1)
        rpcs = (rpc_total(nodes) - rpc0) / len(costs)
        lat, success = await measure(nodes, plan, lookups, rng, set())
        rows.append(fmt(n, "none", lat, success, costs, rpcs, boot_s))
        print(rows[-1], flush=True)
        dead = {id(x) for x in rng.sample(nodes, int(0.3 * n))}
        for node in nodes:
            if id(node) in dead:
                node._server.stop()  # crash: socket closed, peers not told
        survivors = {u: [(k, nd) for k, nd in pubs if id(nd) not in dead] for u, pubs in plan.items()}
        costs = await publish_all(survivors, seq=2)
        lat, success = await measure(nodes, plan, lookups, rng, dead)
        rows.append(fmt(n, "30%", lat, success, costs, float("nan"), boot_s))
        print(rows[-1], flush=True)
        for node in nodes:
            if id(node) in dead:
                node._server.transport = None
    return rows


def fmt(
    n: int, churn: str, lat: list[float], success: float, costs: list[float], rpcs: float, boot_s: float
) -> str:
    ms = [x * 1000 for x in lat]
    pc = [x * 1000 for x in costs]
    rpc_text = "-" if rpcs != rpcs else f"{rpcs:.0f}"
    return (
        f"| {n:>4} | {churn:>5} | {statistics.median(ms):7.1f} | {pct(ms, 0.9):7.1f} | "
        f"{success * 100:6.1f} % | {statistics.median(pc):7.1f} | {rpc_text:>4} | "
        f"{boot_s:6.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--lookups", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    print(
        f"users={USERS} publishers/user={PUBLISHERS} lookups={args.lookups} k=20 alpha=3 "
        "rpc-timeout=1s, one process, loopback"
    )
    print("|    N | churn | p50 ms  | p90 ms  | success  | publish p50 ms | RPCs/publish | build s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        trio.run(run_size, n, args.lookups, args.seed)


if __name__ == "__main__":
    main()
