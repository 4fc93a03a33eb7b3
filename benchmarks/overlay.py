"""Discovery benchmark: lookup latency and success vs DHT size, with and without 30 % churn.

Run: ``.venv/bin/python benchmarks/overlay.py [--quick] [--sizes 50 200 500] [--lookups 30]``
(about 4 minutes for the default sizes; ``--quick`` is N=50 with 10 lookups per row).

All nodes of one size run in this one process on one trio_asyncio loop, on 127.0.0.1 with
ports bound to 0, each in its own task (cancelling the task closes its socket). For each N:

1. build: node i joins by bootstrapping from up to 3 random earlier nodes;
2. publish: USERS user keys, PUBLISHERS node managers each (distinct keys on distinct DHT
   nodes, one vessel each); publishes run one at a time so each one's cost is its own;
3. ``none``: LOOKUPS lookups of random users from random nodes, one at a time;
4. stop 30 % of the nodes at random without warning (socket closed, peers not told), then
   ``30% before heal``: lookups from surviving nodes at once;
5. heal as a deployment does within one republish interval: every surviving node runs
   ``refresh()`` once, then every surviving publisher republishes once (both concurrently);
   ``30% after heal``: lookups again.

Churn lookups run several at a time (each mostly waits out 1 s RPC timeouts; running them
one at a time would take minutes). Latency is ``LookupResult.elapsed``; since all nodes share
one CPU-bound process, concurrent lookups add queueing delay to each other (reported as is).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep its directory off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib.util
import logging
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from overlay import DhtConfig, DhtNode, NodeIdentity, dht_loop, make_advert, open_dht_node
from seattlecore import KeyPair, PublicKey

VESSEL = "v1"
TTL = 750.0

SUCCESS_TEXT = (
    "success = share of lookups that returned every expected advert; recall = expected adverts\n"
    "found / expected adverts, over all lookups. Expected = the (node key, vessel) adverts of the\n"
    "looked-up user's publishers that are still running (adverts of stopped publishers may be\n"
    "returned too and are not counted either way). Users whose publishers all stopped are not\n"
    "looked up."
)


@dataclass(slots=True)
class Member:
    """One DHT node and the cancel scope that stops it."""

    node: DhtNode
    scope: trio.CancelScope
    port: int
    alive: bool = True


@dataclass(slots=True)
class Publisher:
    keys: KeyPair
    user: PublicKey
    member: Member


@dataclass(slots=True)
class Row:
    n: int
    churn: str
    lat: list[float] = field(default_factory=list)
    found: int = 0
    expected: int = 0
    all_found: int = 0
    timeouts: int = 0
    pub_ms: float | None = None
    pub_rpcs: float | None = None
    pub_heal: bool = False
    concurrency: int = 1


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def requests_total(members: list[Member]) -> int:
    """RPC requests answered so far by the running nodes."""
    return sum(sum(m.node.statistics().requests.values()) for m in members if m.alive)


def timeouts_total(members: list[Member]) -> int:
    return sum(m.node.statistics().rpc_timeouts for m in members if m.alive)


def dead_contact_share(members: list[Member]) -> float:
    """Share of the routing-table contacts of running nodes that point at stopped nodes."""
    dead = {f"{m.node.config.host}:{m.port}" for m in members if not m.alive}
    listed = [p["address"] for m in members if m.alive for p in m.node.status()["peers"]]
    return sum(a in dead for a in listed) / max(1, len(listed))


async def host_node(config: DhtConfig, *, task_status: trio.TaskStatus[Member]) -> None:
    """Run one node until its scope is cancelled (that closes its socket: a crash)."""
    with trio.CancelScope() as scope:
        async with open_dht_node(config) as node:
            task_status.started(Member(node, scope, node.port))
            await trio.sleep_forever()


def host_of(index: int, net: int = 10) -> str:
    """Node ``index``'s own loopback address (its own /24, as on the internet)."""
    return f"127.{net + index // 250}.{index % 250}.1"


def identities(count: int, bits: int) -> list[NodeIdentity]:
    return [NodeIdentity.generate(bits) for _ in range(count)]


async def build(nursery: trio.Nursery, n: int, rng: random.Random, bits: int,
                **config: Any) -> list[Member]:
    members: list[Member] = []
    for i, ident in enumerate(identities(n, bits)):
        peers = rng.sample(members, min(3, len(members)))
        cfg = DhtConfig(
            host=host_of(i),
            bootstrap=tuple((m.node.config.host, m.port) for m in peers),
            refresh_interval=3600.0,  # no timer-driven refresh during the run: we drive it
            status_interval=3600.0,
            identity=ident,
            id_bits=bits,
            **config,
        )
        members.append(await nursery.start(host_node, cfg))
    return members


