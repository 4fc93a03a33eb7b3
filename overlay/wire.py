"""The DHT's datagram format (pure): ``kind | msg id | msgpack([name, args])`` (docs/overlay.md).

Kept apart from ``dht`` (which loads kademlia and asyncio) so that code that only writes a
datagram, e.g. the node manager's UDP dial-back, does not load the DHT.
"""

from __future__ import annotations

import os
from typing import Any

import msgpack

REQUEST, RESPONSE = b"\x00", b"\x01"
"""The first byte of a datagram: a request or a response."""
MSG_ID_BYTES = 20
DIALBACK_NONCE_BYTES = 16


def pack_wire(value: Any) -> bytes:
    """msgpack as rpcudp writes it (str as str, bytes as bin), with the C codec."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack_wire(data: bytes) -> Any:
    """Decode a datagram payload; raises (ValueError, msgpack errors) on garbage."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def request_datagram(name: str, args: list[Any], msg_id: bytes | None = None) -> bytes:
    """One request datagram (a fresh random message id unless given)."""
    return REQUEST + (msg_id or os.urandom(MSG_ID_BYTES)) + pack_wire([name, args])


def dialback_datagram(nonce: bytes) -> bytes:
    """The UDP dial-back a reachability server sends: a ``dialback`` request (protocol §13)."""
    return request_datagram("dialback", [nonce])
