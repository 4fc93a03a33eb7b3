"""End to end through a relay: a node pinned private on loopback, reached by seash via a relay.

The private node advertises an address nothing listens on (127.99.x), so every request
that succeeds went through the relay: the relay's splice, the node's reservation, the
``relays`` field of its signed adverts and seash's dial path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from nodemanager import open_node_client
from nodemanager.proto.messages import GetNodeStatus
from seattlecore import PublicKey, load_public
from tests.seash.conftest import init_node, seash, wait_advertised
from tests.support.daemons import Daemon, node_manager

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASS = {"SEASH_PASSPHRASE": "test passphrase"}
UNREACHABLE = "127.99.0.1"


def private(host: str) -> list[str]:
    return ["--listen", f"{host}:0", "--reachability", "private",
            "--advertise-host", UNREACHABLE]


async def node_status(host: str, port: int) -> dict[str, Any]:
    """An unsigned GetNodeStatus answer."""
    async with open_node_client(host, port) as client:
        return await client.call(GetNodeStatus(), sign=False)


async def wait_relayed(host: str, port: int, want: int = 1) -> dict[str, object]:
    """The node's status once it holds ``want`` reservations."""
    with trio.fail_after(40):
        while True:
            raw = await node_status(host, port)
            if len(raw["relayed"]["relays"]) >= want:
                return raw
            await trio.sleep(0.2)


@dataclass(frozen=True)
class RelayedWorld:
    """seash's home and work dirs, alice's key, a public node (the relay) with one vessel
    at 127.1.0.1, and a node pinned private with two vessels at 127.1.1.1."""

    home: Path
    work: Path
    alice: PublicKey
    boot: str
    relay: Daemon
    nat: Daemon


@asynccontextmanager
async def relayed_world(tmp_path: Path, private_extra: Sequence[str]) -> AsyncIterator[RelayedWorld]:
    """Start both node managers (the private one with ``private_extra``); stop them after."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    keys = await seash(home, "genkeys alice", cwd=work, json_output=False)
    assert keys.returncode == 0, keys.stderr
    alice = load_public(home / "alice.publickey")
    (work / "hello.py").write_text((EXAMPLES / "hello.py").read_text())
    public, hidden = tmp_path / "public", tmp_path / "hidden"
    init_node(public, alice.to_text(), vessels=1)
    init_node(hidden, alice.to_text(), vessels=2)
    async with AsyncExitStack() as stack:
        relay = await stack.enter_async_context(node_manager(
            public, sandbox=True, extra=["--listen", "127.1.0.1:0"]))
        boot = f"127.1.0.1:{relay.dht_port}"
        nat = await stack.enter_async_context(node_manager(
            hidden, bootstrap=[boot], sandbox=True, extra=private_extra))
        yield RelayedWorld(home, work, alice, boot, relay, nat)


async def test_seash_session_through_a_relay(tmp_path: Path) -> None:
    async with relayed_world(tmp_path, private("127.1.1.1")) as world:
        home, work, alice, boot = world.home, world.work, world.alice, world.boot
        relay, nat = world.relay, world.nat
        status = await wait_relayed("127.1.1.1", nat.port)
        relay_address = status["relayed"]["relays"][0]["relay"]  # type: ignore[index]
        assert relay_address.startswith("127.1.0.1:")
        await wait_advertised(alice, ("127.1.0.1", relay.dht_port), want=3)

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
        raw = await node_status("127.1.0.1", relay.port)
        assert raw["relay"]["reservations"] == 1 and raw["relay"]["counters"]["circuits_opened"] >= 1