def advert_for(pub: Publisher, seq: int) -> bytes:
    return make_advert(
        pub.keys,
        address=f"{pub.member.node.config.host}:{pub.member.port}",
        vessel=VESSEL,
        user_key=pub.user,
        seq=seq,
        expires_at=time.time() + TTL,
    )


async def publish_serial(
    members: list[Member], pubs: list[Publisher], seq: int
) -> tuple[list[float], list[int]]:
    """Publish one at a time; per publish: ms and RPC requests answered network-wide."""
    ms, rpcs = [], []
    for pub in pubs:
        blob = advert_for(pub, seq)
        before = requests_total(members)
        result = await pub.member.node.publish([blob])
        ms.append(result.elapsed * 1000)
        rpcs.append(requests_total(members) - before)
    return ms, rpcs


async def publish_concurrent(pubs: list[Publisher], seq: int, limit: int) -> list[float]:
    ms: list[float] = []
    limiter = trio.CapacityLimiter(limit)

    async def one(pub: Publisher) -> None:
        async with limiter:
            result = await pub.member.node.publish([advert_for(pub, seq)])
            ms.append(result.elapsed * 1000)

    async with trio.open_nursery() as nursery:
        for pub in pubs:
            nursery.start_soon(one, pub)
    return ms


async def measure(
    row: Row, members: list[Member], pubs: list[Publisher], lookups: int, limit: int, rng: random.Random
) -> None:
    row.concurrency = limit
    live = [m for m in members if m.alive]
    expected: dict[PublicKey, set[tuple[PublicKey, str]]] = {}
    for pub in pubs:
        if pub.member.alive:
            expected.setdefault(pub.user, set()).add((pub.keys.public, VESSEL))
    users = sorted(expected, key=lambda u: u.raw)
    plan = [(rng.choice(users), rng.choice(live)) for _ in range(lookups)]
    limiter = trio.CapacityLimiter(limit)
    t0 = timeouts_total(members)

    async def one(user: PublicKey, member: Member) -> None:
        async with limiter:
            result = await member.node.lookup(user)
        got = {(a.node_key, a.vessel) for a in result.candidates} & expected[user]
        row.lat.append(result.elapsed * 1000)
        row.found += len(got)
        row.expected += len(expected[user])
        row.all_found += len(got) == len(expected[user])

    async with trio.open_nursery() as nursery:
        for user, member in plan:
            nursery.start_soon(one, user, member)
    row.timeouts = timeouts_total(members) - t0


async def heal(members: list[Member], pubs: list[Publisher], limit: int) -> tuple[float, list[float]]:
    """Each surviving node refreshes once, then each surviving publisher republishes once."""
    limiter = trio.CapacityLimiter(limit)

    async def refresh(member: Member) -> None:
        async with limiter:
            await member.node.refresh()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for m in members:
            if m.alive:
                nursery.start_soon(refresh, m)
    refresh_s = time.perf_counter() - start
    ms = await publish_concurrent([p for p in pubs if p.member.alive], seq=2, limit=limit)
    return refresh_s, ms


async def run_size(n: int, args: argparse.Namespace, emit: list[Row]) -> None:
    rng = random.Random(args.seed * 1000 + n)
    async with dht_loop(), trio.open_nursery() as nursery:
        t = time.perf_counter()
        members = await build(nursery, n, rng, args.id_bits)
        build_s = time.perf_counter() - t
        pubs = []
        for _ in range(args.users):
            user = KeyPair.generate().public
            for m in rng.sample(members, args.publishers):
                pubs.append(Publisher(KeyPair.generate(), user, m))
        t = time.perf_counter()
        ms, rpcs = await publish_serial(members, pubs, seq=1)
        publish_s = time.perf_counter() - t

        row = Row(n, "none", pub_ms=statistics.median(ms), pub_rpcs=statistics.median(rpcs))
        await measure(row, members, pubs, args.lookups, args.concurrency, rng)
        emit.append(row)
        print_row(row)

        for m in rng.sample(members, round(args.churn * n)):
            m.scope.cancel()
            m.alive = False
        await trio.sleep(0)  # let the cancelled node tasks close their sockets
        label = f"{round(args.churn * 100)}%"
        dead_share = [dead_contact_share(members)]
        row = Row(n, f"{label} before heal")
        await measure(row, members, pubs, args.lookups, args.churn_concurrency, rng)
        emit.append(row)
        print_row(row)

        dead_share.append(dead_contact_share(members))
        t = time.perf_counter()
        rpc0 = requests_total(members)
        refresh_s, ms = await heal(members, pubs, args.heal_concurrency)
        heal_s = time.perf_counter() - t
        heal_rpcs = requests_total(members) - rpc0
        dead_share.append(dead_contact_share(members))
        row = Row(n, f"{label} after heal", pub_ms=statistics.median(ms), pub_heal=True)
        await measure(row, members, pubs, args.lookups, args.churn_concurrency, rng)
        emit.append(row)
        print_row(row)
        dead_share.append(dead_contact_share(members))
        notes.append(
            f"N={n}: build {build_s:.1f} s; {len(pubs)} serial publishes {publish_s:.1f} s; heal "
            f"{heal_s:.1f} s (refresh() on {sum(m.alive for m in members)} nodes {refresh_s:.1f} s, "
            f"then {len(ms)} republishes; {heal_rpcs} RPCs answered); stopped nodes among the "
            "routing-table contacts of live nodes: "
            + " -> ".join(f"{100 * x:.0f} %" for x in dead_share)
            + " (after kill, after before-heal lookups, after heal, after after-heal lookups)"
        )
        nursery.cancel_scope.cancel()


