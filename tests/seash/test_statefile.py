"""statefile.py: passphrase encryption of saved sessions."""

from __future__ import annotations

import nacl.pwhash
import pytest

from seash.errors import StateFileError
from seash.statefile import decrypt_state, encrypt_state

FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def test_round_trip_and_wrong_passphrase() -> None:
    blob = encrypt_state(b'{"secret": 1}', "correct horse", **FAST)
    assert b"secret" not in blob
    assert decrypt_state(blob, "correct horse") == b'{"secret": 1}'
    with pytest.raises(StateFileError, match="wrong passphrase"):
        decrypt_state(blob, "wrong")
    with pytest.raises(StateFileError, match="wrong passphrase"):
        decrypt_state(blob[:-1] + bytes([blob[-1] ^ 1]), "correct horse")


def test_garbage_and_empty_passphrase() -> None:
    with pytest.raises(StateFileError, match="not a seash state file"):
        decrypt_state(b"hello", "x")
    with pytest.raises(StateFileError):
        encrypt_state(b"x", "")
