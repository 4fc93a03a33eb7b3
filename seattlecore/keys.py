"""Ed25519 identities: generation, text form, key files, domain-separated signing.

A public key's text form is 64 lowercase hex digits (the raw 32 bytes). Key files follow
Seattle's convention: ``NAME.publickey`` holds the public key text, ``NAME.privatekey``
holds the 32-byte Ed25519 seed (RFC 8032's private key) as 64 hex digits (mode 0600); both
are one line, written lowercase with a newline; readers ignore surrounding whitespace and
accept either case. Files are written atomically.

Every signature in the project is over ``domain + len(body) (8 bytes BE) + body`` so a
signature made for one purpose (a request, an advert, a manifest) is never valid for another.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.signing

from seattlecore.errors import BadSignature, KeyFormatError

PUBLIC_KEY_BYTES = 32
HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
SIGNATURE_BYTES = 64


def _framed(domain: bytes, body: bytes) -> bytes:
    return domain + struct.pack(">Q", len(body)) + body


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key (32 raw bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != PUBLIC_KEY_BYTES:
            raise KeyFormatError("an Ed25519 public key is exactly 32 bytes")

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """Parse the 64-hex-digit text form."""
        text = text.strip()
        if len(text) != 2 * PUBLIC_KEY_BYTES:
            raise KeyFormatError(f"public key must be 64 hex digits, got {len(text)} characters")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise KeyFormatError("public key is not hex") from exc

    def to_text(self) -> str:
        return self.raw.hex()

    def short(self) -> str:
        """A short human label (first 8 hex digits)."""
        return self.raw.hex()[:8]

    def verify(self, domain: bytes, body: bytes, signature: bytes) -> None:
        """Check ``signature`` over ``body`` in ``domain``; raise BadSignature if it fails."""
        if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
            raise BadSignature("signature must be 64 bytes")
        try:
            nacl.signing.VerifyKey(self.raw).verify(_framed(domain, body), signature)
        except nacl.exceptions.BadSignatureError as exc:
            raise BadSignature("signature does not verify") from exc

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 signing key and its public half."""

    seed: bytes
    _signing: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.seed) is not bytes or len(self.seed) != 32:
            raise KeyFormatError("an Ed25519 seed is exactly 32 bytes")
        object.__setattr__(self, "_signing", nacl.signing.SigningKey(self.seed))

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public(self) -> PublicKey:
        return PublicKey(bytes(self._signing.verify_key))

    def sign(self, domain: bytes, body: bytes) -> bytes:
        """Return the 64-byte signature of ``body`` in ``domain``."""
        signed = self._signing.sign(_framed(domain, body))
        return bytes(signed.signature)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.short()}...)"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a fsynced temp file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_keypair(directory: Path, name: str, keys: KeyPair) -> tuple[Path, Path]:
    """Write ``NAME.publickey`` and ``NAME.privatekey`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pub = directory / f"{name}.publickey"
    priv = directory / f"{name}.privatekey"
    write_atomic(priv, (keys.seed.hex() + "\n").encode(), mode=0o600)
    write_atomic(pub, (keys.public.to_text() + "\n").encode())
    return pub, priv


def load_public(path: Path) -> PublicKey:
    """Read a ``.publickey`` file (a ``.privatekey`` file is refused: both are 64 hex digits,
    so a swapped file would otherwise pass as some other key)."""
    if path.suffix == ".privatekey":
        raise KeyFormatError(f"{path} is a private key file; a public key (NAME.publickey) "
                             "is needed here")
    try:
        return PublicKey.from_text(path.read_text())
    except OSError as exc:
        raise KeyFormatError(f"cannot read {path}: {exc.strerror}") from exc
    except KeyFormatError as exc:
        raise KeyFormatError(f"{path}: {exc}") from exc


def load_private(path: Path) -> KeyPair:
    """Read a ``.privatekey`` file.

    A ``.publickey`` file is refused, and so is a ``NAME.privatekey`` whose ``NAME.publickey``
    beside it holds another key (swapped or overwritten files): either would sign with a key
    nobody expects.
    """
    if path.suffix == ".publickey":
        raise KeyFormatError(f"{path} is a public key file; the private key (NAME.privatekey) "
                             "is needed here")
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFormatError(f"cannot read {path}: {exc.strerror}") from exc
    if not HEX64_RE.fullmatch(text):
        raise KeyFormatError(f"{path} is not a private key (64 hex digits on one line)")
    keys = KeyPair(bytes.fromhex(text))
    _check_sibling(path, keys)
    return keys


def _check_sibling(path: Path, keys: KeyPair) -> None:
    sibling = path.with_suffix(".publickey")
    if path.suffix != ".privatekey" or not sibling.is_file():
        return
    try:
        public = PublicKey.from_text(sibling.read_text())
    except (OSError, KeyFormatError):
        return
    if public != keys.public:
        raise KeyFormatError(f"{path} and {sibling} are not one key pair (swapped or "
                             "overwritten key files?)")