notes: list[str] = []

HEADER = (
    "|    N | churn           | conc | p50 ms | p90 ms | max ms | success | recall  "
    "| timeouts/lookup | publish p50 ms | publish RPCs p50 |"
)


def print_row(row: Row) -> None:
    lat = row.lat
    pub_ms = "-" if row.pub_ms is None else f"{row.pub_ms:.1f}"
    if row.pub_heal:
        pub_ms += " (heal)"
    pub_rpcs = "-" if row.pub_rpcs is None else f"{row.pub_rpcs:.0f}"
    print(
        f"| {row.n:>4} | {row.churn:<15} | {row.concurrency:>4} | {pct(lat, 0.5):6.1f} | "
        f"{pct(lat, 0.9):6.1f} | {max(lat):6.0f} | {100 * row.all_found / len(lat):5.1f} % | "
        f"{100 * row.found / max(1, row.expected):5.1f} % | {row.timeouts / len(lat):15.1f} | "
        f"{pub_ms:>14} | {pub_rpcs:>16} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--quick", action="store_true", help="smoke run: N=50, 10 lookups per row")
    parser.add_argument("--lookups", type=int, default=30, help="lookups per row")
    parser.add_argument("--concurrency", type=int, default=1, help="lookups in flight without churn")
    parser.add_argument("--churn-concurrency", type=int, default=1, help="lookups in flight with churn")
    parser.add_argument("--heal-concurrency", type=int, default=64, help="refreshes/republishes in flight")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=5, help="publishers per user")
    parser.add_argument("--churn", type=float, default=0.3, help="share of nodes stopped")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--id-bits", type=int, default=12,
                        help="id puzzle difficulty (join cost only; the network default is 16)")
    parser.add_argument("--adversary", action="store_true", help="also run the adversary section")
    parser.add_argument("--only-adversary", action="store_true", help="run only the adversary section")
    parser.add_argument("--rows", nargs="*", default=[], help="adversary rows whose name starts so")
    parser.add_argument("--adversary-n", type=int, default=100, help="honest nodes per adversary row")
    parser.add_argument("--adversary-users", type=int, default=10)
    parser.add_argument("--adversary-publishers", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.lookups = [50], 10
    logging.basicConfig(level=logging.CRITICAL)
    print(
        f"# users={args.users} x publishers/user={args.publishers} = "
        f"{args.users * args.publishers} adverts; {args.lookups} lookups/row; k=20, 3 disjoint "
        "paths x 1 query in flight, 3 replica keys, 1 s hard RPC timeout; "
        "all nodes of one N in one process, loopback"
    )
    print("# " + SUCCESS_TEXT.replace("\n", "\n# "))
    print(
        "# conc = lookups in flight (they share one CPU-bound process, so concurrency adds\n"
        "#   queueing delay); timeouts/lookup = RPC timeouts seen by live nodes during the row\n"
        "#   / lookups; publish = one publish alone, no churn: p50 ms and p50 RPC requests\n"
        "#   answered network-wide; '(heal)' = p50 ms of the heal republishes (run concurrently)"
    )
    print(HEADER)
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[Row] = []
    start = time.perf_counter()
    for n in [] if args.only_adversary else args.sizes:
        trio.run(run_size, n, args, rows)
    for note in notes:
        print(f"# {note}")
    if args.adversary or args.only_adversary:
        adversary = _sibling("overlay_adversary")
        adversary.run_adversary(args, sys.modules[__name__])
    print(f"# total {time.perf_counter() - start:.0f} s")


def _sibling(name: str) -> Any:
    """Load ``benchmarks/NAME.py`` (this directory is kept off the import path, see above)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
