"""Frames and signed envelopes of the node manager protocol (pure; docs/protocol.md).

Layout (all msgpack; str map keys, each at most once per map):

    frame    = length (4 bytes, big-endian, <= MAX_FRAME_BYTES) + payload
    payload  = [body: bin, signature: bin(64) | nil]
    request body  = {"v": int, "op": str, "args": map, "node": bin(32) | nil,
                     "requester": bin(32) | nil, "nonce": bin(16), "ts": float}
    response body = {"v": int, "node": bin(32), "nonce": bin(16) | nil, "ok": bool,
                     "result": map | nil, "error": {"code": str, "message": str} | nil}

A signature covers ``domain || u64be(len(body)) || body`` over the *exact* body bytes
(``seattlecore`` framing); requests use ``REQUEST_DOMAIN``, responses ``RESPONSE_DOMAIN``.
The body is verified before anything in it is trusted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
import nacl.signing

import seattlecore
from nodemanager.errors import BadFrame, BadResponse, FrameTooLarge
from nodemanager.proto.messages import MAX_FILE_BYTES, PROTOCOL_VERSION, Request
from seattlecore import KeyPair, PublicKey

REQUEST_DOMAIN = b"seattle-nm-request-v1"
RESPONSE_DOMAIN = b"seattle-nm-response-v1"
MAX_FRAME_BYTES = MAX_FILE_BYTES + 64 * 1024
PUBLIC_FRAME_BYTES = 64 * 1024
"""Default largest frame on a connection that is not yet trusted (docs/protocol.md §10)."""
HEADER = struct.Struct(">I")
NONCE_BYTES = 16
SIGNATURE_BYTES = 64


class DuplicateKey(ValueError):
    """Raised while unpacking when a map repeats a key (msgpack itself keeps the last)."""


@contextmanager
def map_unpack_errors(error: type[Exception], what: str) -> Iterator[None]:
    """Translate msgpack's many exception types into one of ours."""
    try:
        yield
    except DuplicateKey as exc:
        raise error(f"{what}: {exc}") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise error(f"{what} is not valid msgpack: {type(exc).__name__}") from exc


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[Any] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"map key {str(key)[:64]!r} appears more than once")
            seen.add(key)
    return result


def unpack(data: bytes) -> Any:
    """Unpack one msgpack object: str map keys, each at most once in its map (§1)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                           object_pairs_hook=_unique_keys)


def pack(obj: object) -> bytes:
    result: bytes = msgpack.packb(obj, use_bin_type=True)
    return result


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length."""
    return HEADER.pack(len(payload)) + payload


def frame_length(header: bytes, max_bytes: int = MAX_FRAME_BYTES) -> int:
    """The payload length announced by a 4-byte header; FrameTooLarge if above ``max_bytes``."""
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise FrameTooLarge(f"frame of {length} bytes exceeds the limit of {max_bytes}")
    return int(length)


class Signer:
    """Signs bodies in one domain exactly as ``KeyPair.sign`` does, with the key cached.

    ``KeyPair.sign`` re-derives the signing key from the seed on every call, which costs
    as much as the signature itself; the daemon and the client sign once per request.
    The key pair's own signing key is reused (deriving it costs as much again for every
    connection a client opens).
    """

    def __init__(self, keys: KeyPair, domain: bytes) -> None:
        self.public = keys.public
        self._key: nacl.signing.SigningKey = keys._signing
        self._domain = domain

    def sign(self, body: bytes) -> bytes:
        framed = self._domain + struct.pack(">Q", len(body)) + body
        return bytes(self._key.sign(framed).signature)


