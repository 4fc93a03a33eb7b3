"""Custom installer bundles: a signed manifest in a small ``.tar.gz`` (pure: bytes in, bytes out).

A bundle holds exactly three files under ``seattle-bundle/``:

- ``manifest.json``: the planner's vessel shares and bootstrap peers (canonical JSON);
- ``planner.publickey``: the planner's Ed25519 public key (64 hex digits);
- ``manifest.sig``: the planner's signature of the exact ``manifest.json`` bytes in the
  domain ``seattle-installer-manifest-v1`` (hex).

``open_bundle`` bounds every size before decompressing or parsing, verifies the signature over
the received bytes before decoding them, then checks that the manifest names the same planner.
Without ``trust`` this is trust on first use: a bundle signed by *anyone* verifies. With
``trust`` the planner key must equal it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

from installer.errors import BundleError, SpecError, UntrustedPlanner
from installer.planner.spec import VesselShare, check_bootstrap
from seattlecore import CoreError, KeyPair, PublicKey

DOMAIN = b"seattle-installer-manifest-v1"
FORMAT = "seattle-installer-bundle"
VERSION = 1
SOFTWARE_VERSION = 2
"""Manifest version of bundles that carry software (``payload`` and ``software``)."""
ROOT = "seattle-bundle"
MANIFEST = f"{ROOT}/manifest.json"
SIGNATURE = f"{ROOT}/manifest.sig"
PLANNER = f"{ROOT}/planner.publickey"
MEMBERS = (MANIFEST, PLANNER, SIGNATURE)
MAX_BUNDLE = 256 * 1024
"""Largest bundle file accepted (compressed)."""
MAX_RAW = 1024 * 1024
"""Largest decompressed tar accepted."""
MAX_MEMBER = 128 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadFile:
    """One file shipped beside the signed bundle (a wheel, the TUF root): name, size, sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Software:
    """The software a self-contained bundle installs (``project==version`` from its wheels)."""

    project: str
    version: str
    no_index: bool = True
    """Every dependency is in the payload; False: only the project's wheel (index at install)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a planner decided: vessel shares (incl. the reserved one) and bootstrap peers."""

    planner: PublicKey
    vessels: tuple[VesselShare, ...]
    bootstrap: tuple[str, ...]
    build_id: str
    created: float
    payload: tuple[PayloadFile, ...] = ()
    software: Software | None = None

    def __post_init__(self) -> None:
        if sum(v.percent for v in self.vessels) != 100:
            raise SpecError("vessel shares must add up to 100 % (with the reserved vessel)")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedBundle:
    """A verified bundle: its manifest and the digest of the exact manifest bytes."""

    manifest: Manifest
    digest: str
    """sha256 hex of ``manifest.json``: the bundle's identity for idempotent installs."""


