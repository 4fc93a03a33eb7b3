"""The relay directory: relays advertise themselves in the DHT like vessels (trio).

A relay publishes an ordinary signed advert (its node key, ``host:relayport``, vessel
``"relay"``) under the well-known user key ``RELAY_DIRECTORY_KEY``, so the DHT's record
validation, fair paging per publisher and quotas apply to the directory as to any user's
adverts. A node behind NAT looks that key up to find relays. The key is derived from a
public string: nobody holds its private half, and nobody needs to.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Awaitable, Callable

import trio

from nodemanager.nat.reachability import Reach, ReachabilityBoard
from overlay import Announcer, DhtNode
from overlay.results import Directory
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

RELAY_DIRECTORY_KEY = PublicKey(hashlib.blake2b(b"seattle relay directory v1",
                                                digest_size=32).digest())
RELAY_VESSEL = "relay"
FIRST_ADVERT_DELAY = (3.0, 8.0)
"""Seconds (uniform) before a relay first advertises: the node's own adverts go first."""


async def find_relays(directory: Directory, own: PublicKey) -> list[str]:
    """Relay addresses from the directory, shuffled (so NATed nodes spread over relays)."""
    result = await directory.lookup(RELAY_DIRECTORY_KEY)
    found = [a.address for a in result.candidates
             if a.vessel == RELAY_VESSEL and a.node_key != own and not a.withdrawn and not a.relays]
    random.shuffle(found)
    return found


async def announce_relay(node: DhtNode, keys: KeyPair, board: ReachabilityBoard,
                         address: Callable[[], Awaitable[str]]) -> None:
    """Keep this relay in the directory while its port is not known to be private.

    The first advert waits ``FIRST_ADVERT_DELAY``. No withdrawal at shutdown: the node's own
    adverts are withdrawn then, within a short grace, and a dead relay costs a NATed node one
    refused connection (it then tries others).
    """
    await trio.sleep(random.uniform(*FIRST_ADVERT_DELAY))
    announcer = Announcer(node, keys, await address())
    async with trio.open_nursery() as nursery:
        await nursery.start(announcer.run)
        while True:
            seen = board.generation
            private = board.state.tcp is Reach.PRIVATE
            announcer.update([] if private else [(RELAY_VESSEL, RELAY_DIRECTORY_KEY)])
            await board.wait_changed(seen)

