"""End to end: seash reaches a node pinned private through a relay, then goes direct.

On loopback the private node's observed address is its own (127.1.1.1), so the hole punch
takes the connection-reversal path (the node listens on a fresh port, seash connects to
it); the simultaneous open itself is exercised in the lab (tests/nodemanager/
test_punch_lab.py, tests/installer/test_lab_punch.py). What this proves is the wiring:
the dial hook in seash, the relayed-connection entry of the node manager, the session
moving to the direct stream, the path in ``list``/``show info`` and the node's status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.net import ip
from tests.support.polling import eventually
from tests.support.relays import PASS, node_status, relayed_world, wait_relayed
from tests.support.seash import seash, wait_advertised

pytestmark = pytest.mark.slow


async def test_seash_session_moves_from_the_relay_to_a_direct_connection(tmp_path: Path) -> None:
    nat_host = ip("127.1.1.1")
    private = ["--listen", f"{nat_host}:0", "--reachability", "private"]  # advertises itself
    async with relayed_world(tmp_path, private) as world:
        home, work, alice, boot = world.home, world.work, world.alice, world.boot
        relay, nat = world.relay, world.nat
        await wait_relayed(nat_host, nat.port)
        await wait_advertised(alice, (world.relay_host, relay.dht_port), want=3)

        async def observers() -> list[Any]:  # the node learns its punch observers from the DHT
            return list((await node_status(nat_host, nat.port))["punch"]["observers"])

        await eventually(observers, timeout=20, interval=0.2)

        run = await seash(home, """
            loadkeys alice
            browse
            list
            run hello.py world
            show log --for 2.5
            show info
        """, cwd=work, bootstrap=boot, env=PASS)
        assert run.returncode == 0, run.stdout + run.stderr
        listing = run.doc("list")["results"]
        assert len(listing) == 3 and all(r["status"] == "ok" for r in listing)
        hidden_rows = [r for r in listing if r["address"].startswith(f"{nat_host}:")]
        assert len(hidden_rows) == 2 and all(r["path"] == "punched" for r in hidden_rows), listing
        logs: dict[str, str] = {}
        for result in run.doc("show log --for 2.5")["results"]:
            logs[result["target"]] = logs.get(result["target"], "") + (result["value"] or "")
        assert len(logs) == 3 and all("world" in text for text in logs.values()), logs
        paths = [row["path"] for row in run.doc("show info")["tables"][0]["rows"]]
        assert sorted(paths) == ["direct", "punched", "punched"], paths

        status = await node_status(nat_host, nat.port)
        punch = status["punch"]
        assert punch["punched"] >= 1 and punch["failed"] == 0, punch
        relay_status = await node_status(world.relay_host, relay.port)
        assert relay_status["relay"]["counters"]["circuits_opened"] >= 1
