"""Node managers announce their vessels into the DHT; lookups find them; changes re-announce."""

from __future__ import annotations

import signal
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from nodemanager import open_node_client
from overlay import LookupResult
from seattlecore import PublicKey
from tests.support.dht import lookup_until
from tests.support.worlds import FRIEND, OWNER, daemon, init

pytestmark = pytest.mark.slow

async def find(key: PublicKey, bootstrap: tuple[str, int], want: int) -> LookupResult:
    """Look up until ``want`` candidates appear (announcements are asynchronous)."""
    return await lookup_until(key, bootstrap, lambda found: len(found.candidates) == want, timeout=20)


async def test_vessels_are_found_and_changes_reannounced(tmp_path: Path) -> None:
    states = [tmp_path / f"nm{i}" for i in range(4)]
    for state in states:
        init(state)
    async with AsyncExitStack() as stack:
        first_tcp, first_dht, _ = await stack.enter_async_context(daemon(states[0], []))
        ports = [first_tcp]
        for state in states[1:]:
            tcp, _, _ = await stack.enter_async_context(daemon(state, [f"127.0.0.1:{first_dht}"]))
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


async def test_clean_stop_withdraws_adverts_at_once(tmp_path: Path) -> None:
    """SIGTERM (what uninstall and 'seattle-testbed down' send) publishes tombstones: the
    node's vessels leave lookups at once, not when their records expire (750 s)."""
    hosts = [f"127.1.{i}.1" for i in range(3)]  # own addresses: the per-IP rules apply
    states = [tmp_path / f"nm{i}" for i in range(3)]
    for state in states:
        init(state)
    async with AsyncExitStack() as stack:
        _, first_dht, _ = await stack.enter_async_context(daemon(states[0], [], hosts[0]))
        boot = (hosts[0], first_dht)
        running = [await stack.enter_async_context(daemon(s, [f"{hosts[0]}:{first_dht}"], h))
                   for s, h in zip(states[1:], hosts[1:], strict=True)]
        found = await find(OWNER.public, boot, want=6)
        assert {a.address.rsplit(":", 1)[0] for a in found.candidates} == set(hosts)
        leaving = running[-1][2]
        leaving.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await leaving.wait() == 0
        found = await find(OWNER.public, boot, want=4)
        assert hosts[2] not in {a.address.rsplit(":", 1)[0] for a in found.candidates}
        assert found.withdrawn == 2
        assert "withdrew adverts" in (states[2] / "nodemanager.log").read_text()
