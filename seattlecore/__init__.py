"""Small shared core: Ed25519 identities and key files."""

from seattlecore.errors import BadSignature, CoreError, KeyFormatError
from seattlecore.keys import (
    KeyPair,
    PublicKey,
    load_private,
    load_public,
    save_keypair,
    write_atomic,
)

__all__ = [
    "BadSignature",
    "CoreError",
    "KeyFormatError",
    "KeyPair",
    "PublicKey",
    "load_private",
    "load_public",
    "save_keypair",
    "write_atomic",
]
