"""Small shared core: Ed25519 identities and key files; console-script conventions."""

from seattlecore.cli import (
    CliParser,
    GlobalOption,
    add_global_options,
    json_option,
    run_main,
    subparser,
    verbose_option,
)
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
    "CliParser",
    "CoreError",
    "GlobalOption",
    "KeyFormatError",
    "KeyPair",
    "PublicKey",
    "add_global_options",
    "json_option",
    "load_private",
    "load_public",
    "run_main",
    "save_keypair",
    "subparser",
    "verbose_option",
    "write_atomic",
]
