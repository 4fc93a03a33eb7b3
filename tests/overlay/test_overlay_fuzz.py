"""A hostile peer answers real node managers with random and malformed data: nothing dies.

Three ``seattle-nodemanager`` processes (own loopback addresses) form a DHT; the hostile peer
(``hostile.py``, written from the wire docs) proves a valid id so every node admits it, then
answers every query with garbage (issue 11, item 1: contacts like ``[1, 2]`` killed every
node manager) while also sending random requests and datagrams. Meanwhile a client looks
the adverts up (bootstrapping from an honest node *and* the hostile one) and the nodes are
made to re-announce (node crawls). Run longer with ``DHT_FUZZ_SECONDS=300``.
"""

from __future__ import annotations

import os
import random
from contextlib import AsyncExitStack
from pathlib import Path

import msgpack
import pytest
import trio

from nodemanager import open_node_client
from overlay import lookup_once
from testbed.attackers.dht import HostilePeer, fuzzing, make_ident, random_value
from tests.support.net import ip
from tests.support.polling import eventually
from tests.support.worlds import FRIEND, OWNER, daemon, init

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("DHT_FUZZ_SECONDS", "12"))
HOSTS = [ip("127.2.0.1"), ip("127.2.1.1"), ip("127.2.2.1")]
REQUESTS = ["ping", "hello", "store", "find_node", "find_value", "find_ads_page", "status", "nope"]


async def attack(peer: HostilePeer, targets: list[tuple[str, int]], seed: int) -> None:
    """Random requests and raw datagrams at every node, forever."""
    rng = random.Random(seed)
    while True:
        target = rng.choice(targets)
        if rng.random() < 0.5:
            args = [random_value(rng) for _ in range(rng.randrange(5))]
            if rng.random() < 0.5:
                args[:1] = [peer.ident.node_id]
            data = msgpack.packb([rng.choice(REQUESTS), args], use_bin_type=True)
            await peer.send_raw(target, b"\x00" + rng.randbytes(20) + data)
        else:
            await peer.send_raw(target, rng.choice([b"\x00", b"\x01"]) + rng.randbytes(rng.randrange(0, 600)))
        await trio.sleep(0.005)


async def test_hostile_peer_never_crashes_node_managers(tmp_path: Path) -> None:
    states = [tmp_path / f"nm{i}" for i in range(3)]
    for state in states:
        init(state)
    peer = HostilePeer(ip("127.6.0.1"), make_ident(16), fuzzing(seed=11))
    async with AsyncExitStack() as stack:
        _, first_dht, first = await stack.enter_async_context(daemon(states[0], [], HOSTS[0]))
        nodes = [await stack.enter_async_context(daemon(s, [f"{HOSTS[0]}:{first_dht}"], h))
                 for s, h in zip(states[1:], HOSTS[1:], strict=True)]
        dht = [(HOSTS[0], first_dht)] + [(h, n[1]) for h, n in zip(HOSTS[1:], nodes, strict=True)]
        tcp = [(h, int((s / "nodemanager.port").read_text())) for h, s in zip(HOSTS, states, strict=True)]
        processes = [first] + [n[2] for n in nodes]
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(peer.serve)
        for target in dht:  # nodes serve the DHT once their probes found them reachable
            await eventually(lambda target=target: peer.join(target), timeout=30, interval=0.2)

        async def all_found() -> bool:  # and every advert is where lookups find it
            return len((await lookup_once(OWNER.public, [dht[0]], timeout=10)).candidates) >= 6

        await eventually(all_found, timeout=30, interval=0.2)
        nursery.start_soon(attack, peer, dht, 5)
        lookups = found_all = 0
        with trio.move_on_after(SECONDS):
            while True:
                result = await lookup_once(OWNER.public, [dht[0], (peer.host, peer.port)], timeout=10)
                lookups += 1
                found_all += len(result.candidates) == 6
                host, port = tcp[lookups % 3]
                async with open_node_client(host, port, identity=OWNER) as nm:
                    await nm.change_users("v1", [FRIEND.public] if lookups % 2 else [])
        nursery.cancel_scope.cancel()
        assert all(p.returncode is None for p in processes), "a node manager died"
        final = await lookup_once(OWNER.public, [dht[1]], timeout=10)
        assert len(final.candidates) == 6
    # Seeded half by the hostile peer, a rare lookup ends partial; a long run (300 s: 4,463
    # lookups) saw 2.4 % so, a 12 s run beside another test worker on 2 loaded cores 5.6 %.
    # No crash and the final lookup are the hard requirements.
    assert lookups >= 3 and found_all >= lookups - max(1, lookups // 10), (found_all, lookups)
    assert peer.received > 20  # the nodes did query the hostile peer
    for state in states:
        log = (state / "nodemanager.log").read_text()
        assert "Traceback" not in log and "asyncio:" not in log, log[-3000:]
