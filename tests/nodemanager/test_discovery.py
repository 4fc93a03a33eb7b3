"""Node managers announce their vessels into the DHT; lookups find them; changes re-announce."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from nodemanager import open_node_client
from overlay import LookupResult, lookup_once
from seattlecore import KeyPair, PublicKey
from tests.daemons import init_node, node_manager

from .conftest import SMALL

pytestmark = pytest.mark.slow

OWNER = KeyPair.generate()
FRIEND = KeyPair.generate()


def init(state: Path) -> None:
    init_node(state, {"vessels": [{"owner": OWNER.public.to_text(), "resources": SMALL.to_text()}
                                  for _ in range(2)]})


@asynccontextmanager
async def daemon(state: Path, bootstrap: list[str]) -> AsyncIterator[tuple[int, int]]:
    """Start a node manager with DHT; yield (tcp port, dht port)."""
    async with node_manager(state, bootstrap=bootstrap) as nm:
        assert nm.dht_port is not None
        yield nm.port, nm.dht_port


async def find(key: PublicKey, bootstrap: tuple[str, int], want: int) -> LookupResult:
    """Look up until ``want`` candidates appear (announcements are asynchronous)."""
    with trio.fail_after(20):
        while True:
            result = await lookup_once(key, [bootstrap], timeout=5)
            if len(result.candidates) == want:
                return result
            await trio.sleep(0.2)


async def test_vessels_are_found_and_changes_reannounced(tmp_path: Path) -> None:
    states = [tmp_path / f"nm{i}" for i in range(4)]
    for state in states:
        init(state)
    async with AsyncExitStack() as stack:
        first_tcp, first_dht = await stack.enter_async_context(daemon(states[0], []))
        ports = [first_tcp]
        for state in states[1:]:
            tcp, _ = await stack.enter_async_context(daemon(state, [f"127.0.0.1:{first_dht}"]))
            ports.append(tcp)
        boot = ("127.0.0.1", first_dht)
        found = await find(OWNER.public, boot, want=8)
        addresses = {advert.address for advert in found.candidates}
        assert addresses == {f"127.0.0.1:{port}" for port in ports}
        assert not found.rejected

        async with open_node_client("127.0.0.1", ports[1], identity=OWNER) as nm:
            await nm.change_users("v1", [FRIEND.public])
            friend = await find(FRIEND.public, boot, want=1)
            assert friend.candidates[0].address == f"127.0.0.1:{ports[1]}"
            assert friend.candidates[0].vessel == "v1"
            await nm.change_advertise("v2", False)
            await find(OWNER.public, boot, want=7)
