"""End to end through a relay: a node pinned private on loopback, reached by seash via a relay.

The private node advertises an address nothing listens on (127.99.x), so every request
that succeeds went through the relay: the relay's splice, the node's reservation, the
``relays`` field of its signed adverts and seash's dial path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.net import ip
from tests.support.relays import PASS, UNREACHABLE, node_status, private, relayed_world, wait_relayed
from tests.support.seash import seash, wait_advertised

pytestmark = pytest.mark.slow

async def test_seash_session_through_a_relay(tmp_path: Path) -> None:
    nat_host = ip("127.1.1.1")
    async with relayed_world(tmp_path, private(nat_host)) as world:
        home, work, alice, boot = world.home, world.work, world.alice, world.boot
        relay, nat = world.relay, world.nat
        status = await wait_relayed(nat_host, nat.port)
        relay_address = status["relayed"]["relays"][0]["relay"]  # type: ignore[index]
        assert relay_address.startswith(world.relay_host + ":")
        await wait_advertised(alice, (world.relay_host, relay.dht_port), want=3)

        run = await seash(home, """
            loadkeys alice
            browse
            list
            run hello.py world
            show log --for 2.5
            show info
        """, cwd=work, bootstrap=boot, env=PASS)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.doc("browse")["summaries"][0]["ok"] == 2
        listing = run.doc("list")["results"]
        assert len(listing) == 3 and all(r["status"] == "ok" for r in listing)
        relayed = [r for r in listing if r["address"].startswith(UNREACHABLE)]
        assert len(relayed) == 2 and all(r["path"] == f"relay {relay_address}"
                                         for r in relayed), listing
        logs: dict[str, str] = {}
        for result in run.doc("show log --for 2.5")["results"]:
            logs[result["target"]] = logs.get(result["target"], "") + (result["value"] or "")
        assert len(logs) == 3 and all("world" in text for text in logs.values()), logs
        info = run.doc("show info")
        paths = [row["path"] for row in info["tables"][0]["rows"]]
        assert sorted(paths) == sorted(["direct", f"relay {relay_address}",
                                        f"relay {relay_address}"]), info
        raw = await node_status(world.relay_host, relay.port)
        assert raw["relay"]["reservations"] == 1 and raw["relay"]["counters"]["circuits_opened"] >= 1
