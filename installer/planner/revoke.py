"""``seattle-installer revoke``: the planner publishes the pool's revocation list into the DHT.

The list (nodemanager/proto/revocation.py) is kept in a local JSON file next to the planner
key (``--list``); each run adds serials (numbers or ``.grant`` files), raises its sequence
number, signs its pages with the planner key and stores them in the DHT, where every pool
node looks it up every 30 s and at acquisitions (docs/pool.md, Revocation). A DHT record
lives at most 2 h: ``--keep`` republishes until stopped (nodes keep what they adopted).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from installer.errors import InstallError, SpecError
from nodemanager.errors import BadPoolRecord
from nodemanager.proto.pool import read_credential
from nodemanager.proto.revocation import (
    MAX_REVOKED,
    RevocationList,
    empty,
    from_record,
    sign_pages,
    to_record,
)
from overlay import open_client, parse_hostport
from overlay.errors import OverlayError
from seattlecore import CoreError, KeyPair, load_private, write_atomic

PAGE_TTL = 7000.0
"""Seconds a published page lives in the DHT (the overlay's limit is 7200)."""
REPUBLISH_EVERY = 1800.0


def parse_serial(text: str) -> int:
    """A serial: a decimal number, or the serial inside a ``.grant`` credential file."""
    if text.isdigit():
        value = int(text)
        if value >= 1 << 63:
            raise SpecError(f"serial {text} is not a 63-bit number")
        return value
    path = Path(text)
    try:
        return read_credential(path.read_bytes()).serial
    except OSError as exc:
        raise SpecError(f"{text}: neither a serial nor a readable .grant file") from exc
    except BadPoolRecord as exc:
        raise SpecError(f"{text}: {exc}") from exc


def load_list(path: Path, planner: KeyPair) -> RevocationList:
    """The planner's current list (empty if the file does not exist yet)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return empty(planner.public)
    except (OSError, ValueError) as exc:
        raise InstallError(f"cannot read the revocation list {path}: {exc}") from exc
    try:
        revoked = from_record(raw)
    except BadPoolRecord as exc:
        raise InstallError(f"{path}: {exc}") from exc
    if revoked.pool != planner.public:
        raise SpecError(f"{path} is the revocation list of another pool")
    return revoked


def next_list(current: RevocationList, add: Sequence[int], now: float) -> RevocationList:
    """``current`` plus ``add`` with a higher seq (at least the epoch second, so a lost list
    file still yields a list that nodes adopt)."""
    serials = current.serials | frozenset(add)
    if len(serials) > MAX_REVOKED:
        raise SpecError(f"a revocation list holds at most {MAX_REVOKED} serials; grant shorter "
                        "credentials so that revoked ones expire (docs/pool.md)")
    try:
        return RevocationList(pool=current.pool, seq=max(current.seq + 1, int(now)),
                              serials=serials)
    except BadPoolRecord as exc:
        raise SpecError(str(exc)) from exc


async def publish(planner: KeyPair, revoked: RevocationList,
                  bootstrap: Sequence[tuple[str, int]], now: float) -> int:
    """Store the list's pages in the DHT; the number of stores peers accepted."""
    blobs = sign_pages(planner, revoked, publish_seq=int(now * 1000), expires_at=now + PAGE_TTL)
    async with open_client(bootstrap) as node:
        result = await node.publish(blobs)
    return result.stores_accepted


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        planner = load_private(args.planner_key)
    except CoreError as exc:
        raise SpecError(f"--planner-key: {exc}") from exc
    if not args.bootstrap:
        raise SpecError("--bootstrap HOST:PORT is needed to publish the list")
    bootstrap = [parse_hostport(text) for text in args.bootstrap]
    path: Path = args.list or args.planner_key.with_suffix(".revoked")
    add = [parse_serial(text) for text in args.serials]
    current = load_list(path, planner)
    revoked = next_list(current, add, time.time()) if add or not path.exists() else current
    write_atomic(path, json.dumps(to_record(revoked)).encode(), 0o600)
    while True:
        try:
            accepted = trio.run(publish, planner, revoked, bootstrap, time.time())
        except (OverlayError, OSError) as exc:
            raise InstallError(f"publishing the revocation list failed: {exc}") from exc
        if not accepted:
            raise InstallError("no DHT peer accepted the revocation list; try again")
        print(f"revocation list {revoked.seq} of pool {planner.public.short()}: "
              f"{len(revoked.serials)} serials revoked, stored by {accepted} DHT peers "
              f"(kept in {path}; it lives {PAGE_TTL / 3600:.1f} h in the DHT"
              + (f", republished every {args.keep:g} s)" if args.keep else
                 ": run 'revoke' again, or with --keep, until the credentials expire)"),
              flush=True)
        if not args.keep:
            return 0
        time.sleep(args.keep)


def add_revoke_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                      subparser: Callable[..., argparse.ArgumentParser]) -> None:
    revoke = subparser(sub, "revoke", help="planner: revoke pool credentials (DHT, no server)",
                       description="planner: add credential serials to the pool's revocation "
                                   "list and publish it into the DHT (docs/pool.md)")
    revoke.add_argument("--planner-key", type=Path, required=True, metavar="NAME.privatekey",
                        help="the planner's private key (the pool is named by its public key)")
    revoke.add_argument("serials", nargs="*", metavar="SERIAL|NAME.grant",
                        help="serials to revoke, or credential files (none: republish)")
    revoke.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT",
                        help="DHT peer to publish through (repeatable, at least one)")
    revoke.add_argument("--list", type=Path, default=None, metavar="FILE",
                        help="the planner's list file (default NAME.revoked beside the key)")
    revoke.add_argument("--keep", type=float, default=0.0, metavar="SECONDS", nargs="?",
                        const=REPUBLISH_EVERY,
                        help=f"republish every SECONDS (default {REPUBLISH_EVERY:g}) until "
                             "stopped")
