"""In-process DHT tests: several real nodes on loopback UDP inside one trio run."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgpack
import pytest
import trio

from overlay import (
    REPLICA_KEYS,
    DhtConfig,
    DhtNode,
    DhtUnavailable,
    StoreLimits,
    dht_loop,
    lookup_once,
    make_advert,
    open_client,
    open_dht_node,
    query_status,
    read_status_file,
)
from overlay.dht import pack_records
from seattlecore import KeyPair, PublicKey
from tests.support.dht import forged_blob, key_of
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@asynccontextmanager
async def network(n: int, **kw: object) -> AsyncIterator[list[DhtNode]]:
    async with dht_loop(), AsyncExitStack() as stack:
        nodes: list[DhtNode] = []
        for _ in range(n):
            boot = (("127.0.0.1", nodes[0].port),) if nodes else ()
            config = DhtConfig(bootstrap=boot, **kw)  # type: ignore[arg-type]
            nodes.append(await stack.enter_async_context(open_dht_node(config)))
        yield nodes


def blob_for(node: KeyPair, user: PublicKey, **kw: object) -> bytes:
    fields: dict[str, object] = {
        "address": "127.0.0.1:1224",
        "vessel": "v1",
        "seq": 1,
        "expires_at": time.time() + 600,
    }
    fields.update(kw)
    return make_advert(node, user_key=user, **fields)  # type: ignore[arg-type]


def raw_store(port: int, key: bytes, value: bytes) -> None:
    """Send an unsolicited STORE from a raw socket (what an attacker can do)."""
    msg = msgpack.packb(["store", [bytes(20), key, value]], use_bin_type=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00" + bytes(range(20)) + msg, ("127.0.0.1", port))


def total_rejected(nodes: list[DhtNode], reason: str) -> int:
    return sum(n.statistics().rejected.get(reason, 0) for n in nodes)


async def test_publish_lookup_and_rejections() -> None:
    user = KeyPair.generate().public
    async with network(8) as nodes:
        honest = [KeyPair.generate() for _ in range(5)]
        for i, keys in enumerate(honest):
            await nodes[i].publish([blob_for(keys, user, address=f"127.0.0.1:{2000 + i}")])
        victim = honest[0]
        port = nodes[3].port
        key = key_of(user)
        raw_store(port, key, pack_records([forged_blob(victim, user, signer=KeyPair.generate())]))
        raw_store(port, key, pack_records([blob_for(victim, user, expires_at=time.time() - 1)]))
        raw_store(port, key, pack_records([blob_for(victim, user, seq=0, address="127.0.0.1:9")]))
        raw_store(port, key, pack_records([b"\x93\x01" + b"x" * 1200]))
        raw_store(port, key, b"not msgpack at all")
        flooder = KeyPair.generate()
        flood = [blob_for(flooder, user, vessel=f"f{i}") for i in range(40)]
        for start in range(0, 40, 10):
            raw_store(port, key, pack_records(flood[start : start + 10]))

        def all_rejected() -> bool:
            counts = nodes[3].statistics().rejected
            assert counts.get("bad_signature") == 1
            assert counts.get("expired") == 1
            assert counts.get("stale_seq") == 1
            assert counts.get("oversize") == 1
            assert counts.get("malformed") == 1
            assert counts.get("publisher_full") == 40 - StoreLimits().max_per_publisher_per_key
            return True

        await eventually(all_rejected, timeout=10)

        result = await nodes[7].lookup(user)
        found = {a.node_key for a in result.candidates}
        assert {k.public for k in honest} <= found
        addresses = {a.address for a in result.candidates if a.node_key == victim.public}
        assert addresses == {"127.0.0.1:2000"}  # replayed older record lost; forgery refused
        assert len(result.peers_answered) >= 3 and result.complete  # one per path at least

        once = await lookup_once(user, [("127.0.0.1", nodes[1].port)], timeout=10)
        assert {a.node_key for a in once.candidates} == found


async def test_tombstone_and_update_visible() -> None:
    user = KeyPair.generate().public
    keys = KeyPair.generate()
    async with network(6) as nodes:
        await nodes[0].publish([blob_for(keys, user, seq=1, address="127.0.0.1:1")])
        await nodes[0].publish([blob_for(keys, user, seq=2, address="127.0.0.1:2")])
        result = await nodes[5].lookup(user)
        assert [a.address for a in result.candidates] == ["127.0.0.1:2"]
        await nodes[0].publish([blob_for(keys, user, seq=3, withdrawn=True)])
        result = await nodes[4].lookup(user)
        assert result.candidates == () and result.withdrawn == 1


async def test_garbage_datagrams_never_kill_a_node() -> None:
    user = KeyPair.generate().public
    garbage = [
        b"",
        b"\x00",
        b"\x00" + b"\x01" * 20 + b"\xc1",
        b"\x00" + b"\x01" * 20 + msgpack.packb(["store", [1, 2]]),
        b"\x00" + b"\x01" * 20 + msgpack.packb(["find_value", [b"x" * 20, b"short"]]),
        b"\x00" + b"\x01" * 20 + msgpack.packb(["nosuch", []]),
        b"\x00" + b"\x01" * 20 + msgpack.packb({"a": 1}),
        b"\x01" + b"\x02" * 20 + msgpack.packb([1, 2, 3]),
        b"\x07" * 5000,
    ]
    async with network(3) as nodes:
        await nodes[0].publish([blob_for(KeyPair.generate(), user)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for round_ in range(3):  # a burst each "second", compressed in time
                for data in garbage:
                    for node in nodes:
                        sock.sendto(data, ("127.0.0.1", node.port))
                await trio.sleep(0.1)
                assert len((await nodes[2].lookup(user)).candidates) == 1, round_
        assert sum(n.statistics().garbage_datagrams for n in nodes) >= 3 * 3 * 7


async def test_cancelled_lookup_does_not_break_the_node() -> None:
    user = KeyPair.generate().public
    async with network(4) as nodes:
        await nodes[0].publish([blob_for(KeyPair.generate(), user)])
        for _ in range(5):
            with trio.move_on_after(0.0005):
                await nodes[3].lookup(user)
        await trio.sleep(0.2)  # late replies arrive for cancelled calls
        assert len((await nodes[3].lookup(user)).candidates) == 1


async def test_status_rpc_and_status_file(tmp_path: object) -> None:
    from pathlib import Path

    state = Path(str(tmp_path))
    user = KeyPair.generate().public
    async with dht_loop(), open_dht_node(DhtConfig(state_dir=state)) as first:
        config = DhtConfig(bootstrap=(("127.0.0.1", first.port),))
        async with open_dht_node(config) as second:
            blob = blob_for(KeyPair.generate(), user)

            async def stored() -> dict[str, Any] | None:
                # On a loaded host a store can time out and be lost; publish again (as the
                # announcer's retries do: the store keeps one copy) until the status shows it.
                await second.publish([blob])
                status = await query_status(("127.0.0.1", first.port))
                return status if status["store"]["records"] == REPLICA_KEYS else None

            status = await eventually(stored, timeout=30, interval=0.2, what="every replica stored")
            assert status["stats"]["peers"] == 1
            assert status["peers"][0]["address"] == f"127.0.0.1:{second.port}"
            first.write_status()
            on_disk = read_status_file(state)
            assert on_disk["stats"]["node_id"] == first.node_id.hex()
    # the node id persists across restarts in the state dir
    async with dht_loop(), open_dht_node(DhtConfig(state_dir=state)) as again:
        assert again.node_id == first.node_id


async def test_client_is_not_added_to_routing_tables() -> None:
    user = KeyPair.generate().public
    async with network(3) as nodes:
        async with open_client([("127.0.0.1", nodes[0].port)]) as client:
            await client.lookup(user)
        assert all(n.statistics().peers == 2 for n in nodes)


async def test_lookup_once_unreachable_bootstrap() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(DhtUnavailable):
            await lookup_once(KeyPair.generate().public, [("127.0.0.1", port)], timeout=5)


async def test_a_node_whose_bootstrap_peer_was_down_joins_when_it_comes_up() -> None:
    """A node started before its bootstrap peer answered stayed alone until its next refresh
    (600 s), so 50 lab hosts starting at once left some unfound; it now bootstraps again
    with backoff while its table is empty."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node_keys, user = KeyPair.generate(), KeyPair.generate().public
    async with dht_loop():
        config = DhtConfig(bootstrap=(("127.0.0.1", port),), rejoin_delays=(0.2, 1.0))
        async with open_dht_node(config) as late:
            assert len(late.protocol.router) == 0  # nobody answered
            async with open_dht_node(DhtConfig(port=port)) as seed:
                await eventually(lambda: len(late.protocol.router) > 0, timeout=20, interval=0.05)
                result = await late.publish([blob_for(node_keys, user)])
                assert result.peers >= 1
                found = await seed.lookup(user)
                assert [a.node_key for a in found.candidates] == [node_keys.public]
