"""The release repository: TUF metadata (python-tuf ``tuf.api.metadata``) over a directory.

Layout of ``REPO`` (consistent snapshots: every file but ``timestamp.json`` is immutable)::

    REPO/metadata/N.root.json        every root version, each signed by old and new roots
    REPO/metadata/N.targets.json     targets: the release record and its wheels
    REPO/metadata/N.snapshot.json    pins the targets version
    REPO/metadata/timestamp.json     pins the snapshot version (re-signed often)
    REPO/targets/seattle-p2p/<sha256>.latest.json   the release record (``Release``)
    REPO/targets/wheels/<sha256>.<wheel>            every wheel of the last two releases

Roles and keys (Ed25519, ``NAME.privatekey`` files as every key in this project):
``root`` (threshold ``k`` of ``n`` keys ``root-1..n``, kept offline: needed only by ``init``
and root rotations), ``targets`` (signs releases), ``snapshot`` and ``timestamp`` (online:
the timestamp must be re-signed before it expires, ``release timestamp``). Signing uses
pynacl (``NaclSigner``); clients verify with securesystemslib's own Ed25519 code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.signing
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature, Signer, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from installer.errors import InstallError
from nodemanager.updates.updatecore import RELEASE_TARGET, WHEEL_DIR, Release, decode_release
from seattlecore import KeyPair, load_private, save_keypair

EXPIRY_DAYS = {"root": 365.0, "targets": 90.0, "snapshot": 7.0, "timestamp": 1.0}
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")


class ReleaseError(InstallError):
    """Raised when the release repository or its keys are missing, inconsistent or misused."""


def tuf_key(public: bytes) -> SSlibKey:
    """The TUF form of an Ed25519 public key (keyid: sha256 of its canonical JSON)."""
    keyval = {"public": public.hex()}
    body = {"keytype": "ed25519", "scheme": "ed25519", "keyval": keyval}
    keyid = hashlib.sha256(str(encode_canonical(body)).encode()).hexdigest()
    return SSlibKey(keyid, "ed25519", "ed25519", keyval)


class NaclSigner(Signer):
    """A securesystemslib ``Signer`` over one of our Ed25519 key pairs (pynacl)."""

    def __init__(self, keys: KeyPair) -> None:
        self._signing = nacl.signing.SigningKey(keys.seed)
        self._public = tuf_key(keys.public.raw)

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri: str, public_key: Key,
                          secrets_handler: Any = None) -> Signer:
        raise ValueError("NaclSigner is built from key files, not URIs")

    @property
    def public_key(self) -> Key:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        return Signature(self._public.keyid, self._signing.sign(payload).signature.hex())


def expiry(role: str, now: datetime, days: dict[str, float] | None = None) -> datetime:
    return (now + timedelta(days=(days or EXPIRY_DAYS)[role])).replace(microsecond=0)


class Repository:
    """Reads and writes the metadata of one repository directory (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self.metadata = root / "metadata"
        self.targets_dir = root / "targets"

    def latest(self, role: str) -> Metadata[Any]:
        """The newest ``N.role.json`` (or ``timestamp.json``)."""
        if role == "timestamp":
            path = self.metadata / "timestamp.json"
        else:
            versions = sorted(int(p.name.split(".")[0])
                              for p in self.metadata.glob(f"*.{role}.json"))
            if not versions:
                raise ReleaseError(f"no {role} metadata in {self.metadata} (run 'release init')")
            path = self.metadata / f"{versions[-1]}.{role}.json"
        try:
            return Metadata.from_bytes(path.read_bytes())
        except OSError as exc:
            raise ReleaseError(f"cannot read {path}: {exc}") from exc

    def write(self, md: Metadata[Any]) -> Path:
        name = ("timestamp.json" if md.signed.type == "timestamp"
                else f"{md.signed.version}.{md.signed.type}.json")
        path = self.metadata / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_bytes(md.to_bytes())
        tmp.replace(path)
        return path

    def add_target_file(self, path: str, data: bytes) -> TargetFile:
        """Store ``data`` as target ``path`` (hash-prefixed name); return its TargetFile."""
        info = TargetFile.from_data(path, data, ["sha256"])
        directory, _, base = path.rpartition("/")
        out = self.targets_dir / directory / f"{info.hashes['sha256']}.{base}"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            out.write_bytes(data)
        return info


def load_signer(keys_dir: Path, name: str) -> NaclSigner:
    try:
        return NaclSigner(load_private(keys_dir / f"{name}.privatekey"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot load key {keys_dir / name}.privatekey: {exc}") from exc


def init_repository(repo: Path, root_keys: Path, online_keys: Path, *, root_count: int = 1,
                    root_threshold: int = 1, now: datetime | None = None) -> Path:
    """New keys and ``1.root.json`` (plus empty targets/snapshot/timestamp); return the root."""
    if not 1 <= root_threshold <= root_count:
        raise ReleaseError("root threshold must be between 1 and the number of root keys")
    store = Repository(repo)
    if store.metadata.exists() and any(store.metadata.glob("*.root.json")):
        raise ReleaseError(f"{repo} already holds a repository")
    store.metadata.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    root = Root(expires=expiry("root", now))
    signers = []
    for i in range(1, root_count + 1):
        pair = KeyPair.generate()
        save_keypair(root_keys, f"root-{i}", pair)
        signers.append(NaclSigner(pair))
        root.add_key(signers[-1].public_key, "root")
    root.roles["root"].threshold = root_threshold
    for role in ("targets", "snapshot", "timestamp"):
        pair = KeyPair.generate()
        save_keypair(online_keys, role, pair)
        root.add_key(NaclSigner(pair).public_key, role)
    md = Metadata(root)
    for signer in signers[:root_threshold]:
        md.sign(signer, append=True)
    path = store.write(md)
    publish(store, online_keys, [], now=now)
    return path


def publish(store: Repository, keys_dir: Path, targets: Iterable[TargetFile], *,
            now: datetime | None = None, days: dict[str, float] | None = None) -> int:
    """New targets (exactly ``targets``), snapshot and timestamp; return the targets version."""
    now = now or datetime.now(UTC)
    versions = sorted(int(p.name.split(".")[0]) for p in store.metadata.glob("*.targets.json"))
    version = (versions[-1] + 1) if versions else 1
    new_targets = Metadata(Targets(version=version, expires=expiry("targets", now, days),
                                   targets={t.path: t for t in targets}))
    new_targets.sign(load_signer(keys_dir, "targets"))
    store.write(new_targets)
    snap_version = version
    snapshot = Metadata(Snapshot(version=snap_version, expires=expiry("snapshot", now, days),
                                 meta={"targets.json": MetaFile(version)}))
    snapshot.sign(load_signer(keys_dir, "snapshot"))
    store.write(snapshot)
    resign_timestamp(store, keys_dir, now=now, days=days)
    return version


def resign_timestamp(store: Repository, keys_dir: Path, *, now: datetime | None = None,
                     days: dict[str, float] | None = None) -> int:
    """A fresh timestamp (version + 1) for the newest snapshot; return its version."""
    now = now or datetime.now(UTC)
    snapshot = store.latest("snapshot")
    try:
        version = int(store.latest("timestamp").signed.version) + 1
    except ReleaseError:
        version = 1
    stamp = Metadata(Timestamp(version=version, expires=expiry("timestamp", now, days),
                               snapshot_meta=MetaFile(snapshot.signed.version)))
    stamp.sign(load_signer(keys_dir, "timestamp"))
    store.write(stamp)
    return version


def previous_release(store: Repository) -> Release | None:
    """The release record the newest targets metadata names, if any."""
    try:
        info = store.latest("targets").signed.targets.get(RELEASE_TARGET)
    except ReleaseError:
        return None
    if info is None:
        return None
    folder, _, name = RELEASE_TARGET.rpartition("/")
    data = (store.targets_dir / folder / f"{info.hashes['sha256']}.{name}").read_bytes()
    return decode_release(data)


def add_release(repo: Path, keys_dir: Path, release: Release, wheels: Sequence[Path], *,
                now: datetime | None = None, days: dict[str, float] | None = None) -> int:
    """Publish ``release`` (its wheels + record), keeping the previous release's wheels."""
    store = Repository(repo)
    old = previous_release(store)
    targets: dict[str, TargetFile] = {}
    if old is not None:
        current = store.latest("targets").signed.targets
        for name in old.wheels:
            key = f"{WHEEL_DIR}/{name}"
            if key in current:
                targets[key] = current[key]
    for path in wheels:
        targets[f"{WHEEL_DIR}/{path.name}"] = store.add_target_file(f"{WHEEL_DIR}/{path.name}",
                                                                    path.read_bytes())
    record = store.add_target_file(RELEASE_TARGET, release.to_bytes())
    record.unrecognized_fields["custom"] = {"version": release.version}
    targets[RELEASE_TARGET] = record
    return publish(store, keys_dir, targets.values(), now=now, days=days)
