"""Errors of the shared core.

    CoreError
    ├── KeyFormatError      a key file or key text is malformed
    └── BadSignature        a signature does not verify
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error raised by seattlecore."""


class KeyFormatError(CoreError):
    """Raised when a key file or key text is not a valid Ed25519 key."""


class BadSignature(CoreError):
    """Raised when a signature does not verify against the claimed key."""
