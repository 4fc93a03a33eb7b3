"""The experiment API against a real pool: ``acquire`` leases (two vessels of one node at
once), ``KeepRunning`` leases a replacement when a program ends, the quota holds, and
``release`` gives every lease back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from overlay.advert import pool_listing_key
from seash.experiment import Experiment, ExperimentError, KeepRunning
from seash.experiment.model import Event
from seattlecore import KeyPair, PublicKey
from tests.support import poolwire as pw
from tests.support.dht import lookup_until

pytestmark = pytest.mark.slow

NET = 52
LOOP = b"log('up')\nwhile True:\n    sleep(0.1)\n"


async def test_keep_running_leases_from_the_pool_within_the_quota(tmp_path: Path) -> None:
    alice = KeyPair.generate()
    credential = pw.credential(pw.WORLD_PLANNER, alice.public.raw, vessels=3,
                               expires=time.time() + 86400)
    program = tmp_path / "loop.py"
    program.write_bytes(LOOP)
    async with pw.pool_world(tmp_path, 2, 2, net=NET, sandbox=True) as (nodes, _):
        boot = (f"127.{NET}.0.1", nodes[0].dht_port or 0)
        await lookup_until(pool_listing_key(PublicKey(pw.POOL_OF_WORLD)), boot,
                           lambda found: len(found.candidates) == 4, timeout=60,
                           what="the pool's free vessels")

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
        for i, nm in enumerate(nodes):
            status = await pw.send(nm.port, pw.frame(pw.pack(pw.body("GetNodeStatus"))),
                                   host=f"127.{NET}.{i}.1")
            assert status["result"]["pool"]["vessels"] == {"v1": None, "v2": None}


async def test_an_open_pool_credential_is_refused_with_the_way_to_lease() -> None:
    """The API does not compute proof of work yet: it says so before asking any node."""
    credential = pw.credential(pw.WORLD_PLANNER, pw.POOL_OF_WORLD, vessels=1, work=12)
    async with Experiment(KeyPair.generate(), credential=credential) as exp:
        with pytest.raises(ExperimentError, match="seash's 'get'"):
            await exp.acquire(1)
