"""Session commands: ``set timeout/uploadrate/concurrency/bootstrap``, ``show timeout``,
``savestate`` and ``loadstate``.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from seash.commands import Args
from seash.errors import StateFileError
from seash.executor import Executor
from seash.parse import parse_hostport, parse_positive
from seash.session import Session
from seash.statefile import decrypt_state, encrypt_state
from seattlecore import CoreError, write_atomic


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
    try:
        ex.session = Session.from_dict(json.loads(plain))
    except (KeyError, ValueError, TypeError, CoreError) as exc:
        raise StateFileError(f"{path}: malformed state ({exc})") from exc
    ex.reporter.text(f"loaded state: {len(ex.session.identities)} identities, "
                     f"{len(ex.session.vessels)} vessels")
