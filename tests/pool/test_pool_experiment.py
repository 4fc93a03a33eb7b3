"""The experiment API against a real pool: ``acquire`` leases (two vessels of one node at
once), ``KeepRunning`` leases a replacement when a program ends, the quota holds, and
``release`` gives every lease back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seash.experiment import Experiment, KeepRunning
from seash.experiment.model import Event
from seattlecore import KeyPair
from tests.support import poolwire as pw

pytestmark = pytest.mark.slow

NET = 52
OPEN_NET = 53
LOOP = b"log('up')\nwhile True:\n    sleep(0.1)\n"


async def test_keep_running_leases_from_the_pool_within_the_quota(tmp_path: Path) -> None:
    alice = KeyPair.generate()
    credential = pw.credential(pw.WORLD_PLANNER, alice.public.raw, vessels=3,
                               expires=time.time() + 86400)
    program = tmp_path / "loop.py"
    program.write_bytes(LOOP)
    async with pw.pool_world(tmp_path, 2, 2, net=NET, sandbox=True) as (nodes, _):
        boot = await pw.world_listed(nodes, NET, 4)

        async with Experiment(alice, bootstrap=[boot], credential=credential) as exp:
            keep = KeepRunning(exp, 2, program, interval=0.2)
            ended: list[str] = []

            async def note(event: Event) -> None:
                ended.append(event.kind)
            keep.on("ended", note)
            await keep.run(duration=60, until=lambda roster: len(roster.active) == 2)
            first = list(keep.roster.active)
            assert len(first) == 2 and len(exp.leases) == 2, keep.roster

            # one program ends: the keeper sets its vessel aside and leases a third
            assert [r.ok for r in await exp.stop(first[:1])] == [True]
            await keep.run(duration=60, until=lambda roster: keep.replaced == 1
                           and len(roster.active) == 2)
            assert ended == ["ended"] and len(exp.leases) == 3
            assert first[0].address in keep.roster.retired
            logs = await exp.read_logs(keep.roster.active)
            assert all(r.ok and "up" in str(r.value) for r in logs), logs

            # the credential allows 3 at once: a fourth is refused, as data, not raised
            assert await exp.acquire(1) == []
            released = await exp.release([*keep.roster.active, first[0]])
            assert [r.ok for r in released] == [True, True, True], released
            assert exp.leases == {}

        # the nodes agree: every pool vessel is free again
        assert [p["vessels"] for p in await pw.world_pools(nodes, NET)] == [
            {"v1": None, "v2": None}] * 2


async def test_an_open_pool_is_leased_from_the_api_with_proof_of_work(tmp_path: Path) -> None:
    """``acquire`` with an open pool's credential pays each acquisition's proof of work
    (bound to the researcher, node, vessel and moment: the nodes check it), holds the
    pool's per-key quota, and a second researcher pays for its own."""
    alice, bob = KeyPair.generate(), KeyPair.generate()
    credential = pw.credential(pw.WORLD_PLANNER, pw.POOL_OF_WORLD, vessels=2, work=12)
    async with pw.pool_world(tmp_path, 2, 2, net=OPEN_NET) as (nodes, _):
        boot = await pw.world_listed(nodes, OPEN_NET, 4)
        async with Experiment(alice, bootstrap=[boot], credential=credential) as exp:
            leased = await exp.acquire(2, spread=True)
            assert len(leased) == 2 and set(exp.leases) == {v.address for v in leased}
            assert {v.host for v in leased} == {f"127.{OPEN_NET}.0.1", f"127.{OPEN_NET}.1.1"}
            assert await exp.acquire(1) == []  # the open pool's quota: 2 per key
            files = await exp.do(leased, lambda client, job: client.list_files(job.vessel))
            assert [r.ok for r in files] == [True, True], files
            async with Experiment(bob, bootstrap=[boot], credential=credential) as other:
                theirs = await other.acquire(2)
                assert len(theirs) == 2
                assert not {v.address for v in theirs} & {v.address for v in leased}
                assert [r.ok for r in await other.release(theirs)] == [True, True]
            assert [r.ok for r in await exp.release(leased)] == [True, True]
        assert [p["vessels"] for p in await pw.world_pools(nodes, OPEN_NET)] == [
            {"v1": None, "v2": None}] * 2
