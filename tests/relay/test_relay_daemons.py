"""Relays between real node manager processes on loopback: a byte-flipping relay, a kill -9.

Private nodes advertise an address nothing listens on (127.99.x), so whatever works went
through a relay.
"""

from __future__ import annotations

import signal
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import pytest
import trio

from nodemanager.errors import BadResponse, BadSignature
from nodemanager.nat.dial import Route, dial
from nodemanager.nat.relaycore import prefix_of
from nodemanager.proto.client import NodeClient
from overlay import lookup_once
from seattlecore import PublicKey, load_private, load_public
from tests.support.daemons import Daemon, node_manager
from tests.support.flipper import FlippingRelay
from tests.support.net import ip
from tests.support.polling import eventually
from tests.support.relays import PASS, UNREACHABLE, private
from tests.support.seash import init_node, seash

pytestmark = pytest.mark.slow

async def relays_in_adverts(key: PublicKey, boot: tuple[str, int], want: int,
                            avoid: str = "-") -> set[str]:
    """Wait until every advert for ``key`` names ``want`` relays, none of them ``avoid``."""
    async def settled() -> set[str] | None:
        found = await lookup_once(key, [boot], timeout=5)
        sets = {a.relays for a in found.candidates}
        if len(sets) == 1 and len(next(iter(sets))) == want and avoid not in next(iter(sets)):
            return set(next(iter(sets)))
        return None

    return await eventually(settled, timeout=60, interval=0.2, what=f"{want} relays in every advert")


async def seash_home(tmp_path: Path) -> tuple[Path, Path, PublicKey]:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    keys = await seash(home, "genkeys alice; genkeys mallory", cwd=work, json_output=False)
    assert keys.returncode == 0, keys.stderr
    return home, work, load_public(home / "alice.publickey")


async def test_a_byte_flipping_relay_changes_nothing(tmp_path: Path) -> None:
    home, work, alice = await seash_home(tmp_path)
    mallory = load_public(home / "mallory.publickey")
    init_node(tmp_path / "boot", mallory.to_text(), vessels=1)
    init_node(tmp_path / "nat", alice.to_text(), vessels=1)
    flipper = FlippingRelay()
    boot_host, nat_host = ip("127.1.0.1"), ip("127.1.1.1")
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        listeners = await nursery.start(partial(trio.serve_tcp, flipper.handle, 0, host="127.0.0.1"))
        relay = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        boot = await stack.enter_async_context(node_manager(
            tmp_path / "boot", extra=["--listen", f"{boot_host}:0", "--no-relay"]))
        nat = await stack.enter_async_context(node_manager(
            tmp_path / "nat", bootstrap=[f"{boot_host}:{boot.dht_port}"],
            extra=private(nat_host, "--relay", relay)))
        assert await relays_in_adverts(alice, (boot_host, boot.dht_port), 1) == {relay}

        run = await seash(home, "loadkeys alice; browse", cwd=work,
                          bootstrap=f"{boot_host}:{boot.dht_port}", env=PASS)
        assert run.returncode == 1
        failure = run.doc("browse")["results"][0]
        assert failure["status"] == "failed" and "BadSignature" in failure["error"], failure

        direct = NodeClient(await trio.open_tcp_stream(nat_host, nat.port))
        before = await direct.get_vessels()
        identity = load_private(home / "alice.privatekey")
        dialed = await dial(Route(UNREACHABLE, 9, before.node, (relay,)), timeout=5)
        client = NodeClient(dialed.stream, identity=identity, node_key=before.node)
        with pytest.raises(BadSignature):
            await client.change_owner_info("v1", "changed by a relay")
        await client.aclose()
        after = await direct.get_vessels()
        assert after == before and after.vessels[0].owner_info == ""
        flipper.flip = "response"
        dialed = await dial(Route(UNREACHABLE, 9, before.node, (relay,)), timeout=5)
        client = NodeClient(dialed.stream, identity=identity, node_key=before.node)
        with pytest.raises(BadResponse, match="signature"):
            await client.get_vessels()
        await client.aclose()
        await direct.aclose()
        assert flipper.flipped >= 3
        nursery.cancel_scope.cancel()


async def test_a_killed_relay_is_replaced_and_the_node_stays_usable(tmp_path: Path) -> None:
    home, work, alice = await seash_home(tmp_path)
    mallory = load_public(home / "mallory.publickey")
    for name in ("r0", "r1", "r2"):
        init_node(tmp_path / name, mallory.to_text(), vessels=1)
    init_node(tmp_path / "nat", alice.to_text(), vessels=2)
    async with AsyncExitStack() as stack:
        hosts = [ip(f"127.1.{i}.1") for i in range(3)]
        relays: dict[str, Daemon] = {}
        relays[hosts[0]] = await stack.enter_async_context(node_manager(
            tmp_path / "r0", extra=["--listen", f"{hosts[0]}:0"]))
        first = (hosts[0], relays[hosts[0]].dht_port or 0)
        boot = f"{hosts[0]}:{first[1]}"
        for i, name in ((1, "r1"), (2, "r2")):
            relays[hosts[i]] = await stack.enter_async_context(node_manager(
                tmp_path / name, bootstrap=[boot], extra=["--listen", f"{hosts[i]}:0"]))
        await stack.enter_async_context(node_manager(
            tmp_path / "nat", bootstrap=[boot], extra=private(ip("127.1.9.1"))))
        held = await relays_in_adverts(alice, first, 2)
        assert len({prefix_of(address.rsplit(":", 1)[0]) for address in held}) == 2
        victim = sorted(held)[-1]  # never r0 if another is held: r0 is the DHT bootstrap
        relays[victim.rsplit(":", 1)[0]].process.send_signal(signal.SIGKILL)
        moved = await relays_in_adverts(alice, first, 2,
                                        avoid=victim)
        assert victim not in moved and len(moved) == 2
        run = await seash(home, "loadkeys alice; browse; list", cwd=work, bootstrap=boot, env=PASS)
        assert run.returncode == 0, run.stdout + run.stderr
        listing = run.doc("list")["results"]
        assert len(listing) == 2 and all(r["path"].startswith("relay ") and
                                         r["path"][6:] in moved for r in listing), listing
