"""Session commands: ``set timeout/uploadrate/concurrency/bootstrap``, ``show timeout``,
``savestate`` and ``loadstate``; variables (``set NAME VALUE``, ``unset``, ``show
variables``) and ``set autosave on|off`` with the autosave file's reading and writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import trio

from seash.commands import Args, did_you_mean
from seash.errors import StateFileError, UsageError
from seash.executor import Executor
from seash.parse import (
    MAX_VARIABLE_VALUE,
    MAX_VARIABLES,
    check_variable_name,
    parse_bool,
    parse_hostport,
    parse_positive,
)
from seash.session import Session
from seash.statefile import decode_autosave, decrypt_state, encode_autosave, encrypt_state
from seattlecore import CoreError, write_atomic

log = logging.getLogger(__name__)
AUTOSAVE_FILE = "autosave.json"
SHOWN_VALUE = 200
"""Characters of a value ``show variables`` prints before cutting it short."""


async def set_timeout(ex: Executor, args: Args) -> None:
    ex.session.settings.timeout = parse_positive(args.need("seconds"), "timeout")


async def set_uploadrate(ex: Executor, args: Args) -> None:
    ex.session.settings.uploadrate = parse_positive(args.need("rate"), "uploadrate")


async def set_concurrency(ex: Executor, args: Args) -> None:
    ex.session.settings.concurrency = int(parse_positive(args.need("count"), "concurrency"))


async def set_bootstrap(ex: Executor, args: Args) -> None:
    ex.session.settings.bootstrap = [parse_hostport(text) for text in args.many("address")]


async def show_settings(ex: Executor, args: Args) -> None:
    st = ex.session.settings
    ex.reporter.table("settings", ["setting", "value"], [
        ["timeout", f"{st.timeout:g} s"], ["uploadrate", f"{st.uploadrate:g} B/s"],
        ["concurrency", str(st.concurrency)],
        ["bootstrap", " ".join(f"{h}:{p}" for h, p in st.bootstrap) or "(none)"]])


async def _passphrase(ex: Executor, confirm: bool) -> str:
    if ex.passphrase is None:
        raise StateFileError("no passphrase: use --passphrase-file FILE or SEASH_PASSPHRASE")
    return await ex.passphrase(confirm)


async def savestate(ex: Executor, args: Args) -> None:
    path = Path(args.need("file")).expanduser()
    plain = json.dumps(ex.session.to_dict()).encode()
    blob = await trio.to_thread.run_sync(encrypt_state, plain, await _passphrase(ex, True))
    try:
        await trio.to_thread.run_sync(lambda: write_atomic(path, blob, mode=0o600))
    except OSError as exc:
        raise StateFileError(f"cannot write {path}: {exc.strerror}") from exc
    ex.reporter.text(f"saved state to {path} (encrypted)")


async def loadstate(ex: Executor, args: Args) -> None:
    path = Path(args.need("file")).expanduser()
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from exc
    plain = await trio.to_thread.run_sync(decrypt_state, blob, await _passphrase(ex, False))
    autosaving = ex.session.settings.autosave  # a setting of this shell, not of the file
    try:
        ex.session = Session.from_dict(json.loads(plain))
        ex.session.settings.autosave = autosaving
    except (KeyError, ValueError, TypeError, CoreError) as exc:
        raise StateFileError(f"{path}: malformed state ({exc})") from exc
    ex.reporter.text(f"loaded state: {len(ex.session.identities)} identities, "
                     f"{len(ex.session.vessels)} vessels")


# ---- variables ----


async def set_variable(ex: Executor, args: Args) -> None:
    """``set NAME VALUE...``: the words of VALUE joined by one space (``""``: empty).

    A NAME close to a setting's (``set timout 3``) is taken for a typo and refused; ``set
    variable NAME VALUE`` defines it anyway.
    """
    name = check_variable_name(args.need("name"))
    set_command = ex.root.child("set")
    near = did_you_mean(name, set_command.names() if set_command else [])
    if near:
        raise UsageError(f"unknown setting {name!r}{near}; 'set variable {name} VALUE' "
                         "defines a variable of that name")
    await define_variable(ex, args)


async def define_variable(ex: Executor, args: Args) -> None:
    """``set variable NAME VALUE...``: define NAME whatever it looks like."""
    name = check_variable_name(args.need("name"))
    value = args.need("value")
    variables = ex.session.variables
    if len(value) > MAX_VARIABLE_VALUE:
        raise UsageError(f"the value of {name} has {len(value)} characters; "
                         f"at most {MAX_VARIABLE_VALUE} are allowed")
    if name not in variables and len(variables) >= MAX_VARIABLES:
        raise UsageError(f"{MAX_VARIABLES} variables are defined already ('unset' some)")
    variables[name] = value


async def unset_variable(ex: Executor, args: Args) -> None:
    """``unset NAME...``: every NAME must be defined (else nothing is removed)."""
    names = args.many("name")
    missing = [name for name in names if name not in ex.session.variables]
    if missing:
        raise UsageError(f"no variable {', '.join(missing)} ('show variables' lists them)")
    for name in names:
        del ex.session.variables[name]


def shown_value(value: str) -> str:
    """A value as ``show variables`` prints it: cut after 200 characters, saying so."""
    if len(value) <= SHOWN_VALUE:
        return value
    return f"{value[:SHOWN_VALUE]}... ({len(value)} characters)"


async def show_variables(ex: Executor, args: Args) -> None:
    rows = [[name, shown_value(value)] for name, value in sorted(ex.session.variables.items())]
    ex.reporter.table("variables", ["name", "value"], rows)


# ---- autosave ----


def autosave_path(home: Path) -> Path:
    return home / AUTOSAVE_FILE


async def set_autosave(ex: Executor, args: Args) -> None:
    """``set autosave on|off``; off removes the file, so the next start is a fresh session."""
    on = parse_bool(args.need("flag"))
    ex.session.settings.autosave = on
    path = autosave_path(ex.home)
    if on:
        ex.reporter.text(f"autosave on: the session is saved to {path} after each command "
                         "and restored when seash starts")
        return
    try:
        await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
    except OSError as exc:
        raise StateFileError(f"cannot remove {path}: {exc.strerror}") from exc
    ex.reporter.text(f"autosave off ({path} removed)")


async def autosave(ex: Executor) -> None:
    """Save the session when autosave is on (after every command); a failure is logged."""
    if not ex.session.settings.autosave:
        return
    path = autosave_path(ex.home)
    blob = encode_autosave(ex.session.to_dict())

    def write() -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, blob, mode=0o600)

    try:
        await trio.to_thread.run_sync(write)
    except OSError as exc:
        log.warning("autosave to %s failed: %s", path, exc.strerror)


def restore_autosave(home: Path) -> tuple[Session, str | None]:
    """The autosaved session, else a fresh one; and a warning when the file was unusable.

    A damaged file is moved aside to ``autosave.json.corrupt`` (and warned about once).
    """
    path = autosave_path(home)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return Session(), None
    except OSError as exc:
        return Session(), f"cannot read {path} ({exc.strerror}); starting a fresh session"
    try:
        session = Session.from_dict(decode_autosave(blob))
    except (StateFileError, CoreError, LookupError, ValueError, TypeError, AttributeError) as exc:
        aside = path.with_name(AUTOSAVE_FILE + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return Session(), (f"ignored the damaged autosave file {path} ({str(exc)[:200]}); "
                           f"moved it to {aside}; starting a fresh session")
    session.settings.autosave = True
    return session, None
