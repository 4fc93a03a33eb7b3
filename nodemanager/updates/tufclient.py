"""The TUF client over peers: python-tuf's ngclient with a fetcher that asks holders.

ngclient is synchronous, so each attempt runs in a worker thread (``trio.to_thread``) and the
fetcher reaches the trio side with ``trio.from_thread.run(CheckRun.get, ...)`` for every file:
whole-file deadlines, hedged requests and screening happen there (``fetchrun.py``). URLs
are opaque to ngclient; ours are ``p2p://seattle/metadata/NAME`` and
``p2p://seattle/targets/PATH``, which map to mirror paths.

A file no holder delivers but at least one said it does not hold is a 404 (which ends
ngclient's search for newer roots); otherwise it is a download error. A file that passes
screening but fails ngclient's verification gets its holder dropped, and the check goes on
with a fresh ``Updater`` and the remaining holders: a check ends when it has a result, when
no holder is left, or at ``FetchPolicy.check_deadline``, never after a count of attempts.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio
from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from nodemanager.errors import MirrorError, UpdateError
from nodemanager.updates.fetchrun import CheckRun, DirSource, PeerSource, Source, chunks_of
from nodemanager.updates.holders import (
    ROOT_CAP,
    SNAPSHOT_CAP,
    TARGETS_CAP,
    TIMESTAMP_CAP,
    CheckProgress,
    FetchPolicy,
    HolderBook,
)
from nodemanager.updates.mirror import MirrorStore, NotHeld, check_path
from nodemanager.updates.screen import Screen
from nodemanager.updates.updatecore import (
    RELEASE_TARGET,
    WHEEL_DIR,
    Decision,
    Release,
    decide,
    decode_release,
)

__all__ = ["CheckContext", "CheckResult", "DirSource", "PeerFetcher", "PeerSource", "Source",
           "check_once", "run_check"]

log = logging.getLogger(__name__)

METADATA_URL = "p2p://seattle/metadata/"
TARGETS_URL = "p2p://seattle/targets/"


class PeerFetcher(FetcherInterface):
    """ngclient's fetcher for one attempt: every file through the check's ``CheckRun``."""

    def __init__(self, run: CheckRun) -> None:
        self.run = run
        self.last_path: str | None = None
        self._max_length = 0

    def download_file(self, url: str, max_length: int) -> Any:
        self._max_length = max_length  # ngclient's cap for this file: the deadline's size
        return super().download_file(url, max_length)

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url_to_path(url)
        try:
            data = trio.from_thread.run(self.run.get, path, self._max_length)
        except NotHeld as exc:
            raise DownloadHTTPError(str(exc), 404) from exc
        except MirrorError as exc:
            raise DownloadError(str(exc)) from exc
        self.last_path = path
        return chunks_of(data)


def url_to_path(url: str) -> str:
    for base, kind in ((METADATA_URL, "metadata"), (TARGETS_URL, "targets")):
        if url.startswith(base):
            return check_path(f"{kind}/{url[len(base):]}")
    raise MirrorError(f"not an update URL: {url[:80]}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """What one check needs: where TUF state and the mirror live, and the local facts."""

    tuf_dir: Path
    store: MirrorStore
    anchor: bytes
    """The bundle's first root metadata (used until ngclient has cached a root)."""
    running: str
    bad: frozenset[str] = frozenset()
    local_wheels: Path | None = None
    """Wheels already on this machine (the installed versions'): reused when their hash fits."""
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine: str = field(default_factory=platform.machine)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A check's outcome: the verified release (if any), what to do, the wheels on disk."""

    release: Release | None
    decision: Decision | None
    wheels: tuple[Path, ...] = ()
    message: str = ""
    excluded: tuple[str, ...] = ()


def fetch_target(updater: Updater, info: TargetFile, store: MirrorStore,
                 local: Path | None = None) -> Path:
    """The verified target in the mirror (from ``local`` if a file there has its hash, else
    downloaded)."""
    dest = store.target_path(info.path, info.hashes["sha256"])
    if updater.find_cached_target(info, str(dest)):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    near = None if local is None else local / info.path.rpartition("/")[2]
    if near is not None and updater.find_cached_target(info, str(near)):
        shutil.copyfile(near, partial)
        os.replace(partial, dest)
        return dest
    updater.download_target(info, str(partial))
    os.replace(partial, dest)  # verified before it appears under its served name
    return dest


