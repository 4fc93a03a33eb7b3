"""State files (pure): encrypted for ``savestate`` / ``loadstate`` (pynacl), plain for
``set autosave on``.

Layout: ``MAGIC (8) | opslimit (u64) | memlimit (u64) | salt (16) | SecretBox(nonce+ciphertext)``.
The key is ``argon2id(passphrase, salt)``; the work factors are stored so files stay readable
if the defaults change.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from seash.errors import StateFileError

MAGIC = b"SEASHST1"
_HEAD = struct.Struct(">QQ")
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def _key(passphrase: str, salt: bytes, ops: int, mem: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt,
                                    opslimit=ops, memlimit=mem)


def encrypt_state(plain: bytes, passphrase: str, *, opslimit: int = OPSLIMIT,
                  memlimit: int = MEMLIMIT) -> bytes:
    """Encrypt ``plain`` under ``passphrase``."""
    if not passphrase:
        raise StateFileError("an empty passphrase is not allowed")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_key(passphrase, salt, opslimit, memlimit))
    return MAGIC + _HEAD.pack(opslimit, memlimit) + salt + bytes(box.encrypt(plain))


def decrypt_state(blob: bytes, passphrase: str) -> bytes:
    """Inverse of ``encrypt_state``; raise StateFileError on a wrong passphrase or damage."""
    head = len(MAGIC) + _HEAD.size
    salt_end = head + nacl.pwhash.argon2id.SALTBYTES
    if not blob.startswith(MAGIC) or len(blob) < salt_end:
        raise StateFileError("not a seash state file")
    ops, mem = _HEAD.unpack(blob[len(MAGIC):head])
    if ops > 64 * OPSLIMIT or mem > 16 * MEMLIMIT:
        raise StateFileError("state file asks for unreasonable key-derivation work")
    box = nacl.secret.SecretBox(_key(passphrase, blob[head:salt_end], ops, mem))
    try:
        return bytes(box.decrypt(blob[salt_end:]))
    except nacl.exceptions.CryptoError as exc:
        raise StateFileError("wrong passphrase or damaged state file") from exc


# ---- autosave (``set autosave on``): plain JSON in the keys dir, mode 0600 ----

AUTOSAVE_MAGIC = b"seash-autosave 1\n"
MAX_AUTOSAVE_BYTES = 64 * 1024 * 1024


def encode_autosave(state: dict[str, Any]) -> bytes:
    """The autosave file's bytes for a ``Session.to_dict()``.

    Not encrypted: it sits beside the ``NAME.privatekey`` files it may repeat, with the same
    mode (0600), and is written after every command (a passphrase each time is no option).
    """
    return AUTOSAVE_MAGIC + json.dumps(state, sort_keys=True).encode()


def decode_autosave(blob: bytes) -> dict[str, Any]:
    """Inverse of ``encode_autosave``; StateFileError on anything else (a damaged file)."""
    if not blob.startswith(AUTOSAVE_MAGIC):
        raise StateFileError("not a seash autosave file")
    if len(blob) > MAX_AUTOSAVE_BYTES:
        raise StateFileError(f"larger than {MAX_AUTOSAVE_BYTES} bytes")
    try:
        state = json.loads(blob[len(AUTOSAVE_MAGIC):])
    except (ValueError, RecursionError) as exc:
        raise StateFileError(f"damaged ({exc})") from exc
    if not isinstance(state, dict):
        raise StateFileError("damaged (not a JSON object)")
    return state
