"""DHT client mode: a node whose UDP port is private publishes and looks up but is never a
contact; the client flag only ever makes peers *skip* admission; dial-back datagrams."""

from __future__ import annotations

import os
from dataclasses import replace

import trio
import trio_asyncio

from overlay import DhtConfig, DhtNode, open_dht_node
from overlay.dht import CLIENT_ID, NoAnswer
from overlay.nodeid import NodeIdentity
from overlay.ratelimit import RateLimiter
from overlay.wire import dialback_datagram
from seattlecore import KeyPair
from testbed.attackers.dht import NO_REPLY, HostilePeer, make_ident
from tests.support.dht import TEST_BITS, adverts_for, node_host, spread_network
from tests.support.polling import eventually


def holders_of(nodes: list[DhtNode], node_id: bytes) -> int:
    return sum(node_id in {e.contact.node_id for _, e in n.protocol.router.entries()} for n in nodes)


async def wait_found(node: DhtNode, user: KeyPair, want: int) -> None:
    async def enough() -> bool:
        return len((await node.lookup(user.public)).candidates) >= want

    await eventually(enough, timeout=20, interval=0.1)


async def test_a_client_mode_node_is_no_contact_but_publishes_and_looks_up() -> None:
    user, other = KeyPair.generate(), KeyPair.generate()
    async with spread_network(6, net=31) as nodes:
        config = DhtConfig(host=node_host(9, 31), bootstrap=((nodes[0].config.host, nodes[0].port),),
                           id_bits=TEST_BITS, identity=NodeIdentity.generate(TEST_BITS),
                           start_as_client=True)
        async with open_dht_node(config) as private:
            own_id = private.protocol.router.own_id
            assert private.client_mode and private.status()["mode"] == "client"
            assert len(private.protocol.router) > 0  # it keeps a table for its own lookups
            _, blobs = adverts_for(user.public, 3)
            result = await private.publish(blobs)
            assert result.stores_accepted > 0
            await wait_found(nodes[3], user, 3)
            await nodes[2].publish(adverts_for(other.public, 2)[1])
            await wait_found(private, other, 2)
            for node in nodes:  # lookups and publishes again, then check every table
                await node.lookup(user.public)
            assert holders_of(nodes, own_id) == 0
            # a peer that asks it anything (a stale contact) gets no answer
            ignored = private.protocol.counters.client_ignored
            await trio_call(nodes[1], (config.host, private.port), "ping")
            assert private.protocol.counters.client_ignored == ignored + 1

            await private.set_client_mode(False)  # e.g. a port forward appeared
            assert private.status()["mode"] == "server"
            await eventually(lambda: holders_of(nodes, own_id) > 0, timeout=10, interval=0.05)
            await private.set_client_mode(True)
            assert private.protocol.own_id == CLIENT_ID


async def trio_call(node: DhtNode, addr: tuple[str, int], name: str) -> bool:
    """One RPC from ``node``; True if answered."""
    try:
        await trio_asyncio.aio_as_trio(node.protocol.call)(addr, name, node.protocol.own_id)
    except NoAnswer:
        return False
    return True


async def test_lying_about_client_mode_gains_nothing(nursery: trio.Nursery) -> None:
    """A peer that sends the client flag is answered like anyone, enters no table, is still
    rate-limited, and cannot take an honest contact out of a table with the flag."""
    async with spread_network(4, net=32) as nodes:
        target = nodes[0]
        before = {e.contact.node_id for _, e in target.protocol.router.entries()}
        liar = HostilePeer(node_host(20, 32), make_ident(TEST_BITS), lambda p, r: NO_REPLY)
        await nursery.start(liar.serve)
        addr = (target.config.host, target.port)
        answer = await liar.request(addr, "find_node", CLIENT_ID, os.urandom(20))
        assert isinstance(answer, list) and answer  # answered like anyone
        # it also claims an honest node's id with the flag: nothing changes
        for _, entry in list(target.protocol.router.entries()):
            await liar.request(addr, "ping", CLIENT_ID)
            await liar.request(addr, "find_node", CLIENT_ID, entry.contact.node_id)
        after = {e.contact.node_id for _, e in target.protocol.router.entries()}
        assert after == before and liar.ident.node_id not in after
        # the flag buys no exemption from the per-source limit; a small bucket, so that the
        # check does not depend on how fast a loaded host drains the flood (300/s refill)
        target.protocol.limiter = RateLimiter(rate=1.0, burst=50.0)
        limited = target.protocol.counters.rate_limited
        for _ in range(200):
            await liar.send_raw(addr, b"\x00" + os.urandom(20) + b"\x92\xa4ping\x91\xc4\x00")
        await eventually(lambda: target.protocol.counters.rate_limited > limited, timeout=5)


async def test_dial_back_datagrams_count_only_from_fresh_addresses(nursery: trio.Nursery) -> None:
    seen: list[bytes] = []
    async with spread_network(2, net=33, dialback_sink=seen.append) as nodes:
        node = nodes[1]
        addr = (node.config.host, node.port)
        talker = HostilePeer(node_host(21, 33), make_ident(TEST_BITS), lambda p, r: NO_REPLY)
        await nursery.start(talker.serve)
        assert await talker.request(addr, "ping", CLIENT_ID) is not None  # the node replied to it
        nonce = os.urandom(16)
        await talker.send_raw(addr, dialback_datagram(nonce))  # a NAT would let this in
        fresh = HostilePeer(node_host(21, 33), make_ident(TEST_BITS), lambda p, r: NO_REPLY)
        await nursery.start(fresh.serve)
        good = os.urandom(16)
        await fresh.send_raw(addr, dialback_datagram(good))
        garbage = node.protocol.counters.garbage_datagrams
        await fresh.send_raw(addr, dialback_datagram(b"short"))
        await eventually(lambda: seen and node.protocol.counters.garbage_datagrams > garbage, timeout=5)
        assert seen == [good]
        assert node.protocol.counters.dialbacks_ignored == 1


def test_config_replace_keeps_start_as_client() -> None:
    assert replace(DhtConfig(start_as_client=True), port=1).start_as_client
