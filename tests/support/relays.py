"""Node managers that reach each other through relays, on per-worker loopback addresses.

A private node advertises an address nothing listens on (``UNREACHABLE``), so whatever
reaches it went through a relay (or a hole punch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodemanager import open_node_client
from nodemanager.proto.messages import GetNodeStatus
from seattlecore import PublicKey, load_public
from tests.support.daemons import Daemon, node_manager
from tests.support.net import ip
from tests.support.polling import eventually
from tests.support.seash import init_node, seash

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASS = {"SEASH_PASSPHRASE": "test passphrase"}
UNREACHABLE = "127.99.0.1"


def private(host: str, *more: str) -> list[str]:
    """Daemon arguments: listen on ``host``, pinned private, advertising ``UNREACHABLE``."""
    return ["--listen", f"{host}:0", "--reachability", "private",
            "--advertise-host", UNREACHABLE, *more]


async def node_status(host: str, port: int) -> dict[str, Any]:
    """An unsigned GetNodeStatus answer."""
    async with open_node_client(host, port) as client:
        return await client.call(GetNodeStatus(), sign=False)


async def wait_relayed(host: str, port: int, want: int = 1) -> dict[str, Any]:
    """The node's status once it holds ``want`` reservations."""
    async def held() -> dict[str, Any] | None:
        raw = await node_status(host, port)
        return raw if len(raw["relayed"]["relays"]) >= want else None

    return await eventually(held, timeout=40, interval=0.2, what=f"{want} relay reservations")


@dataclass(frozen=True)
class RelayedWorld:
    """seash's home and work dirs, alice's key, a public node (the relay) with one vessel
    at ``relay_host``, and a node with two vessels (started with the caller's arguments)."""

    home: Path
    work: Path
    alice: PublicKey
    boot: str
    relay_host: str
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
    relay_host = ip("127.1.0.1")
    async with AsyncExitStack() as stack:
        relay = await stack.enter_async_context(node_manager(
            public, sandbox=True, extra=["--listen", f"{relay_host}:0"]))
        boot = f"{relay_host}:{relay.dht_port}"
        nat = await stack.enter_async_context(node_manager(
            hidden, bootstrap=[boot], sandbox=True, extra=private_extra))
        yield RelayedWorld(home, work, alice, boot, relay_host, relay, nat)
