"""Errors raised by the overlay package.

Exception tree::

    OverlayError                 base class of everything raised here
    ├── InvalidAdvert            remote data: an advertisement failed validation (has .reason)
    ├── BadAnswer                remote data: a peer's answer to one of our RPCs is malformed
    ├── OverlayUsageError        local misuse: bad argument, bad address, node not started
    └── DhtUnavailable           the network could not be reached (no bootstrap peer answered,
                                 status query timed out, UDP socket error)

``InvalidAdvert`` is what storing nodes and readers raise (and count) for forged, expired,
mis-bound, oversized or malformed records; its ``reason`` is one of ``REJECT_REASONS``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

RejectReason = Literal[
    "malformed",
    "oversize",
    "bad_version",
    "bad_signature",
    "wrong_key",
    "expired",
    "too_far_expiry",
    "stale_seq",
    "conflict",
    "key_full",
    "publisher_full",
    "store_full",
    "source_full",
]

REJECT_REASONS: tuple[RejectReason, ...] = (
    "malformed",
    "oversize",
    "bad_version",
    "bad_signature",
    "wrong_key",
    "expired",
    "too_far_expiry",
    "stale_seq",
    "conflict",
    "key_full",
    "publisher_full",
    "store_full",
    "source_full",
)


class OverlayError(Exception):
    """Base class of every error raised by the overlay package."""

    code: ClassVar[str] = "overlay_error"


class InvalidAdvert(OverlayError):
    """Raised when an advertisement record fails validation (bad bytes, signature, key, time)."""

    code: ClassVar[str] = "invalid_advert"

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason: RejectReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class BadAnswer(OverlayError):
    """Raised when a peer's answer to an RPC fails validation (types, sizes, ids, addresses)."""

    code: ClassVar[str] = "bad_answer"


class OverlayUsageError(OverlayError):
    """Raised when the caller misuses the API (bad address, bad argument, wrong state)."""

    code: ClassVar[str] = "usage_error"


class DhtUnavailable(OverlayError):
    """Raised when the DHT cannot be reached: no bootstrap peer answered or a query timed out."""

    code: ClassVar[str] = "dht_unavailable"
