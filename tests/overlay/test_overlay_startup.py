"""Issue 20's start-up tail: a new node whose only contact is a busy bootstrap peer.

When many nodes start at once from one bootstrap peer, that peer answers late (past a
lookup's soft timeout) or drops a datagram. Each test runs a real loopback network, puts a
``HostilePeer`` in the bootstrap peer's place that behaves like the busy one (it hands out
the real nodes as contacts), starts a node that knows only it, and checks that the node's
first publish reaches the network and its advert is found. Before the fix, the publish went
to nobody (0 peers) and the node stayed unfindable for ``SILENT_TTL`` (30 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

from overlay import DhtConfig, DhtNode, open_dht_node
from seattlecore import KeyPair
from testbed.attackers.dht import NO_REPLY, Behaviour, HostilePeer, Request, make_ident
from tests.support.dht import TEST_BITS, adverts_for, node_host, seeded_identity, spread_network

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

N = 6
NET = 57


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
