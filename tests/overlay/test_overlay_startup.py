"""Issue 20's start-up tail: a new node whose only contact is a busy bootstrap peer.

When many nodes start at once from one bootstrap peer, that peer answers late (past a
lookup's soft timeout) or drops a datagram. Each test runs a real loopback network, puts a
``HostilePeer`` in the bootstrap peer's place that behaves like the busy one (it hands out
the real nodes as contacts), starts a node that knows only it, and checks that the node's
first publish reaches the network and its advert is found. Before the fix, the publish went
to nobody (0 peers) and the node stayed unfindable for ``SILENT_TTL`` (30 s).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio_asyncio

from overlay import DhtConfig, DhtNode, dht_loop, open_dht_node
from overlay.dht import RPC_TIMEOUT
from overlay.wire import MSG_ID_BYTES, REQUEST, RESPONSE, pack_wire
from seattlecore import KeyPair
from testbed.attackers.dht import NO_REPLY, Behaviour, HostilePeer, Request, make_ident
from tests.support.dht import TEST_BITS, adverts_for, node_host, seeded_identity, spread_network

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

N = 6
NET = 44


def busy_bootstrap(nodes: Sequence[DhtNode], *, drop_first: int = 0) -> Behaviour:
    """Answer lookups with the real nodes' contacts (as a bootstrap peer's table would);
    ignore the first ``drop_first`` lookup requests (a full socket buffer drops them)."""
    contacts = [c.wire() for c in nodes[0].protocol.router.contacts()]
    dropped = 0

    def behave(peer: HostilePeer, req: Request) -> Any:
        nonlocal dropped
        if req.name in ("find_node", "find_value"):
            if dropped < drop_first:
                dropped += 1
                return NO_REPLY
            return contacts
        if req.name == "store":
            return True
        return peer.ident.node_id

    return behave


async def newcomer_publishes(nodes: Sequence[DhtNode], peer: HostilePeer) -> None:
    """A node that knows only ``peer`` publishes one advert; every node then finds it."""
    user = KeyPair.generate().public
    config = DhtConfig(host=node_host(N, NET), bootstrap=((peer.host, peer.port),),
                       id_bits=TEST_BITS, identity=seeded_identity("startup-new"))
    async with open_dht_node(config) as newcomer:
        keys, blobs = adverts_for(user, 1)
        result = await newcomer.publish(blobs)
        assert result.peers > 0 and result.stores_accepted > 0
        for node in nodes:
            found = await node.lookup(user)
            assert {a.node_key for a in found.candidates} == {keys[0].public}


async def test_a_bootstrap_peer_answering_past_the_soft_timeout_still_gets_a_node_in() -> None:
    async with spread_network(N, NET) as nodes, trio.open_nursery() as nursery:
        peer = HostilePeer(node_host(0, NET + 1), make_ident(TEST_BITS), busy_bootstrap(nodes),
                           delay=0.3)  # far past the soft timeout, within the hard one (1 s)
        await nursery.start(peer.serve)
        await newcomer_publishes(nodes, peer)
        nursery.cancel_scope.cancel()


async def test_a_bootstrap_peer_that_dropped_a_request_is_asked_again() -> None:
    """The join's lookup gets no answer (hard timeout: the peer counts as silent for 30 s);
    the publish's lookups must still ask it, as it is the only contact there is."""
    async with spread_network(N, NET) as nodes, trio.open_nursery() as nursery:
        peer = HostilePeer(node_host(0, NET + 1), make_ident(TEST_BITS),
                           busy_bootstrap(nodes, drop_first=1))
        await nursery.start(peer.serve)
        await newcomer_publishes(nodes, peer)
        nursery.cancel_scope.cancel()


def answer_pings(sock: socket.socket, node_id: bytes, stop: threading.Event) -> None:
    """A peer in its own thread (it keeps answering while the test's loop is stalled)."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        if data[:1] == REQUEST:
            sock.sendto(RESPONSE + data[1:1 + MSG_ID_BYTES] + pack_wire(node_id), addr)


async def test_replies_queued_while_our_loop_stalled_are_not_timeouts() -> None:
    """A loaded machine stalls a node's loop past the 1 s reply timers while the replies sit
    in its socket buffer. asyncio reads one datagram per loop turn but fires every due timer
    in that turn, so all but one of those answered calls failed (and their peers were marked
    silent, and left the table after a few). A timer that fires late now gives a grace."""
    config = DhtConfig(host=node_host(0, NET + 2), id_bits=TEST_BITS,
                       identity=seeded_identity("startup-stall"))
    peer_id = seeded_identity("startup-stall-peer").node_id
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((node_host(1, NET + 2), 0))
        answerer = threading.Thread(target=answer_pings, args=(sock, peer_id, stop))
        answerer.start()
        try:
            async with dht_loop(), open_dht_node(config) as node:
                proto = node.protocol

                async def stalled_calls() -> list[Any]:
                    calls = [asyncio.ensure_future(proto.call(sock.getsockname(), "ping", proto.own_id))
                             for _ in range(5)]
                    await asyncio.sleep(0)  # the requests are sent
                    time.sleep(RPC_TIMEOUT + 0.5)  # our loop stalls; the peer answers meanwhile
                    return list(await asyncio.gather(*calls, return_exceptions=True))

                results = await trio_asyncio.aio_as_trio(stalled_calls)()
                assert results == [peer_id] * 5
                assert proto.counters.rpc_timeouts == 0 and proto.counters.stalled_timers >= 1
        finally:
            stop.set()
            answerer.join()