def encode_manifest(manifest: Manifest) -> bytes:
    """Canonical JSON bytes of a manifest."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "build_id": manifest.build_id,
        "created": manifest.created,
        "planner": manifest.planner.to_text(),
        "bootstrap": list(manifest.bootstrap),
        "vessels": [
            {"percent": v.percent, "owner": v.owner.to_text(),
             "users": [u.to_text() for u in v.users], "reserved": v.reserved,
             **({"pool": True} if v.pool else {})}
            for v in manifest.vessels
        ],
    }
    if manifest.software is not None:
        body["version"] = SOFTWARE_VERSION
        body["software"] = {"project": manifest.software.project,
                            "version": manifest.software.version,
                            "no_index": manifest.software.no_index}
        body["payload"] = [{"name": f.name, "size": f.size, "sha256": f.sha256}
                           for f in manifest.payload]
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_manifest(data: bytes) -> Manifest:
    """Inverse of ``encode_manifest``; raise BundleError on any bad shape."""
    try:
        raw: Any = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise BundleError("not a seattle installer manifest")
        if raw.get("version") not in (VERSION, SOFTWARE_VERSION):
            raise BundleError(f"unsupported manifest version {raw.get('version')!r}")
        vessels = tuple(
            VesselShare(percent=v["percent"], owner=PublicKey.from_text(v["owner"]),
                        users=tuple(PublicKey.from_text(u) for u in v["users"]),
                        reserved=bool(v["reserved"]), pool=v.get("pool", False) is True)
            for v in raw["vessels"]
        )
        return Manifest(planner=PublicKey.from_text(raw["planner"]), vessels=vessels,
                        bootstrap=check_bootstrap(raw["bootstrap"]),
                        build_id=str(raw["build_id"]), created=float(raw["created"]),
                        **_decode_software(raw))
    except BundleError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, CoreError, SpecError) as exc:
        raise BundleError(f"malformed manifest: {exc}") from exc


def _decode_software(raw: dict[str, Any]) -> dict[str, Any]:
    """The v2 fields (none for a v1 manifest); KeyError/TypeError on a bad shape."""
    if raw["version"] == VERSION:
        return {}
    soft = raw["software"]
    software = Software(project=str(soft["project"]), version=str(soft["version"]),
                        no_index=bool(soft["no_index"]))
    payload = tuple(PayloadFile(name=str(f["name"]), size=int(f["size"]), sha256=str(f["sha256"]))
                    for f in raw["payload"])
    return {"software": software, "payload": payload}


def new_manifest(planner: PublicKey, vessels: tuple[VesselShare, ...],
                 bootstrap: tuple[str, ...], *, now: float, build_id: str | None = None,
                 payload: tuple[PayloadFile, ...] = (), software: Software | None = None) -> Manifest:
    """A manifest with a fresh random build id (40 hex digits, as Seattle's builder)."""
    return Manifest(planner=planner, vessels=vessels, bootstrap=bootstrap,
                    build_id=build_id or os.urandom(20).hex(), created=round(now, 3),
                    payload=payload, software=software)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_bundle(manifest: Manifest, planner: KeyPair) -> bytes:
    """Sign ``manifest`` with the planner's key and pack the bundle (a ``.tar.gz``)."""
    if planner.public != manifest.planner:
        raise SpecError("the manifest names a different planner than the signing key")
    body = encode_manifest(manifest)
    signature = planner.sign(DOMAIN, body)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, body, manifest.created)
        _add(tar, PLANNER, (manifest.planner.to_text() + "\n").encode(), manifest.created)
        _add(tar, SIGNATURE, (signature.hex() + "\n").encode(), manifest.created)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(buffer.getvalue()) + compressor.flush()


def _decompress(data: bytes) -> bytes:
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE} bytes")
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(data, MAX_RAW)
    except zlib.error as exc:
        raise BundleError(f"bundle is not a gzip file or is corrupt: {exc}") from exc
    if inflater.unconsumed_tail:
        raise BundleError("bundle expands to more than the allowed size")
    if not inflater.eof:
        raise BundleError("bundle is truncated")
    if inflater.unused_data:
        raise BundleError("bundle has trailing data")
    return raw


def _members(raw: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if info.name not in MEMBERS or not info.isreg() or info.name in found:
                    raise BundleError(f"unexpected entry {info.name!r} in bundle")
                if info.size > MAX_MEMBER:
                    raise BundleError(f"{info.name} is too large")
                handle = tar.extractfile(info)
                assert handle is not None  # a regular file
                found[info.name] = handle.read()
                if len(found[info.name]) != info.size:
                    raise BundleError(f"{info.name} is truncated")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"bundle is not a valid archive: {exc}") from exc
    missing = [name for name in MEMBERS if name not in found]
    if missing:
        raise BundleError(f"bundle lacks {', '.join(missing)}")
    return found


def open_bundle(data: bytes, *, trust: PublicKey | None = None) -> OpenedBundle:
    """Verify a bundle and return its manifest; raise BundleError (or UntrustedPlanner)."""
    members = _members(_decompress(data))
    try:
        planner = PublicKey.from_text(members[PLANNER].decode("ascii"))
        signature = bytes.fromhex(members[SIGNATURE].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError, CoreError) as exc:
        raise BundleError(f"bundle has a malformed key or signature: {exc}") from exc
    if trust is not None and planner != trust:
        raise UntrustedPlanner(f"bundle is signed by planner {planner.short()}..., "
                               f"not the trusted {trust.short()}...")
    body = members[MANIFEST]
    try:
        planner.verify(DOMAIN, body, signature)
    except CoreError as exc:
        raise BundleError("manifest signature does not verify: the bundle was altered "
                          "or signed with another key") from exc
    manifest = decode_manifest(body)
    if manifest.planner != planner:
        raise BundleError("manifest names a different planner than the one that signed it")
    return OpenedBundle(manifest=manifest, digest=hashlib.sha256(body).hexdigest())
