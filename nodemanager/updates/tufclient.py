"""The TUF client over peers: python-tuf's ngclient with a fetcher that asks mirrors.

ngclient is synchronous, so a check runs in a worker thread (``trio.to_thread``) and the
fetcher reaches the trio side with ``trio.from_thread.run`` for every network step (each one
under its own timeout). URLs are opaque to ngclient; ours are ``p2p://seattle/metadata/NAME``
and ``p2p://seattle/targets/PATH``, which map to mirror paths.

Sources are tried in order for each file: a file that no source delivers but at least one
answered "not held" for is a 404 (which is what ends ngclient's search for newer roots, so
unreachable peers never hide the answer of reachable ones); if no source answered at all, it
is a download error.
After a failed verification the source that served the last file is excluded and the check
runs again with a fresh ``Updater`` (at most ``ATTEMPTS`` times), so one lying peer cannot
keep a node from an update that honest peers hold.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio
from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from nodemanager.errors import MirrorError, UpdateError
from nodemanager.updates.mirror import CHUNK, Download, MirrorStore, NotHeld, check_path
from nodemanager.updates.updatecore import (
    RELEASE_TARGET,
    WHEEL_DIR,
    Decision,
    Release,
    decide,
    decode_release,
)

log = logging.getLogger(__name__)

METADATA_URL = "p2p://seattle/metadata/"
TARGETS_URL = "p2p://seattle/targets/"
ATTEMPTS = 3


class Source(Protocol):
    """Somewhere update files come from: a peer's mirror or a local directory."""

    name: str

    def open(self, path: str) -> Iterator[bytes]:
        """Start fetching ``path``; raise NotHeld (a 404) or MirrorError before any byte."""
        ...


class DirSource:
    """A directory laid out like a repository (``metadata/``, ``targets/``): a publisher's drop."""

    def __init__(self, root: Path, name: str = "inbox") -> None:
        self.root = root
        self.name = name

    def open(self, path: str) -> Iterator[bytes]:
        try:
            handle = (self.root / check_path(path)).open("rb")
        except OSError as exc:
            raise NotHeld(f"{path} not in {self.root}") from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while block := handle.read(CHUNK):
                    yield block
        return chunks()


class PeerSource:
    """A peer's mirror, reached from the worker thread through the trio loop."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 10.0) -> None:
        self.address = address
        self.name = f"{address[0]}:{address[1]}"
        self.timeout = timeout
        self.open_downloads: list[Download] = []

    def open(self, path: str) -> Iterator[bytes]:
        download = Download(self.address, path, timeout=self.timeout)
        self.open_downloads.append(download)
        trio.from_thread.run(download.open)

        def chunks() -> Iterator[bytes]:
            while block := trio.from_thread.run(download.chunk):
                yield block
            trio.from_thread.run(download.aclose)
        return chunks()

    def close(self) -> None:
        """Close what an abandoned download left open (from the worker thread)."""
        for download in self.open_downloads:
            trio.from_thread.run(download.aclose)
        self.open_downloads.clear()


class PeerFetcher(FetcherInterface):
    """ngclient's fetcher: each file from the first source that holds it."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.last_source: str | None = None
        self.fetched: dict[str, int] = {}

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url_to_path(url)
        failures = []
        answered = 0
        for source in self.sources:
            try:
                chunks = source.open(path)
            except NotHeld:
                answered += 1
                continue
            except MirrorError as exc:
                failures.append(str(exc))
                continue
            self.last_source = source.name
            self.fetched[source.name] = self.fetched.get(source.name, 0) + 1
            return _guarded(chunks, source.name)
        if answered:  # someone answered "not held" and nobody delivered: the file is absent
            raise DownloadHTTPError(f"no source holds {path}", 404)
        raise DownloadError(f"no source delivered {path}: {'; '.join(failures)[:300]}")

    def close(self) -> None:
        for source in self.sources:
            if isinstance(source, PeerSource):
                source.close()


def _guarded(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Mid-file failures become DownloadError (ngclient wraps only the first call)."""
    try:
        yield from chunks
    except MirrorError as exc:
        raise DownloadError(f"{name}: {exc}") from exc


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
                      config=UpdaterConfig(max_root_rotations=32),
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


def check_with_retries(ctx: CheckContext, sources: Sequence[Source],
                       attempts: int = ATTEMPTS,
                       on_fail: Callable[[str, str], None] | None = None) -> CheckResult:
    """``check_once``, excluding the source of each failed attempt; raise UpdateError at the end."""
    if not sources:
        raise UpdateError("no update source known (no peer advertises a release yet)")
    excluded: list[str] = []
    last = "no source to ask"
    for _ in range(attempts):
        live = [s for s in sources if s.name not in excluded]
        if not live:
            break
        fetcher = PeerFetcher(live)
        try:
            result = check_once(ctx, fetcher)
        except (RepositoryError, DownloadError, UpdateError, OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            blamed = fetcher.last_source
            log.warning("update check failed (%s); last file from %s", last, blamed)
            if on_fail is not None and blamed is not None:
                on_fail(blamed, last)
            if blamed is None or isinstance(exc, DownloadHTTPError):
                break
            excluded.append(blamed)
            continue
        finally:
            fetcher.close()
        return CheckResult(release=result.release, decision=result.decision,
                           wheels=result.wheels, message=result.message,
                           excluded=tuple(excluded))
    raise UpdateError(f"{last} (excluded: {', '.join(excluded) or 'none'})")
