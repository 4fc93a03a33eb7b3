"""Shared helpers for overlay tests: keys and signed adverts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgpack

from overlay import DhtConfig, DhtNode, NodeIdentity, dht_key_for, dht_loop, make_advert, open_dht_node
from overlay.advert import ADVERT_DOMAIN, FORMAT_VERSION, encode_body
from seattlecore import KeyPair, PublicKey

NOW = 1_700_000_000.0


def advert_blob(
    node: KeyPair,
    user: PublicKey,
    *,
    vessel: str = "v1",
    seq: int = 1,
    ttl: float = 750.0,
    now: float = NOW,
    address: str = "127.0.0.1:1224",
    withdrawn: bool = False,
) -> bytes:
    return make_advert(
        node,
        address=address,
        vessel=vessel,
        user_key=user,
        seq=seq,
        expires_at=now + ttl,
        withdrawn=withdrawn,
    )


def forged_blob(node: KeyPair, user: PublicKey, *, signer: KeyPair, now: float = NOW) -> bytes:
    """An advert claiming to come from ``node`` but signed by ``signer``."""
    from overlay import Advert

    ad = Advert(
        node_key=node.public,
        address="10.9.9.9:1",
        vessel="evil",
        user_key=user,
        seq=99,
        expires_at=now + 100,
    )
    body = encode_body(ad)
    return msgpack.packb([FORMAT_VERSION, body, signer.sign(ADVERT_DOMAIN, body)])


def key_of(user: PublicKey) -> bytes:
    return dht_key_for(user)


TEST_BITS = 8
"""A cheap id puzzle for in-process networks (all their nodes agree; real nodes use 16)."""


def node_host(index: int, net: int = 3) -> str:
    """Loopback address ``index`` of test network ``net``: each node in its own /24."""
    return f"127.{net}.{index}.1"


@asynccontextmanager
async def spread_network(n: int, net: int = 3, **kw: Any) -> AsyncIterator[list[DhtNode]]:
    """``n`` DHT nodes in this trio run, each on its own 127.x address (per-IP rules apply),
    with the cheap test puzzle. Node i bootstraps from node 0 and node i-1."""
    async with dht_loop(), AsyncExitStack() as stack:
        nodes: list[DhtNode] = []
        for i in range(n):
            boot = tuple({(x.config.host, x.port) for x in (nodes[:1] + nodes[-1:])})
            config = DhtConfig(host=node_host(i, net), bootstrap=boot, id_bits=TEST_BITS,
                               identity=NodeIdentity.generate(TEST_BITS), **kw)
            nodes.append(await stack.enter_async_context(open_dht_node(config)))
        yield nodes


def adverts_for(user: PublicKey, count: int, *, host: str = "127.0.0.1",
                ttl: float = 600.0) -> tuple[list[KeyPair], list[bytes]]:
    """``count`` publishers' keys and one live advert each for ``user``."""
    keys = [KeyPair.generate() for _ in range(count)]
    blobs = [make_advert(k, address=f"{host}:{1000 + i}", vessel="v1", user_key=user, seq=1,
                         expires_at=time.time() + ttl) for i, k in enumerate(keys)]
    return keys, blobs
