"""An open pool: any key may lease, a few vessels per key, each acquisition paying a proof of
work bound to the key, node, vessel and moment. The attacker speaks the wire with its own
encoder (tests/support/poolwire.py) against a real node manager without DHT."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import poolwire as pw
from tests.support.daemons import Daemon, node_manager

PLANNER = pw.new_key(61)
POOL = pw.pub(PLANNER)
BITS = 12
OPEN = pw.credential(PLANNER, POOL, vessels=1, work=BITS, serial=61)
SYBILS = [pw.new_key(70 + i) for i in range(3)]


@pytest.fixture
async def pool_node(tmp_path: Path) -> AsyncIterator[tuple[Daemon, bytes]]:
    state = tmp_path / "node"
    key = pw.init_pool_node(state, POOL, 3)
    async with node_manager(state, dht=False) as nm:
        yield nm, key


def elsewhere(pool: bytes, researcher: bytes, node: bytes, vessel: str, at: float,
              mine: tuple[bytes, bytes, str, float]) -> bytes:
    """Work valid for another binding that happens not to be valid for ``mine``."""
    start = 0
    while True:
        work = pw.solve(pool, researcher, node, vessel, at, BITS, start=start)
        if pw.work_bits(POOL, *mine, work) < BITS:
            return work
        start = int.from_bytes(work, "big") + 1


async def acquire(nm: Daemon, node: bytes, member: Any, vessel: str, at: float,
                  work: bytes | None, cred: bytes = OPEN) -> dict[str, Any]:
    return await pw.send(nm.port, pw.acquire_frame(member, cred, POOL, node, vessel, at=at,
                                                   work=work))


async def test_an_open_pool_asks_fresh_sufficient_work_bound_to_the_acquisition(
        pool_node: tuple[Daemon, bytes]) -> None:
    nm, node = pool_node
    eve = SYBILS[0]
    me = pw.pub(eve)
    now = time.time()
    good = pw.solve(POOL, me, node, "v1", now, BITS)
    refusals = {
        "no work": None,
        "too cheap": pw.solve(POOL, me, node, "v1", now, BITS - 6, below=BITS),
        "for another vessel": elsewhere(POOL, me, node, "v2", now, (me, node, "v1", now)),
        "for another key": elsewhere(POOL, pw.pub(SYBILS[1]), node, "v1", now, (me, node, "v1", now)),
        "for another moment": elsewhere(POOL, me, node, "v1", now - 1, (me, node, "v1", now)),
        "oversized": b"\0" * 17,
    }
    for name, work in refusals.items():
        if work is not None and len(work) <= 16:  # the attacker checks its own fakes fail
            assert pw.work_bits(POOL, me, node, "v1", now, work) < BITS, name
        answer = await acquire(nm, node, eve, "v1", now, work)
        assert pw.code(answer) in ("InsufficientWork", "BadArguments"), (name, answer)
    # stale: work done for a moment outside the request window
    old = now - 400
    answer = await acquire(nm, node, eve, "v1", old, pw.solve(POOL, me, node, "v1", old, BITS))
    assert pw.code(answer) == "OutsideTimeWindow", answer
    # the right work leases the vessel
    answer = await acquire(nm, node, eve, "v1", now, good)
    assert answer["ok"], answer
    # a member credential of the same pool needs no work
    alice = pw.new_key(62)
    member = pw.credential(PLANNER, pw.pub(alice), vessels=1, serial=62)
    assert (await acquire(nm, node, alice, "v3", time.time(), None, cred=member))["ok"]
    # reused: released, then the same work (same moment, a new request nonce) again
    done = await pw.send(nm.port, pw.signed("ReleaseVessel", {"vessel": "v1"}, eve, node))
    assert done["ok"], done
    answer = await acquire(nm, node, eve, "v1", now, good)
    assert pw.code(answer) == "InsufficientWork", answer
    assert "used already" in answer["error"]["message"]


async def test_an_open_pool_key_holds_its_small_quota_and_a_new_key_pays_again(
        pool_node: tuple[Daemon, bytes]) -> None:
    nm, node = pool_node
    eve, sybil = SYBILS[1], SYBILS[2]
    now = time.time()
    first = pw.solve(POOL, pw.pub(eve), node, "v1", now, BITS)
    assert (await acquire(nm, node, eve, "v1", now, first))["ok"]
    second = elsewhere(POOL, pw.pub(eve), node, "v2", now, (pw.pub(sybil), node, "v2", now))
    answer = await acquire(nm, node, eve, "v2", now, second)
    assert pw.code(answer) == "QuotaReached", answer
    # a fresh key gets a vessel, but only by paying its own work (eve's does not transfer)
    answer = await acquire(nm, node, sybil, "v2", now, second)
    assert pw.code(answer) == "InsufficientWork", answer
    paid = pw.solve(POOL, pw.pub(sybil), node, "v2", now, BITS)
    assert (await acquire(nm, node, sybil, "v2", now, paid))["ok"]
