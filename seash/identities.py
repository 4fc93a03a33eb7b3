"""Identity commands: generate and load key files, switch identity or target.

``genkeys``, ``loadkeys``, ``loadpub``, ``loadpriv``, ``as``, ``on``, ``show identities``
and ``show keys``. Key files follow Seattle's ``NAME.publickey`` / ``NAME.privatekey``
convention and live in the keys directory (``--home``).
"""

from __future__ import annotations

from pathlib import Path

from seash.commands import Args
from seash.errors import KeyFileError, UsageError
from seash.executor import Executor
from seash.session import Identity
from seattlecore import CoreError, KeyPair, load_private, load_public, save_keypair


def key_path(ex: Executor, name: str, suffix: str) -> Path:
    """A plain ``NAME``: ``NAME`` + ``suffix`` in the keys directory (``--home``) only; a
    path (``./alice``, ``keys/alice.privatekey``, ``~/k/alice``): that file. The working
    directory is never searched for a plain name (it could hold another identity)."""
    given = Path(name).expanduser()
    if given.suffix in (".publickey", ".privatekey"):
        given = given.with_suffix("")
    if "/" in name:
        path = given.with_name(given.name + suffix).absolute()
        if path.exists():
            return path
        raise KeyFileError(f"no key file {path}")
    path = (ex.home / (given.name + suffix)).absolute()
    if path.exists():
        return path
    raise KeyFileError(f"no key file {given.name + suffix} in {ex.home} (use 'genkeys "
                       f"{given.name}'; a key file elsewhere: give its path, e.g. ./{given.name})")


async def genkeys(ex: Executor, args: Args) -> None:
    name = args.need("name")
    if "/" in name or name.startswith("."):
        raise UsageError("genkeys takes a plain NAME; keys go to the keys directory (--home)")
    alias = args.get("alias") or name
    if (ex.home / f"{name}.privatekey").exists():
        raise KeyFileError(f"keys {name!r} already exist in {ex.home}; use 'loadkeys {name}'")
    keys = KeyPair.generate()
    try:
        pub, _ = save_keypair(ex.home, name, keys)
    except OSError as exc:
        raise KeyFileError(f"cannot write keys to {ex.home}: {exc.strerror}") from exc
    ex.session.add_identity(Identity(alias, keys.public, keys))
    ex.reporter.text(f"generated {alias}: {keys.public.to_text()} ({pub})")


def _load(path: Path, private: bool) -> Identity:
    name = path.stem
    try:
        if private:
            keys = load_private(path)
            return Identity(name, keys.public, keys)
        return Identity(name, load_public(path))
    except CoreError as exc:
        raise KeyFileError(str(exc)) from exc


async def loadkeys(ex: Executor, args: Args) -> None:
    name = args.need("name")
    path = key_path(ex, name, ".privatekey")
    identity = _load(path, private=True)
    try:
        public = _load(key_path(ex, name, ".publickey"), private=False)
    except KeyFileError:
        public = identity
    if public.public != identity.public:
        raise KeyFileError(f"{name}: public and private key files do not match")
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public, identity.private))
    ex.reporter.text(f"loaded {alias} from {path}: {identity.public.to_text()}")


async def loadpub(ex: Executor, args: Args) -> None:
    path = key_path(ex, args.need("file"), ".publickey")
    identity = _load(path, private=False)
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public), make_current=False)
    ex.reporter.text(f"loaded public key {alias} from {path}: {identity.public.to_text()}")


async def loadpriv(ex: Executor, args: Args) -> None:
    path = key_path(ex, args.need("file"), ".privatekey")
    identity = _load(path, private=True)
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public, identity.private))
    ex.reporter.text(f"loaded private key {alias} from {path}")


async def _use(ex: Executor, args: Args, *, identity: str | None = None,
               target: str | None = None) -> None:
    """From now on, or (with a trailing command) only while that command runs."""
    if not args.many("command"):
        ex.session.use(identity=identity, target=target)
        return
    with ex.session.using(identity=identity, target=target):
        await ex.run_words(args.many("command"))


async def as_identity(ex: Executor, args: Args) -> None:
    name = args.need("name")
    ex.session.identity(name)
    await _use(ex, args, identity=name)


async def on_target(ex: Executor, args: Args) -> None:
    target = args.need("target")
    ex.session.resolve(target)
    await _use(ex, args, target=target)


async def show_identities(ex: Executor, args: Args) -> None:
    s = ex.session
    rows = [[("* " if i.name == s.current else "  ") + i.name, i.public.short(),
             "yes" if i.private else "no"] for i in s.identities.values()]
    ex.reporter.table("identities", ["name", "key", "private"], rows)


async def show_keys(ex: Executor, args: Args) -> None:
    rows = [[i.name, i.public.to_text()] for i in ex.session.identities.values()]
    ex.reporter.table("keys", ["name", "public key"], rows)
