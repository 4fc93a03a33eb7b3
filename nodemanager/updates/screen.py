"""Screening: a cheap look at a file from a holder *before* ngclient sees it.

ngclient decides what is authentic; screening only decides whom to keep asking. A file that
cannot be right (a root N+1 not signed by root N's threshold and its own, metadata not
signed by the role's keys in the trusted root, a version other than the one its name
says, a target whose sha256 is not the one in its name) proves its holder is lying: the
holder is dropped and the same file is asked of another holder, inside the same attempt.
So a lie costs one download, not one of the check's attempts. A valid but older or expired
timestamp is *stale*, not a lie (an honest holder that has not caught up serves one).

Anything screening passes still goes through ngclient's full verification.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root

from nodemanager.errors import UpdateError

VERSIONED = re.compile(r"metadata/([0-9]{1,12})\.(root|snapshot|targets)\.json")
TARGET = re.compile(r"targets/.+/([0-9a-f]{64})\.[^/]+")


class Lie(UpdateError):
    """The holder served a file that cannot be the right one."""


class Stale(UpdateError):
    """The holder served a valid timestamp that is older than ours or expired."""


@dataclass(slots=True)
class Screen:
    """Screens the files of one check attempt against what this node already trusts."""

    root: Metadata[Root]
    trusted_timestamp: int
    """The version of the timestamp ngclient trusts (0: none yet)."""
    now: datetime

    @classmethod
    def from_trusted(cls, root: bytes, timestamp: bytes | None, now: datetime) -> Screen:
        trusted = Metadata[Root].from_bytes(root)
        version = 0
        if timestamp is not None:
            try:
                version = int(Metadata.from_bytes(timestamp).signed.version)
            except (ValueError, TypeError, KeyError):
                version = 0
        return cls(root=trusted, trusted_timestamp=version, now=now)

    def check(self, path: str, data: bytes) -> object:
        """Raise Lie or Stale; return the version of ``timestamp.json``, the parsed metadata
        of ``N.root.json`` (``advance`` to it once chosen), None for other files."""
        target = TARGET.fullmatch(path)
        if target is not None:
            if hashlib.sha256(data).hexdigest() != target.group(1):
                raise Lie(f"{path}: content does not have the sha256 its name gives")
            return None
        if not path.startswith("metadata/"):
            return None
        md = _parse(path, data)
        role = md.signed.type
        versioned = VERSIONED.fullmatch(path)
        if versioned is not None:
            number, expected_role = int(versioned.group(1)), versioned.group(2)
            if role != expected_role or md.signed.version != number:
                raise Lie(f"{path}: holds {role} version {md.signed.version}")
            if role == "root":
                self._root(path, md)
                return md
        elif path != "metadata/timestamp.json" or role != "timestamp":
            return None  # not a file this client asks for by that name: ngclient decides
        self._signed(path, role, md)
        if role == "timestamp":
            if md.signed.version < self.trusted_timestamp:
                raise Stale(f"timestamp version {md.signed.version} is older than the trusted "
                            f"{self.trusted_timestamp}")
            if md.signed.is_expired(self.now):
                raise Stale(f"timestamp version {md.signed.version} has expired "
                            "(ExpiredMetadataError)")
            return int(md.signed.version)
        if md.signed.is_expired(self.now):
            raise Lie(f"{path}: expired")
        return None

    def _signed(self, path: str, role: str, md: Metadata[Any]) -> None:
        try:
            self.root.verify_delegate(role, md)
        except (RepositoryError, ValueError, KeyError, TypeError) as exc:
            raise Lie(f"{path}: not signed by the trusted {role} keys ({exc})") from exc

    def _root(self, path: str, md: Metadata[Any]) -> None:
        if md.signed.version != self.root.signed.version + 1:
            raise Lie(f"{path}: root version {md.signed.version} does not follow "
                      f"{self.root.signed.version}")
        try:
            self.root.verify_delegate("root", md)
            md.verify_delegate("root", md)
        except (RepositoryError, ValueError, KeyError, TypeError) as exc:
            raise Lie(f"{path}: not signed by the root thresholds ({exc})") from exc

    def advance(self, root: object) -> None:
        """Trust a screened ``N+1.root.json`` for the next probe (N+2) and metadata."""
        if isinstance(root, Metadata) and isinstance(root.signed, Root):
            self.root = root


def _parse(path: str, data: bytes) -> Metadata[Any]:
    try:
        return Metadata.from_bytes(data)
    except Exception as exc:  # tuf raises several kinds for malformed input
        raise Lie(f"{path}: not TUF metadata ({type(exc).__name__})") from exc
