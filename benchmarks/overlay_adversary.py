"""The adversary section of ``benchmarks/overlay.py``: issue 11's attacks against N honest nodes.

Run through ``python benchmarks/overlay.py --adversary`` (or ``--only-adversary``). Each row
builds a fresh network of N honest DHT nodes in this process (own 127.x address each),
starts the attack with ``testbed/attackers/dht.py`` peers (written from the wire docs), then
publishes the honest adverts (after the attackers joined, so they can eat the stores) and
looks users up from random honest nodes, one lookup at a time. Targeted attacks aim at a few
*victim* users; their rows look up only the victims.

Columns: success = lookups that returned every honest advert of the user; complete = lookups
that converged before their deadline; RPCs and KB = requests answered and bytes sent by all
honest nodes per lookup (or per publish).
"""

from __future__ import annotations

import random
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import msgpack
import trio

from overlay import DiversityLimits, dht_keys_for, dht_loop, make_advert
from overlay.dht import pack_records
from seattlecore import KeyPair, PublicKey
from testbed.attackers.dht import (
    HostilePeer,
    Request,
    answering_contacts,
    contact_pool,
    fuzzing,
    make_ident,
    slow_pages,
    store_and_drop,
)

bench: ModuleType
"""``benchmarks/overlay.py`` (build, Publisher, Row, pct, publish_serial); set by run_adversary."""
Attack = Callable[["Arena"], Awaitable[str]]
VICTIMS = 3
NO_DEFENCE: dict[str, Any] = {
    "replica_keys": 1, "paths": 1, "check_stores": False, "quorum": 0, "alpha": 3,
    "diversity": DiversityLimits(per_bucket=20, per_table=10_000, per_path=10_000),
}


@dataclass
class Arena:
    """One row's world: honest members, their publishers, the attackers' nursery."""

    members: list[Any]
    pubs: list[Any]
    nursery: trio.Nursery
    bits: int
    rng: random.Random
    victims: list[PublicKey]

    @property
    def addrs(self) -> list[tuple[str, int]]:
        return [(m.node.config.host, m.port) for m in self.members]

    async def spawn(self, peer: HostilePeer, join: bool = True) -> HostilePeer:
        await self.nursery.start(peer.serve)
        if join:
            for addr in self.addrs:
                await peer.join(addr)
        return peer

    def holders(self, key: bytes, count: int = 12) -> list[tuple[str, int]]:
        goal = int.from_bytes(key, "big")
        ranked = sorted(self.members, key=lambda m: int.from_bytes(m.node.node_id, "big") ^ goal)
        return [(m.node.config.host, m.port) for m in ranked[:count]]


def net_totals(members: list[Any]) -> tuple[int, int]:
    stats = [m.node.statistics() for m in members if m.alive]
    return sum(sum(s.requests.values()) for s in stats), sum(s.sent_bytes for s in stats)


# ---- the attacks -------------------------------------------------------------------------------

async def malformed(arena: Arena) -> str:
    await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), fuzzing(seed=1)))
    return "1 peer answering every query with random/malformed data"


def padded(user: PublicKey, keys: KeyPair, j: int) -> bytes:
    return make_advert(keys, address="f" * 240 + ".example:1", vessel=f"pad{j:02d}" + "x" * 55,
                       user_key=user, seq=1, expires_at=time.time() + 600)


async def paging_flood(arena: Arena) -> str:
    peer = await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), _quiet), join=False)
    for user in arena.victims:
        flood = [padded(user, keys, j) for keys in (KeyPair.generate() for _ in range(16)) for j in range(16)]
        chunks = [pack_records(flood[i:i + 6]) for i in range(0, len(flood), 6)]
        async with trio.open_nursery() as senders:
            for key in dht_keys_for(user):
                for addr in arena.holders(key):
                    senders.start_soon(_store_all, peer, addr, key, chunks)
    return "16 keys x 16 padded records per victim at its 12 closest nodes, every replica key"


async def _store_all(peer: HostilePeer, addr: tuple[str, int], key: bytes, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await peer.request(addr, "store", peer.ident.node_id, key, chunk)


def _quiet(peer: HostilePeer, req: Request) -> object:
    return [peer.contact] if req.name.startswith("find") else peer.ident.node_id


async def unreachable(arena: Arena) -> str:
    within = 2**160 // 8
    pools = {key: contact_pool(arena.bits, lambda i: f"127.201.{i % 250}.{1 + i // 250}", 20,
                               near=key, within=within)
             for user in arena.victims for key in dht_keys_for(user)}
    await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), answering_contacts(pools)))
    return "1 peer answering with 20 unreachable contacts near the key"


async def slow_pager(arena: Arena) -> str:
    keys = KeyPair.generate()
    page = pack_records([padded(arena.victims[0], keys, j) for j in range(6)])
    await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), slow_pages(page)))
    return "1 peer: a full first page, 20 pages announced, each later page 0.9 s late"


