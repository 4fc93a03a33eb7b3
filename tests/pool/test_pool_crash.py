"""Leases survive ``kill -9`` at every stage: granted, expiring while down, half-ended, in
flight; and the renewal cap holds over the wire. Real daemons without DHT."""

from __future__ import annotations

import random
import signal
import sqlite3
from pathlib import Path
from typing import Any

import trio

from tests.support import poolwire as pw
from tests.support.daemons import Daemon, node_manager
from tests.support.polling import eventually

PLANNER = pw.new_key(31)
POOL = pw.pub(PLANNER)
MEMBERS = [pw.new_key(40 + i) for i in range(6)]


async def acquire(nm: Daemon, node: bytes, member: Any, vessel: str, **kw: Any) -> dict[str, Any]:
    cred = pw.credential(PLANNER, pw.pub(member), vessels=2)
    return await pw.send(nm.port, pw.acquire_frame(member, cred, POOL, node, vessel, **kw))


async def op(nm: Daemon, node: bytes, name: str, args: dict[str, Any], member: Any) -> Any:
    return await pw.send(nm.port, pw.signed(name, args, member, node))


async def status(nm: Daemon) -> dict[str, Any]:
    answer = await pw.send(nm.port, pw.frame(pw.pack(pw.body("GetNodeStatus"))))
    return dict(answer["result"]["pool"]["vessels"])


def kill(nm: Daemon) -> None:
    nm.process.send_signal(signal.SIGKILL)


async def test_kill_9_with_leases_at_every_stage(tmp_path: Path) -> None:
    state = tmp_path / "node"
    node = pw.init_pool_node(state, POOL, 3, lease=3600.0)
    alice, bob = MEMBERS[0], MEMBERS[1]
    async with node_manager(state, dht=False) as nm:
        assert (await acquire(nm, node, alice, "v1"))["ok"]
        assert (await op(nm, node, "AddFileToVessel", {"vessel": "v1", "filename": "a.txt",
                                                      "data": b"kept"}, alice))["ok"]
        short = await acquire(nm, node, bob, "v2", lease=2.0)
        assert short["ok"]
        assert (await op(nm, node, "AddFileToVessel", {"vessel": "v2", "filename": "b.txt",
                                                      "data": b"gone"}, bob))["ok"]
        assert (await acquire(nm, node, bob, "v3"))["ok"]
        assert (await op(nm, node, "AddFileToVessel", {"vessel": "v3", "filename": "c.txt",
                                                      "data": b"half"}, bob))["ok"]
        before = await status(nm)
        kill(nm)
    # stage "half-ended": the ending flag was committed, the wipe had not happened yet
    with sqlite3.connect(state / "state.sqlite") as db:
        db.execute("UPDATE pool_leases SET ending = 1 WHERE vessel = 'v3'")
    await pw.sleep_until(short["result"]["deadline"] + 0.5)  # v2 expires while the node is down
    async with node_manager(state, dht=False) as nm:
        after = await eventually(lambda: status(nm), timeout=10)
        assert after["v1"] == before["v1"]  # the granted lease, unchanged
        listed = await op(nm, node, "RetrieveFileFromVessel",
                          {"vessel": "v1", "filename": "a.txt"}, alice)
        assert listed["ok"] and listed["result"]["data"] == b"kept"

        async def ended() -> bool:
            now = await status(nm)
            return now["v2"] is None and now["v3"] is None
        await eventually(ended, timeout=5)
        for vessel in ("v2", "v3"):
            assert pw.code(await op(nm, node, "ListFilesInVessel", {"vessel": vessel}, bob)) \
                == "Forbidden"
        carol = MEMBERS[2]
        for vessel in ("v2", "v3"):
            assert (await acquire(nm, node, carol, vessel))["ok"]
            files = await op(nm, node, "ListFilesInVessel", {"vessel": vessel}, carol)
            assert files["result"]["files"] == [], vessel


async def churn(nm: Daemon, node: bytes, rng: random.Random) -> None:
    """Members acquire, write, release at random until cancelled (errors are expected)."""
    while True:
        member = rng.choice(MEMBERS)
        vessel = rng.choice(["v1", "v2", "v3"])
        try:
            await acquire(nm, node, member, vessel)
            await op(nm, node, "AddFileToVessel", {"vessel": vessel, "filename": "x.txt",
                                                  "data": b"x" * 1000}, member)
            await op(nm, node, "ReleaseVessel", {"vessel": vessel}, member)
        except Exception:  # the node was killed mid-request
            return


async def test_kill_9_in_flight_leaves_every_vessel_consistent(tmp_path: Path) -> None:
    state = tmp_path / "node"
    node = pw.init_pool_node(state, POOL, 3, lease=3600.0)
    rng = random.Random(9)
    for _ in range(4):
        async with node_manager(state, dht=False) as nm, trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(churn, nm, node, rng)
            await trio.sleep(rng.uniform(0.2, 1.0))
            kill(nm)
        async with node_manager(state, dht=False) as nm:
            async def settled() -> tuple[dict[str, Any], dict[str, Any]]:
                """Leases and users read between two equal lease reads (a lease that was
                ending at the kill is finished right after the restart)."""
                first = await status(nm)
                vessels = await pw.send(nm.port, pw.frame(pw.pack(pw.body("GetVessels"))))
                assert await status(nm) == first
                return first, {v["name"]: v["users"] for v in vessels["result"]["vessels"]}
            leases, users = await eventually(settled, timeout=10)
            for name, lease in leases.items():
                # the user list and the lease row changed in one transaction
                assert users[name] == ([lease["researcher"]] if lease else []), name
                if lease is None:  # free: nothing of a former lessee is left
                    member = MEMBERS[0]
                    got = await acquire(nm, node, member, name)
                    assert got["ok"], got
                    files = await op(nm, node, "ListFilesInVessel", {"vessel": name}, member)
                    assert files["result"]["files"] == []
                    assert (await op(nm, node, "ReleaseVessel", {"vessel": name}, member))["ok"]
            for name, lease in leases.items():
                if lease:
                    holder = next(m for m in MEMBERS if pw.pub(m) == lease["researcher"])
                    assert (await op(nm, node, "ReleaseVessel", {"vessel": name}, holder))["ok"]


async def test_renewal_stops_at_the_longest_lease_over_the_wire(tmp_path: Path) -> None:
    state = tmp_path / "node"
    node = pw.init_pool_node(state, POOL, 1, lease=2.0, max_lease=3.0)
    alice = MEMBERS[0]
    async with node_manager(state, dht=False) as nm:
        granted = await acquire(nm, node, alice, "v1")
        start = granted["result"]["granted"]
        await trio.sleep(1.2)
        renewed = await op(nm, node, "RenewLease", {"vessel": "v1", "lease": 7 * 86400.0}, alice)
        assert renewed["ok"] and abs(renewed["result"]["deadline"] - (start + 3.0)) < 0.01
        again = await op(nm, node, "RenewLease", {"vessel": "v1"}, alice)
        assert pw.code(again) == "LeaseLimit"
        await pw.sleep_until(start + 3.5)
        # past the cap the lease ended: the old lessee can no longer renew it
        assert pw.code(await op(nm, node, "RenewLease", {"vessel": "v1"}, alice)) == "Forbidden"
