from __future__ import annotations

from pathlib import Path

import pytest

import seattlecore
from seattlecore import (
    BadSignature,
    KeyFormatError,
    KeyPair,
    PublicKey,
    load_private,
    load_public,
    save_keypair,
)


def test_exports() -> None:
    assert set(seattlecore.__all__) == {
        "BadSignature", "CoreError", "KeyFormatError", "KeyPair", "PublicKey",
        "load_private", "load_public", "save_keypair", "write_atomic",
        "CliParser", "GlobalOption", "add_global_options", "json_option", "run_main", "subparser",
        "verbose_option",
    }
    public = {name for name in vars(seattlecore) if not name.startswith("_")}
    assert public - {"cli", "errors", "keys", "lazy"} == set(seattlecore.__all__)


def test_sign_verify_and_domain_separation() -> None:
    keys = KeyPair.generate()
    sig = keys.sign(b"dom-a", b"body")
    keys.public.verify(b"dom-a", b"body", sig)
    with pytest.raises(BadSignature):
        keys.public.verify(b"dom-b", b"body", sig)
    with pytest.raises(BadSignature):
        keys.public.verify(b"dom-a", b"bodx", sig)
    with pytest.raises(BadSignature):
        KeyPair.generate().public.verify(b"dom-a", b"body", sig)


def test_text_round_trip_and_errors() -> None:
    pub = KeyPair.generate().public
    assert PublicKey.from_text(pub.to_text()) == pub
    for bad in ["", "zz" * 32, "ab" * 31]:
        with pytest.raises(KeyFormatError):
            PublicKey.from_text(bad)


def test_key_files(tmp_path: Path) -> None:
    keys = KeyPair.generate()
    pub, priv = seattlecore.save_keypair(tmp_path, "alice", keys)
    assert priv.stat().st_mode & 0o777 == 0o600
    assert seattlecore.load_public(pub) == keys.public
    assert seattlecore.load_private(priv) == keys
    priv.write_text(f"  {keys.seed.hex().upper()}\r\n")  # whitespace and case are fine
    assert seattlecore.load_private(priv) == keys
    spaced = " ".join(keys.seed.hex()[i:i + 2] for i in range(0, 64, 2))
    for bad in ("nothex", keys.seed.hex()[:62], keys.seed.hex() + "00", spaced,
                keys.seed.hex()[:32] + "\n" + keys.seed.hex()[32:]):
        priv.write_text(bad)
        with pytest.raises(KeyFormatError):
            seattlecore.load_private(priv)
    with pytest.raises(KeyFormatError):
        seattlecore.load_public(tmp_path / "missing.publickey")


def test_swapped_key_files_are_named(tmp_path: Path) -> None:
    keys = KeyPair.generate()
    public, private = save_keypair(tmp_path, "planner", keys)
    with pytest.raises(KeyFormatError, match="is a public key file"):
        load_private(public)
    with pytest.raises(KeyFormatError, match="is a private key file"):
        load_public(private)
    other = KeyPair.generate()
    public.write_text(other.public.to_text() + "\n")  # overwritten by another identity's
    with pytest.raises(KeyFormatError, match="not one key pair"):
        load_private(private)
    renamed = tmp_path / "planner.key"
    renamed.write_text(keys.seed.hex())
    assert load_private(renamed).public == keys.public  # no sibling to compare: accepted
