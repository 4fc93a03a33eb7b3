"""A hostile client written for the tests, from docs/protocol.md alone.

It builds frames with msgpack and PyNaCl directly (no ``nodemanager`` code), so a bug in
the project's own encoder cannot hide one in the node, and it can send what the project's
client never would: duplicate map keys, wrong types, floods from many source addresses.
Sockets can be bound to any 127.a.b.c source address (all of 127/8 is loopback on Linux),
so per-address and per-prefix rules are exercised without network namespaces.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import nacl.signing
import trio

REQUEST_DOMAIN = b"seattle-nm-request-v1"


def sources(count: int, *, first_octet: int = 10, per_prefix: int = 8) -> Iterator[str]:
    """``count`` loopback addresses, ``per_prefix`` in each /24: 127.F.B.1, 127.F.B.2, ..."""
    for index in range(count):
        prefix, host = divmod(index, per_prefix)
        yield f"127.{first_octet + prefix // 250}.{prefix % 250}.{host + 1}"


def body(op: str, args: Any = None, **fields: Any) -> dict[str, Any]:
    """A request body map with fresh nonce and timestamp; ``fields`` override any key."""
    doc: dict[str, Any] = {"v": 1, "op": op, "args": {} if args is None else args,
                           "node": None, "requester": None, "nonce": os.urandom(16),
                           "ts": time.time()}
    doc.update(fields)
    return doc


def pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def frame(body_bytes: bytes, signer: nacl.signing.SigningKey | None = None) -> bytes:
    """Length prefix + ``[body, signature]``, signed in the request domain if ``signer``."""
    signature = None
    if signer is not None:
        framed = REQUEST_DOMAIN + struct.pack(">Q", len(body_bytes)) + body_bytes
        signature = bytes(signer.sign(framed).signature)
    payload = pack([body_bytes, signature])
    return struct.pack(">I", len(payload)) + payload


def signed_body(op: str, args: Any, seed: bytes, node: bytes) -> tuple[bytes, bytes]:
    """``(frame, nonce)`` of a correctly signed request by the key with ``seed``."""
    key = nacl.signing.SigningKey(seed)
    doc = body(op, args, node=node, requester=bytes(key.verify_key))
    return frame(pack(doc), key), doc["nonce"]


def map_with_duplicate(pairs: list[tuple[str, bytes]]) -> bytes:
    """A msgpack map of already-packed values whose keys may repeat (msgpack-python can't)."""
    out = bytearray(b"\xde" + struct.pack(">H", len(pairs)))
    for key, packed_value in pairs:
        out += pack(key) + packed_value
    return bytes(out)


async def connect(port: int, source: str | None = None) -> trio.SocketStream:
    """A TCP stream to 127.0.0.1:``port``, from ``source`` (a 127.x.y.z address) if given."""
    return await trio.open_tcp_stream("127.0.0.1", port, local_address=source)


class Closed(Exception):
    """Raised when the node closed the connection instead of answering."""


async def read_frame(stream: trio.SocketStream) -> bytes:
    """One response payload; Closed on EOF or reset."""
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise Closed
            data += chunk
    except trio.BrokenResourceError as exc:
        raise Closed from exc
    return data[4:]


def response_body(payload: bytes) -> dict[str, Any]:
    """The (unverified) response body map."""
    envelope = msgpack.unpackb(payload, raw=False)
    result: dict[str, Any] = msgpack.unpackb(envelope[0], raw=False)
    return result


async def ask(stream: trio.SocketStream, data: bytes) -> dict[str, Any]:
    """Send one frame, return the response body; Closed if the node hung up."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise Closed from exc
    return response_body(await read_frame(stream))


def error_code(response: dict[str, Any]) -> str | None:
    return None if response["ok"] else str(response["error"]["code"])


# ---- the lock-out flood (connections that each hold a slot) ----

async def hold(port: int, source: str, held: list[trio.SocketStream]) -> None:
    """The lock-out attack: connect, send one unsigned GetNodeStatus, keep the connection."""
    stream = await connect(port, source)
    try:
        response = await ask(stream, frame(pack(body("GetNodeStatus"))))
    except Closed:
        await stream.aclose()  # evicted before it was answered
        return
    assert response["ok"], response
    held.append(stream)


async def flood(port: int, addresses: list[str]) -> list[trio.SocketStream]:
    held: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:
        for source in addresses:
            nursery.start_soon(hold, port, source, held)
    return held


async def close_all(streams: list[trio.SocketStream]) -> None:
    for stream in streams:
        await stream.aclose()
