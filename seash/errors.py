"""Errors of the researchers' shell.

    SeashError                  base; every message is meant for the user as is
    ├── UsageError              the command line is wrong (unknown command, bad argument)
    ├── UnknownTarget           a target (``%N``, group, host:port:vessel) does not exist
    ├── IdentityError           no identity, unknown identity, no private key
    ├── KeyFileError            a key file is missing or malformed
    ├── StateFileError          a savestate file is unreadable, or the passphrase is wrong
    ├── NoVesselsFound          browse found nothing accessible for the identity
    └── DiscoveryError          the DHT could not be reached (no bootstrap answered)

Errors of a single node (unreachable, permission denied, file too large) are not raised by
the fan-out: they become failed ``NodeResult``s with a readable message (client.py).
"""

from __future__ import annotations


class SeashError(Exception):
    """Base class of every error raised by seash; ``str(error)`` is shown to the user."""


class UsageError(SeashError):
    """Raised when a command line cannot be parsed or names an unknown command."""


class UnknownTarget(SeashError):
    """Raised when a target name matches no vessel and no group."""


class IdentityError(SeashError):
    """Raised when a command needs an identity (or its private key) that is not loaded."""


class KeyFileError(SeashError):
    """Raised when a key file cannot be read or written."""


class StateFileError(SeashError):
    """Raised when a state file cannot be read, decrypted or parsed."""


class NoVesselsFound(SeashError):
    """Raised when browse finds no vessel the identity can use."""


class DiscoveryError(SeashError):
    """Raised when the DHT cannot be reached or no bootstrap address is configured."""