def _signer(keys: KeyPair | Signer, domain: bytes) -> Signer:
    return keys if isinstance(keys, Signer) else Signer(keys, domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A body's exact bytes and the signature over them (None for unsigned requests)."""

    body: bytes
    signature: bytes | None

    def to_payload(self) -> bytes:
        return pack([self.body, self.signature])


def open_envelope(payload: bytes, error: type[Exception] = BadFrame) -> Envelope:
    """Split a frame payload into body bytes and signature, checking only their shapes."""
    with map_unpack_errors(error, "frame"):
        obj = unpack(payload)
    if not isinstance(obj, list) or len(obj) != 2:
        raise error("payload must be [body, signature]")
    body, signature = obj
    if type(body) is not bytes:
        raise error("body must be bytes")
    if signature is not None and (type(signature) is not bytes or len(signature) != 64):
        raise error("signature must be 64 bytes or nil")
    return Envelope(body=body, signature=signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBody:
    """The decoded, shape-checked fields of a request body (arguments still raw)."""

    version: int
    op: str
    args: Mapping[str, Any]
    node: PublicKey | None
    requester: PublicKey | None
    nonce: bytes
    timestamp: float


def _optional_key(value: object, field: str) -> PublicKey | None:
    if value is None:
        return None
    if type(value) is not bytes or len(value) != 32:
        raise BadFrame(f"{field} must be a 32-byte key or nil")
    return PublicKey(value)


_REQUEST_FIELDS = frozenset({"v", "op", "args", "node", "requester", "nonce", "ts"})


def read_request_body(body: bytes) -> RequestBody:
    """Decode a request body; raise BadFrame if a header field is missing or ill-typed."""
    with map_unpack_errors(BadFrame, "request body"):
        obj = unpack(body)
    if not isinstance(obj, dict) or set(obj) != _REQUEST_FIELDS:
        raise BadFrame(f"request body must be a map with exactly {sorted(_REQUEST_FIELDS)}")
    version, op, nonce, stamp = obj["v"], obj["op"], obj["nonce"], obj["ts"]
    if type(version) is not int or type(op) is not str or len(op) > 64:
        raise BadFrame("v must be an int and op a short string")
    if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
        raise BadFrame(f"nonce must be {NONCE_BYTES} bytes")
    if type(stamp) not in (int, float) or stamp != stamp:
        raise BadFrame("ts must be a number (seconds since the epoch)")
    if not isinstance(obj["args"], dict):
        raise BadFrame("args must be a map")
    return RequestBody(
        version=version, op=op, args=obj["args"], nonce=nonce, timestamp=float(stamp),
        node=_optional_key(obj["node"], "node"),
        requester=_optional_key(obj["requester"], "requester"),
    )


def request_body(
    request: Request, *, node: PublicKey | None, requester: PublicKey | None,
    nonce: bytes, timestamp: float, version: int = PROTOCOL_VERSION,
) -> bytes:
    """Encode a request body (the bytes that get signed)."""
    return pack({
        "v": version, "op": request.op, "args": request.to_args(),
        "node": None if node is None else node.raw,
        "requester": None if requester is None else requester.raw,
        "nonce": nonce, "ts": timestamp,
    })


def seal_request(
    request: Request, *, identity: KeyPair | Signer | None, node: PublicKey | None,
    nonce: bytes, timestamp: float,
) -> bytes:
    """A complete request payload: signed by ``identity``, or unsigned when it is None."""
    requester = None if identity is None else identity.public
    body = request_body(
        request, node=node, requester=requester, nonce=nonce, timestamp=timestamp
    )
    signature = None if identity is None else _signer(identity, REQUEST_DOMAIN).sign(body)
    return Envelope(body=body, signature=signature).to_payload()


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """One answer: either ``result`` (ok) or an error code and message."""

    node: PublicKey
    nonce: bytes | None
    ok: bool
    result: Mapping[str, Any] | None = None
    code: str | None = None
    message: str | None = None


def response_body(response: Response) -> bytes:
    """Encode a response body (§5): the bytes that get signed, or MAC'd in a session."""
    error = None if response.ok else {"code": response.code, "message": response.message}
    return pack({
        "v": PROTOCOL_VERSION, "node": response.node.raw, "nonce": response.nonce,
        "ok": response.ok, "result": response.result if response.ok else None, "error": error,
    })


def sign_response_body(node_keys: KeyPair | Signer, body: bytes) -> bytes:
    """The frame payload of a response body signed with the node key."""
    signature = _signer(node_keys, RESPONSE_DOMAIN).sign(body)
    return Envelope(body=body, signature=signature).to_payload()


def seal_response(node_keys: KeyPair | Signer, response: Response) -> bytes:
    """Encode and sign a response with the node key; return the frame payload."""
    return sign_response_body(node_keys, response_body(response))


def _response_fields(obj: object) -> Response:
    if not isinstance(obj, dict) or obj.get("v") != PROTOCOL_VERSION:
        raise BadResponse("response body must be a version-1 map")
    node, nonce, ok = obj.get("node"), obj.get("nonce"), obj.get("ok")
    if type(node) is not bytes or len(node) != 32 or type(ok) is not bool:
        raise BadResponse("response node/ok fields are malformed")
    if nonce is not None and type(nonce) is not bytes:
        raise BadResponse("response nonce is malformed")
    if ok:
        result = obj.get("result")
        if not isinstance(result, dict):
            raise BadResponse("ok response without a result map")
        return Response(node=PublicKey(node), nonce=nonce, ok=True, result=result)
    error = obj.get("error")
    if not isinstance(error, dict) or not all(
        type(error.get(k)) is str for k in ("code", "message")
    ):
        raise BadResponse("error response without code and message")
    return Response(
        node=PublicKey(node), nonce=nonce, ok=False, code=error["code"], message=error["message"]
    )


def open_response(payload: bytes, *, node: PublicKey | None, nonce: bytes) -> Response:
    """Verify a response: signed by ``node`` (or by the key it names, if None), for ``nonce``."""
    envelope = open_envelope(payload, BadResponse)
    if envelope.signature is None:
        raise BadResponse("response is not signed")
    response = read_response_body(envelope.body, node=node, nonce=nonce)
    try:
        response.node.verify(RESPONSE_DOMAIN, envelope.body, envelope.signature)
    except seattlecore.BadSignature as exc:
        raise BadResponse("response signature does not verify") from exc
    return response


def read_response_body(body: bytes, *, node: PublicKey | None, nonce: bytes) -> Response:
    """Decode an authenticated (or about to be) response body: from ``node`` (if given),
    bound to ``nonce`` (a nil nonce only on an error)."""
    with map_unpack_errors(BadResponse, "response body"):
        response = _response_fields(unpack(body))
    if node is not None and response.node != node:
        raise BadResponse("response comes from a different node key")
    unreadable_request = response.nonce is None and not response.ok
    if response.nonce != nonce and not unreadable_request:
        raise BadResponse("response is bound to a different request nonce")
    return response
