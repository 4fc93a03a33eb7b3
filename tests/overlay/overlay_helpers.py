"""Shared helpers for overlay tests: keys and signed adverts."""

from __future__ import annotations

import msgpack

from overlay import dht_key_for, make_advert
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
