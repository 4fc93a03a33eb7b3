"""Sessions: one signed handshake per connection, then MACs (revision 10, protocol §18; pure).

Invariants (both ends keep one ``Channel`` per connection):

1. A channel exists only after a signed ``OpenSession`` request and its node-signed answer
   were both verified; its keys are derived from an ephemeral X25519 exchange *and* the
   exact bytes of both signed bodies (which name the node key, the requester key, the
   request nonce and both ephemeral keys), so they bind both identities and this handshake.
2. Requests carry counters 1, 2, 3, ... with no gap: a node accepts exactly the next one, so a
   replayed, reordered or skipped frame is refused; the answer carries the request's
   counter under the other direction's key. After ``MAX_COUNTER`` the channel is spent.
3. Nothing here is stored: a channel dies with its connection, so its keys are worth
   nothing on any other connection.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

import msgpack
import nacl.bindings
import nacl.exceptions
import nacl.public

from nodemanager.errors import BadSession
from nodemanager.proto.wire import DuplicateKey, pack, unpack
from seattlecore import PublicKey

KEY_BYTES = 32
TAG_BYTES = 32
MAX_COUNTER = 2**63 - 1
"""The last counter a channel may use (msgpack int64); then a new handshake is needed."""
DOMAIN = b"seattle-nm-session-v1"
_U64 = struct.Struct(">Q")


def _length_prefixed(data: bytes) -> bytes:
    return _U64.pack(len(data)) + data


def derive_keys(shared: bytes, request_body: bytes, response_body: bytes) -> tuple[bytes, bytes]:
    """(client-to-node key, node-to-client key) from the X25519 secret and the handshake."""
    transcript = hashlib.blake2b(
        DOMAIN + _length_prefixed(request_body) + _length_prefixed(response_body),
        digest_size=32).digest()
    to_node = hashlib.blake2b(b"c2n" + transcript, key=shared, digest_size=32).digest()
    to_client = hashlib.blake2b(b"n2c" + transcript, key=shared, digest_size=32).digest()
    return to_node, to_client


def tag(key: bytes, counter: int, body: bytes) -> bytes:
    """The MAC of one frame: keyed BLAKE2b-256 over ``u64be(counter) || body``."""
    return hashlib.blake2b(_U64.pack(counter) + body, key=key, digest_size=TAG_BYTES).digest()


class Ephemeral:
    """One side's X25519 key pair for one handshake."""

    def __init__(self) -> None:
        self._private = nacl.public.PrivateKey.generate()
        self.public = bytes(self._private.public_key)

    def shared(self, peer: bytes) -> bytes:
        """The X25519 secret with ``peer``; BadSession for a malformed or low-order key."""
        if type(peer) is not bytes or len(peer) != KEY_BYTES:
            raise BadSession("an ephemeral key is 32 raw bytes")
        try:
            secret = nacl.bindings.crypto_scalarmult(bytes(self._private), peer)
        except (nacl.exceptions.RuntimeError, nacl.exceptions.CryptoError) as exc:
            raise BadSession("the ephemeral key is of low order") from exc
        if not any(secret):
            raise BadSession("the ephemeral key is of low order")
        return bytes(secret)


@dataclass(slots=True)
class Channel:
    """One end of an open session: its keys, the signer's key and the last counter used."""

    requester: PublicKey
    """The key that signed the handshake: every request of the session is that key's."""
    to_node: bytes
    to_client: bytes
    counter: int = 0
    """The last request counter sent (client) or accepted (node)."""
    spent: bool = field(default=False)

    # ---- client side ----

    def seal_request(self, body: bytes) -> tuple[int, bytes]:
        """The next counter and the frame payload ``[body, counter, tag]``."""
        if self.counter >= MAX_COUNTER:
            self.spent = True
            raise BadSession("the session's counters are used up: open a new one")
        self.counter += 1
        return self.counter, pack([body, self.counter, tag(self.to_node, self.counter, body)])

    def open_response(self, frame: Frame, counter: int) -> bytes:
        """The body of a node's MAC'd answer to request ``counter``; BadSession if forged."""
        body, got, mac = frame
        if got != counter or not hmac.compare_digest(mac, tag(self.to_client, got, body)):
            raise BadSession("the answer's session tag does not verify")
        return body

    # ---- node side ----

    def open_request(self, frame: Frame) -> tuple[int, bytes]:
        """(counter, body) of a request frame (``parse_frame``); BadSession unless its tag
        verifies and its counter is exactly the next one. A refused frame does not move
        the counter."""
        body, counter, mac = frame
        if not 1 <= counter <= MAX_COUNTER:
            raise BadSession(f"a session counter is an int from 1 to {MAX_COUNTER}")
        if not hmac.compare_digest(mac, tag(self.to_node, counter, body)):
            raise BadSession("the request's session tag does not verify")
        if counter != self.counter + 1:
            raise BadSession(f"session counter {counter} is not the next one "
                             f"({self.counter + 1}): replayed or reordered")
        self.counter = counter
        return counter, body

    def seal_response(self, counter: int, body: bytes) -> bytes:
        return pack([body, counter, tag(self.to_client, counter, body)])


Frame = tuple[bytes, int, bytes]
"""A session frame's body, counter and tag."""


def parse_frame(payload: bytes) -> Frame | None:
    """``(body, counter, tag)`` if ``payload`` is shaped as a session frame ``[bin, int,
    bin32]``; None for anything else (read as an envelope, §2, and refused as one)."""
    if payload[:1] != b"\x93":  # a 3-array; envelopes are 2-arrays
        return None
    try:
        obj = unpack(payload)
    except (DuplicateKey, ValueError, TypeError, msgpack.UnpackException, RecursionError):
        return None
    body, counter, mac = obj
    if type(body) is not bytes or type(counter) is not int or type(mac) is not bytes \
            or len(mac) != TAG_BYTES:
        return None
    return body, counter, mac


def read_frame(payload: bytes) -> Frame:
    """A session frame's parts; BadSession if the payload is not one (client side)."""
    frame = parse_frame(payload)
    if frame is None:
        raise BadSession("a session frame is [body: bin, counter: int, tag: bin32]")
    return frame
