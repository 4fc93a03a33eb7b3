"""Reachability with real node managers on loopback: probes decide public; a node pinned
private runs its DHT node in client mode (in no table, still publishing and looking up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nodemanager import open_node_client
from overlay import query_status
from seattlecore import KeyPair
from tests.support.daemons import Daemon, init_node, node_manager
from tests.support.dht import lookup_until
from tests.support.net import ip
from tests.support.polling import eventually
from tests.support.worlds import SMALL

pytestmark = pytest.mark.slow

OWNER = KeyPair.generate()


def init(state: Path) -> None:
    init_node(state, {"vessels": [{"owner": OWNER.public.to_text(), "resources": SMALL.to_text()}]})


@asynccontextmanager
async def daemon(state: Path, host: str, bootstrap: list[str], *extra: str) -> AsyncIterator[Daemon]:
    init(state)
    async with node_manager(state, bootstrap=bootstrap,
                            extra=["--listen", f"{host}:0", "--reachability-interval", "2", *extra]) as nm:
        yield nm


async def wait_reach(host: str, port: int, tcp: str, udp: str, timeout: float = 30) -> dict[str, Any]:
    async def decided() -> dict[str, Any] | None:
        reach = await reach_of(host, port)
        return reach if (reach["tcp"], reach["udp"]) == (tcp, udp) else None

    return await eventually(decided, timeout=timeout, interval=0.2, what=f"{host} {tcp}/{udp}")


async def reach_of(host: str, port: int) -> dict[str, Any]:
    async with open_node_client(host, port) as client:
        status = await client.get_node_status()
    assert status.reachability is not None
    return dict(status.reachability)


async def dht_status(host: str, port: int) -> dict[str, Any]:
    return await query_status((host, port), host=host)


async def test_probes_decide_public_and_pinned_private_is_a_dht_client(tmp_path: Path) -> None:
    hosts = [ip(f"127.3.{i}.1") for i in range(4)]
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(daemon(tmp_path / "nm0", hosts[0], []))
        boot = f"{hosts[0]}:{first.dht_port}"
        public = [await stack.enter_async_context(daemon(tmp_path / f"nm{i}", hosts[i], [boot]))
                  for i in (1, 2)]
        private = await stack.enter_async_context(
            daemon(tmp_path / "nm3", hosts[3], [boot], "--reachability", "private"))
        # the first node has nobody to ask: unknown, but it serves the DHT
        for host, nm in zip(hosts[1:3], public, strict=True):
            reach = await wait_reach(host, nm.port, "public", "public")
            assert "dial-backs reached us" in reach["reason"]
            assert not reach["pinned"]
        reach = await reach_of(hosts[3], private.port)
        assert (reach["tcp"], reach["udp"], reach["pinned"]) == ("private", "private", True)
        assert "--reachability private" in reach["reason"]
        assert (await dht_status(hosts[3], private.dht_port or 0))["mode"] == "client"

        # public nodes become DHT servers and enter each other's tables; the private one never
        servers = [(hosts[0], first.dht_port or 0),
                   *((h, nm.dht_port or 0) for h, nm in zip(hosts[1:3], public, strict=True))]
        client_id = (await dht_status(hosts[3], private.dht_port or 0))["stats"]["node_id"]
        async def servers_meet() -> bool:
            docs = [await dht_status(h, p) for h, p in servers]
            return all(d["mode"] == "server" and d["stats"]["peers"] >= 2 for d in docs)

        await eventually(servers_meet, timeout=30, interval=0.2)
        # the private node publishes and looks up through the others
        found = await lookup_until(OWNER.public, (hosts[0], first.dht_port or 0),
                                   lambda result: len(result.candidates) == 4)
        assert f"{hosts[3]}:{private.port}" in {ad.address for ad in found.candidates}
        for doc in [await dht_status(h, p) for h, p in servers]:
            assert client_id not in {peer["id"] for peer in doc["peers"]}