def check_once(ctx: CheckContext, fetcher: PeerFetcher) -> CheckResult:
    """Refresh the metadata, fetch the release record and its wheels; mirror all of it."""
    cached = ctx.tuf_dir / "root.json"
    ctx.tuf_dir.mkdir(parents=True, exist_ok=True)
    updater = Updater(str(ctx.tuf_dir), METADATA_URL, None, TARGETS_URL, fetcher=fetcher,
                      config=UpdaterConfig(max_root_rotations=32, root_max_length=ROOT_CAP,
                                           timestamp_max_length=TIMESTAMP_CAP,
                                           snapshot_max_length=SNAPSHOT_CAP,
                                           targets_max_length=TARGETS_CAP),
                      bootstrap=cached.read_bytes() if cached.exists() else ctx.anchor)
    updater.refresh()
    ctx.store.export(ctx.tuf_dir)
    info = updater.get_targetinfo(RELEASE_TARGET)
    if info is None:
        return CheckResult(release=None, decision=None, message="no release published yet")
    record = fetch_target(updater, info, ctx.store)
    release = decode_release(record.read_bytes())
    decision = decide(release, running=ctx.running, bad=ctx.bad, python=ctx.python,
                      machine=ctx.machine)
    wheels: list[Path] = []
    if decision != "platform":
        for name in release.wheels:
            wheel = updater.get_targetinfo(f"{WHEEL_DIR}/{name}")
            if wheel is None:
                raise UpdateError(f"release {release.version} names {name}, which is no target")
            wheels.append(fetch_target(updater, wheel, ctx.store, ctx.local_wheels))
    ctx.store.prune({record, *wheels})
    return CheckResult(release=release, decision=decision, wheels=tuple(wheels),
                       message=f"verified release {release.version}: {decision}")


def trusted_screen(ctx: CheckContext, now: datetime) -> Screen:
    """A screen from what ngclient trusts now (its cached root, else the anchor)."""
    root, timestamp = ctx.tuf_dir / "root.json", ctx.tuf_dir / "timestamp.json"
    return Screen.from_trusted(root.read_bytes() if root.exists() else ctx.anchor,
                               timestamp.read_bytes() if timestamp.exists() else None, now)


async def run_check(ctx: CheckContext, sources: Sequence[Source], *,
                    policy: FetchPolicy | None = None, book: HolderBook | None = None,
                    progress: CheckProgress | None = None,
                    on_change: Callable[[], None] | None = None) -> CheckResult:
    """One whole check under ``policy.check_deadline``; UpdateError if it finds no result.

    ``sources`` in the order to ask them (``HolderBook.choose``); ``progress`` is updated as
    it goes (status), ``book`` remembers the holders' behaviour for later checks."""
    policy = policy or FetchPolicy()
    if not sources:
        raise UpdateError("no update source known (no peer advertises a release yet)")
    progress = progress or CheckProgress(number=0, started_at=0.0,
                                         started_mono=trio.current_time())
    run = CheckRun(sources, policy, progress, book, on_change)
    with trio.move_on_after(policy.check_deadline):
        return await _attempts(ctx, run)
    raise UpdateError(f"check deadline of {policy.check_deadline:.0f} s passed during "
                      f"{progress.phase} ({run.summary()})")


async def _attempts(ctx: CheckContext, run: CheckRun) -> CheckResult:
    while True:
        run.progress.attempts += 1
        run.screen = await trio.to_thread.run_sync(trusted_screen, ctx, datetime.now(UTC))
        fetcher = PeerFetcher(run)
        try:
            result = await trio.to_thread.run_sync(partial(check_once, ctx, fetcher))
        except RepositoryError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("update check attempt failed (%s) after %s", reason, fetcher.last_path)
            blamed = run.blame(fetcher.last_path, reason) if fetcher.last_path else None
            if blamed is None:
                raise UpdateError(f"{reason} ({run.summary()})") from exc
            continue  # that holder is dropped; the others go on in a fresh Updater
        except (DownloadError, UpdateError, OSError, ValueError) as exc:
            raise UpdateError(f"{type(exc).__name__}: {exc} ({run.summary()})") from exc
        for name, holder in run.progress.holders.items():
            if holder.delivered and holder.state == "ok":
                run.book.note(name, "ok")
        return CheckResult(release=result.release, decision=result.decision,
                           wheels=result.wheels, message=result.message,
                           excluded=run.excluded())