async def many_ids(arena: Arena) -> str:
    peer = await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), _quiet), join=False)
    pool = [make_ident(arena.bits).contact(peer.host, peer.port) for _ in range(200)]
    peer.behaviour = answering_contacts({b"": pool})
    for addr in arena.addrs:
        await peer.join(addr)
    return "1 address answering with 20 fresh ids at itself"


async def ping_flood(arena: Arena) -> str:
    targets = arena.members[:3]
    before = [len(m.node.protocol.router) for m in targets]
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(30)]
    for i, sock in enumerate(socks):
        sock.bind((f"127.202.{i}.1", 0))
    for round_ in range(1000):
        for sock in socks:
            ping = msgpack.packb(["ping", [random.randbytes(20)]], use_bin_type=True)
            for m in targets:
                sock.sendto(b"\x00" + random.randbytes(20) + ping, (m.node.config.host, m.port))
        if round_ % 20 == 0:
            await trio.sleep(0.01)
    await trio.sleep(1.5)
    for sock in socks:
        sock.close()
    after = [len(m.node.protocol.router) for m in targets]
    got = sum(m.node.statistics().requests.get("ping", 0) for m in targets)
    return (f"30k pings from new ids to each of 3 nodes ({got} got through the rate limit): "
            f"contacts {before} -> {after}")


