"""Software updates, the pure part: versions, release records, decisions, jitter, status.

The updater (``updater.py``) does the I/O; TUF (``tufclient.py``) decides what is authentic.
What is left is policy, and it is here: a verified release is installed only if it is newer
than the running version (TUF guarantees fresh metadata, not a newer package), built for
this interpreter and machine, and not marked bad by an earlier failed trial.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nodemanager.errors import UpdateError
from seattlecore import PublicKey

RELEASE_TARGET = "seattle-p2p/latest.json"
"""The TUF target name of the release record."""
WHEEL_DIR = "wheels"
"""The TUF target directory of the wheels."""
RELEASE_FORMAT = "seattle-release-v1"
CHANNEL_DOMAIN = b"seattle/update/v1\x00"
ADVERT_PREFIX = "sw-"
MAX_WHEELS = 200
MAX_RELEASE_BYTES = 64 * 1024

Decision = Literal["install", "current", "older", "bad", "platform"]


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)``; releases are dotted numbers (UpdateError otherwise)."""
    parts = text.split(".")
    if not 0 < len(text) <= 32 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise UpdateError(f"bad release version {text[:40]!r}")
    return tuple(int(p) for p in parts)


def is_newer(candidate: str, running: str) -> bool:
    """True if ``candidate`` is a strictly higher version (trailing zeros do not count)."""
    def norm(v: str) -> tuple[int, ...]:
        parts = list(parse_version(v))
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return tuple(parts)
    return norm(candidate) > norm(running)


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """The release record (target ``RELEASE_TARGET``): version V is exactly these wheels.

    Written by the release tooling (installer/release/tufrepo.py, ``to_bytes``), read by
    the updater (``decode_release``)."""

    version: str
    wheels: tuple[str, ...]
    python: str
    """``major.minor`` of the interpreter the dependency wheels were downloaded for."""
    machine: str
    published: float | None = None
    """Wall-clock time of publication (informational: TUF decides freshness)."""

    def to_bytes(self) -> bytes:
        body = {"format": RELEASE_FORMAT, "version": self.version, "wheels": list(self.wheels),
                "python": self.python, "machine": self.machine, "published": self.published}
        return json.dumps(body, sort_keys=True, indent=1).encode()


def _check_wheel_name(name: object) -> str:
    if (type(name) is not str or not name.endswith(".whl") or "/" in name or name.startswith(".")
            or len(name) > 200):
        raise UpdateError(f"bad wheel name in release record: {str(name)[:80]!r}")
    return name


def decode_release(data: bytes) -> Release:
    """Parse a release record (already verified by TUF; still shape-checked)."""
    if len(data) > MAX_RELEASE_BYTES:
        raise UpdateError("release record too large")
    try:
        raw: Any = json.loads(data)
    except ValueError as exc:
        raise UpdateError("release record is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("format") != RELEASE_FORMAT:
        raise UpdateError("not a seattle release record")
    wheels = raw.get("wheels")
    if not isinstance(wheels, list) or not 0 < len(wheels) <= MAX_WHEELS:
        raise UpdateError("release record lists no wheels")
    version, python, machine = raw.get("version"), raw.get("python"), raw.get("machine")
    if type(version) is not str or type(python) is not str or type(machine) is not str:
        raise UpdateError("release record lacks version/python/machine")
    parse_version(version)
    published = raw.get("published")
    return Release(version=version, wheels=tuple(_check_wheel_name(w) for w in wheels),
                   python=python, machine=machine,
                   published=float(published) if isinstance(published, int | float) else None)


def decide(release: Release, *, running: str, bad: frozenset[str], python: str,
           machine: str) -> Decision:
    """What to do with a verified release."""
    if release.python != python or release.machine != machine:
        return "platform"
    if release.version in bad:
        return "bad"
    if release.version == running or not is_newer(release.version, running):
        return "current" if not is_newer(running, release.version) else "older"
    return "install"


def next_delay(interval: float, rng: random.Random) -> float:
    """Seconds to the next check: ``interval`` jittered uniformly by +-50 %."""
    return interval * (0.5 + rng.random())


def channel_key(root: bytes) -> PublicKey:
    """The DHT key under which holders of this repository's releases advertise.

    Derived from the trust anchor (the bundle's first root metadata), so deployments with
    different roots never mix. It is not anyone's key: adverts are signed by node keys.
    """
    return PublicKey(hashlib.blake2b(CHANNEL_DOMAIN + root, digest_size=32).digest())


def advert_name(version: str) -> str:
    """The advert's vessel field naming the version a holder serves (``sw-2``)."""
    return ADVERT_PREFIX + version


def advertised_version(name: str) -> str | None:
    return name[len(ADVERT_PREFIX):] if name.startswith(ADVERT_PREFIX) else None


@dataclass(slots=True, kw_only=True)
class UpdateStatus:
    """What the node's status call and ``seattle-installer status`` report about updates."""

    running: str
    latest_verified: str | None = None
    last_check_at: float | None = None
    last_result: str = "not checked yet"
    checks: int = 0
    failures: int = 0
    served_bytes: int = 0
    served_files: int = 0
    trial: dict[str, Any] | None = None
    excluded_peers: list[str] = field(default_factory=list)
    """Holders dropped as slow or lying in the running (else the last) check."""
    current_check: dict[str, Any] | None = None
    """The check running now: number, phase, elapsed, attempts, holders [{holder, state,
    delivered, not_held, reason}] (``holders.CheckProgress``)."""
    last_check: dict[str, Any] | None = None
    """The same for the last check that ended, plus its ``result``."""
    last_good_check: dict[str, Any] | None = None
    """The last check that verified a release: number, at, elapsed, result."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
