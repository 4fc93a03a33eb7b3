"""Loading what a researcher has on disk: identities (key files) and seash's saved groups."""

from __future__ import annotations

import json
from pathlib import Path

from seash.errors import StateFileError, UnknownTarget
from seash.experiment.model import ExperimentError, Vessel
from seash.session import ALL, Session
from seash.statefile import decrypt_state
from seattlecore import CoreError, KeyPair, PublicKey, load_private, load_public


def _key_file(name: str | Path, keys: Path | None, suffix: str) -> Path:
    path = Path(name).expanduser()
    if path.suffix in (".publickey", ".privatekey"):
        path = path.with_suffix("")
    if keys is not None and "/" not in str(name):
        path = keys.expanduser() / path.name
    return path.with_name(path.name + suffix)


def load_identity(name: str | Path, keys: Path | None = None) -> KeyPair:
    """The key pair ``NAME.privatekey`` (in ``keys``, else the path as given), as seash's
    ``genkeys`` writes it; ExperimentError says which file is missing or bad."""
    path = _key_file(name, keys, ".privatekey")
    try:
        return load_private(path)
    except (OSError, CoreError) as exc:  # CoreError says which file and why
        raise ExperimentError(f"private key of {name}: {exc}") from exc


def load_public_key(name: str | Path, keys: Path | None = None) -> PublicKey:
    """The public key ``NAME.publickey`` (another researcher's, a group's)."""
    path = _key_file(name, keys, ".publickey")
    try:
        return load_public(path)
    except (OSError, CoreError) as exc:  # CoreError says which file and why
        raise ExperimentError(f"public key of {name}: {exc}") from exc


def load_group(state: Path, passphrase: str, group: str = ALL) -> list[Vessel]:
    """The vessels of a group (``%all``: every vessel) in a seash ``savestate`` file."""
    try:
        plain = decrypt_state(state.read_bytes(), passphrase)
        session = Session.from_dict(json.loads(plain))
    except OSError as exc:
        raise ExperimentError(f"cannot read {state}: {exc.strerror}") from exc
    except StateFileError as exc:
        raise ExperimentError(f"{state}: {exc}") from exc
    except (KeyError, ValueError, TypeError, CoreError) as exc:
        raise ExperimentError(f"{state}: malformed state ({exc})") from exc
    try:
        ids = session.resolve(group)
    except UnknownTarget as exc:
        raise ExperimentError(f"{state}: {exc}") from exc
    refs = [session.vessels[n] for n in ids]
    return [Vessel(r.host, r.port, r.vessel, r.node_key) for r in refs]