async def store_flood(arena: Arena) -> str:
    peer = await arena.spawn(HostilePeer("127.200.0.1", make_ident(arena.bits), _quiet), join=False)
    signers = [KeyPair.generate() for _ in range(50_000 // 16)]  # within every per-key cap
    targets = arena.holders(dht_keys_for(arena.victims[0])[0], 3)
    fakes = [KeyPair.generate().public for _ in range(500)]
    records = [make_advert(signers[i // 16], address="127.200.0.1:1", vessel=f"j{i}",
                           user_key=fakes[(i // 6) % 500], seq=1, expires_at=time.time() + 600)
               for i in range(50_000)]
    async with trio.open_nursery() as senders:
        for addr in targets:
            senders.start_soon(_flood_one, peer, addr, records, fakes)
    held = [m.node.statistics() for m in arena.members if (m.node.config.host, m.port) in targets]
    return (f"50,000 records from one address at 3 nodes: held {[s.records for s in held]} records, "
            f"{[round(s.store_bytes / 1e6, 1) for s in held]} MB of records")


async def _flood_one(peer: HostilePeer, addr: tuple[str, int], records: list[bytes],
                     fakes: list[PublicKey]) -> None:
    for start in range(0, len(records), 6):
        key = dht_keys_for(fakes[(start // 6) % len(fakes)])[0]
        await peer.request(addr, "store", peer.ident.node_id, key, pack_records(records[start:start + 6]))


async def near_key(arena: Arena) -> str:
    within = 2**160 * 4 // len(arena.members)
    for v, user in enumerate(arena.victims):
        swarm: list[HostilePeer] = []
        key0 = dht_keys_for(user)[0]
        for i in range(30):
            swarm.append(HostilePeer(f"127.{210 + v}.{i}.1", make_ident(arena.bits, near=key0, within=within),
                                     store_and_drop(swarm)))
        for sybil in swarm:
            await arena.spawn(sybil)
    return "30 Sybils next to each victim's key: accept STOREs, keep nothing, point at each other"


def sybil_share(share: float) -> Attack:
    async def attack(arena: Arena) -> str:
        count = round(len(arena.members) * share / (1 - share))
        swarm: list[HostilePeer] = []
        for i in range(count):
            swarm.append(HostilePeer(f"127.{220 + i // 250}.{i % 250}.1", make_ident(arena.bits),
                                     store_and_drop(swarm)))
        for sybil in swarm:
            await arena.spawn(sybil)
        return f"{count} Sybils ({share:.0%} of ids), distinct /24s, drop stores, answer with Sybils"
    return attack


async def sybils_four_addresses(arena: Arena) -> str:
    swarm: list[HostilePeer] = []
    for i in range(300):
        swarm.append(HostilePeer(f"127.230.{i % 4}.1", make_ident(arena.bits), store_and_drop(swarm)))
    for sybil in swarm:
        await arena.spawn(sybil)
    return "300 Sybil ids on 4 addresses"


async def nothing(arena: Arena) -> str:
    return "no attack"


ROWS: list[tuple[str, Attack, bool, dict[str, Any]]] = [
    ("none", nothing, False, {}),
    ("none, no defence", nothing, False, NO_DEFENCE),
    ("1 malformed answers", malformed, False, {}),
    ("2 paging flood", paging_flood, True, {}),
    ("3 unreachable contacts", unreachable, True, {}),
    ("3 slow pages", slow_pager, True, {}),
    ("4 one address, many ids", many_ids, False, {}),
    ("5 30k pings", ping_flood, False, {}),
    ("6 store flood", store_flood, True, {}),
    ("7 Sybils near the key", near_key, True, {}),
    ("Sybils 10 %", sybil_share(0.1), False, {}),
    ("Sybils 20 %", sybil_share(0.2), False, {}),
    ("Sybils 30 %", sybil_share(0.3), False, {}),
    ("300 Sybils, 4 addresses", sybils_four_addresses, False, {}),
    ("7 Sybils near the key, no defence", near_key, True, NO_DEFENCE),
    ("Sybils 20 %, no defence", sybil_share(0.2), False, NO_DEFENCE),
]


# ---- running ---------------------------------------------------------------------------------

async def run_row(name: str, attack: Attack, targeted: bool, config: dict[str, Any],
                  args: Any) -> tuple[str, Any, dict[str, float], str]:
    rng = random.Random(args.seed * 7 + len(name))
    async with dht_loop(), trio.open_nursery() as nursery:
        members = await bench.build(nursery, args.adversary_n, rng, args.id_bits, **config)
        users = [KeyPair.generate().public for _ in range(args.adversary_users)]
        arena = Arena(members, [], nursery, args.id_bits, rng, users[:VICTIMS])
        what = await attack(arena)
        for user in users:
            for m in rng.sample(members, args.adversary_publishers):
                arena.pubs.append(bench.Publisher(KeyPair.generate(), user, m))
        cost: dict[str, float] = {}
        rpc0, bytes0 = net_totals(members)
        ms, _ = await bench.publish_serial(members, arena.pubs, seq=1)
        rpc1, bytes1 = net_totals(members)
        cost["pub_rpcs"] = (rpc1 - rpc0) / len(arena.pubs)
        cost["pub_kb"] = (bytes1 - bytes0) / 1e3 / len(arena.pubs)
        cost["pub_ms"] = statistics.median(ms)
        looked = [p for p in arena.pubs if p.user in arena.victims] if targeted else arena.pubs
        row = bench.Row(args.adversary_n, name)
        results: list[Any] = []
        await measure(row, members, looked, args.lookups, rng, results)
        rpc2, bytes2 = net_totals(members)
        cost["rpcs"], cost["kb"] = (rpc2 - rpc1) / len(row.lat), (bytes2 - bytes1) / 1e3 / len(row.lat)
        cost["complete"] = 100 * sum(r.complete for r in results) / len(results)
        nursery.cancel_scope.cancel()
    return name, row, cost, what


async def measure(row: Any, members: list[Any], pubs: list[Any], lookups: int, rng: random.Random,
                  results: list[Any]) -> None:
    expected: dict[PublicKey, set[PublicKey]] = {}
    for pub in pubs:
        expected.setdefault(pub.user, set()).add(pub.keys.public)
    users = sorted(expected, key=lambda u: u.raw)
    for _ in range(lookups):
        user, member = rng.choice(users), rng.choice(members)
        result = await member.node.lookup(user)
        results.append(result)
        got = {a.node_key for a in result.candidates} & expected[user]
        row.lat.append(result.elapsed * 1000)
        row.found += len(got)
        row.expected += len(expected[user])
        row.all_found += len(got) == len(expected[user])


HEADER = ("| attack | p50 ms | p90 ms | success | complete | RPCs/lookup | KB/lookup "
          "| publish ms | RPCs/publish | KB/publish |")


def run_adversary(args: Any, honest_bench: ModuleType) -> None:
    global bench
    bench = honest_bench
    print(f"\n# adversary section: N={args.adversary_n} honest nodes, {args.adversary_users} users x "
          f"{args.adversary_publishers} publishers, {args.lookups} lookups per row (one at a time); "
          f"targeted rows look up the {VICTIMS} victim users only")
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for name, attack, targeted, config in ROWS:
        if args.rows and not any(name.startswith(r) for r in args.rows):
            continue
        start = time.perf_counter()
        name, row, cost, what = trio.run(run_row, name, attack, targeted, config, args)
        lat = row.lat
        print(f"| {name} | {bench.pct(lat, 0.5):.1f} | {bench.pct(lat, 0.9):.1f} | "
              f"{100 * row.all_found / len(lat):.0f} % | {cost['complete']:.0f} % | {cost['rpcs']:.0f} | "
              f"{cost['kb']:.1f} | {cost['pub_ms']:.0f} | {cost['pub_rpcs']:.0f} | {cost['pub_kb']:.1f} |",
              flush=True)
        notes.append(f"{name}: {what} ({time.perf_counter() - start:.0f} s)")
    for note in notes:
        print(f"# {note}")
