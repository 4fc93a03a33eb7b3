"""Authenticate one request envelope (pure; the node's clock comes in as ``now``).

Order of checks (docs/protocol.md §Checks): body shape -> version -> signed or public ->
addressed to this node -> signature over the exact body bytes -> time window -> arguments.
The nonce's freshness is checked by ``state.NodeState`` (it is persisted), and the
requester's rights on a vessel by ``api.authorize`` (they depend on vessel state).
"""

from __future__ import annotations

from dataclasses import dataclass

import seattlecore
from nodemanager import errors
from nodemanager.proto.messages import (
    PROTOCOL_VERSION,
    REQUESTS,
    OpenSession,
    Request,
    decode_request,
)
from nodemanager.proto.wire import REQUEST_DOMAIN, Envelope, RequestBody, read_request_body
from seattlecore import PublicKey

TIME_WINDOW = 300.0
"""Seconds a signed request's timestamp may differ from the node's clock (either way)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A request that passed authentication (not yet authorization or replay checks)."""

    request: Request
    requester: PublicKey | None
    """The signer, or None for an unsigned public call."""
    nonce: bytes
    timestamp: float

    @property
    def signed(self) -> bool:
        return self.requester is not None


def read_nonce(envelope: Envelope) -> bytes | None:
    """Best-effort nonce of a request (to bind an error response); None if unreadable."""
    try:
        return read_request_body(envelope.body).nonce
    except errors.RequestError:
        return None


def authenticate(
    envelope: Envelope, *, node: PublicKey, now: float, window: float = TIME_WINDOW,
    body: RequestBody | None = None,
) -> Verified:
    """Check everything about a request that needs no vessel state; raise a RequestError.

    ``body`` is ``read_request_body(envelope.body)`` if the caller already decoded it.
    """
    body = read_request_body(envelope.body) if body is None else body
    cls = _operation(body, node)
    if envelope.signature is None:
        if cls.right != "public":
            raise errors.SignatureRequired(f"{body.op} must be signed")
        if body.requester is not None:
            raise errors.SignatureRequired("a request naming a requester must be signed")
        request = decode_request(body.version, body.op, body.args)
        return Verified(request=request, requester=None, nonce=body.nonce, timestamp=now)
    if body.requester is None:
        raise errors.BadSignature("a signed request must name its requester key")
    if body.node is None:
        raise errors.WrongNode("a signed request must name the node it is for")
    try:
        body.requester.verify(REQUEST_DOMAIN, envelope.body, envelope.signature)
    except seattlecore.BadSignature as exc:
        raise errors.BadSignature("request signature does not verify") from exc
    _check_window(body, now, window)
    request = decode_request(body.version, body.op, body.args)
    return Verified(
        request=request, requester=body.requester, nonce=body.nonce, timestamp=body.timestamp
    )


def authenticate_session(
    body: RequestBody, *, requester: PublicKey, node: PublicKey, now: float,
    window: float = TIME_WINDOW,
) -> Verified:
    """The checks of ``authenticate`` for the body of a session frame (protocol §18) whose
    tag and counter already verified: the tag replaces the signature, the counter the
    nonce record. The body must name the session's requester (BadSession otherwise)."""
    if body.requester != requester:
        raise errors.BadSession("a session's requests must name the key that opened it")
    cls = _operation(body, node)
    if body.node is None:
        raise errors.WrongNode("a session request must name the node it is for")
    if cls is OpenSession:
        raise errors.SignatureRequired("OpenSession must be signed, not sent in a session")
    _check_window(body, now, window)
    request = decode_request(body.version, body.op, body.args)
    return Verified(request=request, requester=requester, nonce=body.nonce,
                    timestamp=body.timestamp)


def _operation(body: RequestBody, node: PublicKey) -> type[Request]:
    """Checks 4-6 of §4: version, known operation, addressed to this node."""
    if body.version != PROTOCOL_VERSION:
        raise errors.UnsupportedVersion(
            f"protocol version {body.version} not supported (this node speaks {PROTOCOL_VERSION})"
        )
    cls = REQUESTS.get((body.version, body.op))
    if cls is None:
        raise errors.UnknownOperation(f"unknown operation {body.op!r}")
    if body.node is not None and body.node != node:
        raise errors.WrongNode("request is addressed to another node")
    return cls


def _check_window(body: RequestBody, now: float, window: float) -> None:
    if abs(body.timestamp - now) > window:
        raise errors.OutsideTimeWindow(
            f"timestamp is {body.timestamp - now:+.0f} s from the node's clock "
            f"(window +-{window:.0f} s)"
        )
