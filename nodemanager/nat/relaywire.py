"""Frames of the relay protocol and the signed reservation proof (pure; docs/protocol.md §14).

Every control message is one frame: 4-byte big-endian length (at most ``MAX_RELAY_FRAME``)
followed by a msgpack map whose ``"t"`` names the message. After ``connected`` (client side)
or ``accept`` (node side) the connection carries raw bytes: the relay splices the two.

A reservation is proven by the node's key: the body ``{"node", "relay", "challenge", "ts"}``
is signed under ``RESERVE_DOMAIN`` (``seattlecore`` framing), where ``challenge`` is the
16 random bytes the relay sent on *this* connection (in ``hello``, then in each
``reserved``) and ``relay`` is the relay's key, so a proof is good once, at one relay.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from nodemanager.errors import BadFrame
from nodemanager.proto.wire import HEADER, map_unpack_errors, pack, unpack
from seattlecore import BadSignature, KeyPair, PublicKey

RELAY_VERSION = 1
RESERVE_DOMAIN = b"seattle-relay-reserve-v1"
MAX_RELAY_FRAME = 4096
CHALLENGE_BYTES = 16
TOKEN_BYTES = 16
MAX_SOURCE_CHARS = 64
MAX_MESSAGE_CHARS = 300


class RelayProtocolError(BadFrame):
    """A relay frame is malformed, too large, or not the message expected here."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveProof:
    """The signed claim "node ``node`` reserves at relay ``relay``", bound to a challenge."""

    node: PublicKey
    relay: PublicKey
    challenge: bytes
    timestamp: float


def sign_reserve(keys: KeyPair, relay: PublicKey, challenge: bytes, now: float) -> dict[str, Any]:
    """The ``reserve`` message proving ``keys``' node holds the reservation."""
    body = pack({"node": keys.public.raw, "relay": relay.raw, "challenge": challenge, "ts": now})
    return {"t": "reserve", "body": body, "sig": keys.sign(RESERVE_DOMAIN, body)}


def check_reserve(msg: Mapping[str, Any], *, relay: PublicKey, challenge: bytes, now: float,
                  window: float) -> ReserveProof:
    """Verify a ``reserve`` message; RelayProtocolError says what is wrong with it."""
    body, sig = msg.get("body"), msg.get("sig")
    if type(body) is not bytes or type(sig) is not bytes or len(sig) != 64:
        raise RelayProtocolError("reserve needs body (bytes) and sig (64 bytes)")
    with map_unpack_errors(RelayProtocolError, "reserve body"):
        fields = unpack(body)
    if not isinstance(fields, dict) or set(fields) != {"node", "relay", "challenge", "ts"}:
        raise RelayProtocolError("reserve body must be {node, relay, challenge, ts}")
    node, to, nonce, stamp = fields["node"], fields["relay"], fields["challenge"], fields["ts"]
    if type(node) is not bytes or len(node) != 32 or type(stamp) not in (int, float):
        raise RelayProtocolError("reserve body: node must be 32 bytes and ts a number")
    key = PublicKey(node)
    try:
        key.verify(RESERVE_DOMAIN, body, sig)
    except BadSignature as exc:
        raise RelayProtocolError("reservation signature does not verify") from exc
    if to != relay.raw:
        raise RelayProtocolError("reservation is for another relay")
    if nonce != challenge:
        raise RelayProtocolError("reservation does not answer this connection's challenge")
    if not abs(float(stamp) - now) <= window:
        raise RelayProtocolError("reservation timestamp outside the time window")
    return ReserveProof(node=key, relay=relay, challenge=nonce, timestamp=float(stamp))


def new_challenge() -> bytes:
    return os.urandom(CHALLENGE_BYTES)


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"t": "error", "code": code, "message": message[:MAX_MESSAGE_CHARS]}


def encode(msg: Mapping[str, Any]) -> bytes:
    payload = pack(dict(msg))
    if len(payload) > MAX_RELAY_FRAME:
        raise ValueError(f"relay frame of {len(payload)} bytes")
    return HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> dict[str, Any]:
    """A frame's map; RelayProtocolError unless it is a map with a string ``t``."""
    with map_unpack_errors(RelayProtocolError, "relay frame"):
        msg = unpack(payload)
    if not isinstance(msg, dict) or type(msg.get("t")) is not str:
        raise RelayProtocolError("relay frame must be a map with a string 't'")
    return msg


def want(msg: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """``msg`` if it is a ``kind`` message; raise RelayError-like on an ``error`` answer."""
    if msg["t"] == "error":
        raise RelayRefusal(str(msg.get("code", "Error"))[:64], str(msg.get("message", ""))[:300])
    if msg["t"] != kind:
        raise RelayProtocolError(f"expected {kind!r}, got {str(msg['t'])[:32]!r}")
    return msg


class RelayRefusal(Exception):
    """A relay answered with an error message (``code``: e.g. ReservationLimit)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def field_bytes(msg: Mapping[str, Any], name: str, size: int) -> bytes:
    value = msg.get(name)
    if type(value) is not bytes or len(value) != size:
        raise RelayProtocolError(f"{name} must be {size} bytes")
    return value


def field_number(msg: Mapping[str, Any], name: str) -> float:
    value = msg.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise RelayProtocolError(f"{name} must be a number")
    return float(value)


def field_text(msg: Mapping[str, Any], name: str, limit: int = MAX_SOURCE_CHARS) -> str:
    value = msg.get(name)
    if type(value) is not str or not 0 < len(value) <= limit or not value.isprintable():
        raise RelayProtocolError(f"{name} must be a short printable string")
    return value


class FramedStream:
    """Reads relay frames from a stream without losing bytes that follow them.

    After the handshake, ``leftover`` holds bytes already received past the last frame;
    ``RawStream`` hands them out before reading the socket again.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.leftover = bytearray()

    async def _fill(self, size: int) -> None:
        while len(self.leftover) < size:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise RelayProtocolError("connection closed during the relay handshake")
            self.leftover += chunk

    async def receive(self) -> dict[str, Any]:
        await self._fill(HEADER.size)
        (length,) = HEADER.unpack(bytes(self.leftover[: HEADER.size]))
        if length > MAX_RELAY_FRAME:
            raise RelayProtocolError(f"relay frame of {length} bytes (limit {MAX_RELAY_FRAME})")
        await self._fill(HEADER.size + length)
        payload = bytes(self.leftover[HEADER.size : HEADER.size + length])
        del self.leftover[: HEADER.size + length]
        return decode(payload)

    async def send(self, msg: Mapping[str, Any]) -> None:
        await self.stream.send_all(encode(msg))

    def raw(self) -> RawStream:
        """The stream after the handshake (leftover bytes first)."""
        return RawStream(self.stream, bytes(self.leftover))


class RawStream(trio.abc.Stream):
    """A stream whose first received bytes are ``prefix``, then the inner stream's."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes = b"") -> None:
        self.inner = inner
        self._prefix = prefix
        self.socket = getattr(inner, "socket", None)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self.inner, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return bytes(data)
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()
