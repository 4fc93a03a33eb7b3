"""One check's downloads (trio side): whole-file deadlines, hedged requests, screening.

``CheckRun.get(path, max_length)`` returns a file's bytes from some holder, raises NotHeld
(ngclient's 404) or MirrorError. How it asks depends on the file:

- ``N.root.json`` (the probe for a newer root) and ``timestamp.json``: every live holder at
  once (up to ``max_parallel`` at a time). A root that screens valid wins at once; "not
  held" answers are evidence: the probe is settled absent when every holder answered, when
  a holder known good from earlier checks said so, or when two said so and ``probe_grace``
  passed. For the timestamp the highest valid version any holder has wins (so holders
  replaying an older signed timestamp cannot freeze a node while one honest holder answers;
  among equal versions the holder first in the check's order wins, not the fastest).
- any other file: holders in order, a new one started every ``hedge_after`` seconds (and
  at once after a failure) while none has delivered it; the first that screens valid wins
  and the others are cancelled. Holders that delivered in this check are asked first.

Every download must end within ``FetchPolicy.file_deadline`` of the size it announced
(capped by ngclient's limit). A holder that misses it is dropped as ``slow``; one whose file
fails screening (``screen.py``) or breaks the protocol is dropped as ``lying``; one that
cannot be reached as ``unreachable``. Dropping never costs the check an attempt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import trio

from nodemanager.errors import MirrorError
from nodemanager.updates.holders import (
    DROPPING,
    CheckProgress,
    FetchPolicy,
    HolderBook,
)
from nodemanager.updates.mirror import CHUNK, BadAnswer, Download, NotHeld, Stalled, check_path
from nodemanager.updates.screen import VERSIONED, Lie, Screen, Stale

log = logging.getLogger(__name__)
NOT_FOUND_QUORUM = 2


class Slow(MirrorError):
    """Raised when a holder misses the whole-file deadline."""


class Source(Protocol):
    """Somewhere update files come from: a peer's mirror or a local directory."""

    name: str

    async def fetch(self, path: str, max_length: int, policy: FetchPolicy) -> bytes:
        """The whole file; NotHeld, Slow, BadAnswer (a lie) or MirrorError otherwise."""
        ...


class DirSource:
    """A directory laid out like a repository (``metadata/``, ``targets/``): a publisher's drop."""

    def __init__(self, root: Path, name: str = "inbox") -> None:
        self.root = root
        self.name = name

    async def fetch(self, path: str, max_length: int, policy: FetchPolicy) -> bytes:
        return await trio.to_thread.run_sync(self._read, path, max_length)

    def _read(self, path: str, max_length: int) -> bytes:
        try:
            with (self.root / check_path(path)).open("rb") as handle:
                data = handle.read(max_length + 1)
        except OSError as exc:
            raise NotHeld(f"{path} not in {self.root}") from exc
        if len(data) > max_length:
            raise BadAnswer(f"{path} in {self.root} is above {max_length} bytes")
        return data


class PeerSource:
    """A peer's mirror; each file must arrive within ``policy.file_deadline(size)``."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.name = f"{address[0]}:{address[1]}"

    async def fetch(self, path: str, max_length: int, policy: FetchPolicy) -> bytes:
        """The header within ``base_timeout``; then at every moment at least ``floor_rate``
        bytes/s on average since then, so the whole file within ``file_deadline(size)``
        and a drip is dropped as soon as it falls behind, not at the end."""
        download = Download(self.address, path, timeout=policy.base_timeout, max_bytes=max_length)
        start = trio.current_time()
        parts: list[bytes] = []
        opened = False
        try:
            with trio.move_on_at(start + policy.base_timeout) as scope:
                await download.open()
                opened = True
                while True:
                    scope.deadline = start + policy.file_deadline(download.received + 1)
                    block = await download.chunk()
                    if not block:
                        break
                    parts.append(block)
        except Stalled as exc:
            raise Slow(str(exc)) from exc
        finally:
            with trio.CancelScope(shield=True):
                await download.aclose()
        if scope.cancelled_caught:
            took = trio.current_time() - start
            if not opened:
                raise Slow(f"no answer within {took:.1f} s")
            raise Slow(f"fell below {policy.floor_rate / 1024:.0f} KiB/s: "
                       f"{download.received} of {download.size} bytes in {took:.1f} s")
        return b"".join(parts)


def file_kind(path: str) -> str:
    """``probe`` (a root), ``timestamp`` or ``file``."""
    if path == "metadata/timestamp.json":
        return "timestamp"
    match = VERSIONED.fullmatch(path)
    return "probe" if match is not None and match.group(2) == "root" else "file"


def phase_of(path: str) -> str:
    match = VERSIONED.fullmatch(path)
    if match is not None:
        return {"root": f"root (asking for {match.group(1)}.root.json)",
                "snapshot": "snapshot", "targets": "targets metadata"}[match.group(2)]
    if path == "metadata/timestamp.json":
        return "timestamp"
    return "wheels" if path.startswith("targets/wheels/") else "release record"


Answer = tuple[str, str, str, bytes, Any]
"""(holder, outcome, detail, data, parsed) from one download task."""


class CheckRun:
    """The holders of one check and what each did; shared by all attempts of the check."""

    def __init__(self, sources: Sequence[Source], policy: FetchPolicy, progress: CheckProgress,
                 book: HolderBook | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.sources = {source.name: source for source in sources}
        self.order = list(self.sources)
        self.policy = policy
        self.progress = progress
        self.book = book if book is not None else HolderBook()
        self.on_change = on_change or (lambda: None)
        self.screen: Screen | None = None
        self.cache: dict[str, bytes | None] = {}
        """Files settled in this check (None: absent), for the check's later attempts."""
        self.delivered_by: dict[str, str] = {}
        progress.add(self.order)

    # ---- holders ----

    def live(self) -> list[str]:
        """Holders not dropped, those that delivered a file in this check first."""
        alive = [n for n in self.order if self.progress.holders[n].state not in DROPPING]
        return sorted(alive, key=lambda n: self.progress.holders[n].delivered == 0)

    def drop(self, name: str, outcome: str, reason: str) -> None:
        log.info("update holder %s dropped for this check: %s: %s", name, outcome, reason)
        self.progress.record(name, outcome, reason)
        self.book.note(name, outcome, reason)
        self.on_change()

    def blame(self, path: str, reason: str) -> str | None:
        """After ngclient refused ``path``: drop who served it. None if nobody is to blame."""
        name = self.delivered_by.pop(path, None)
        self.cache.pop(path, None)
        if name is None or self.progress.holders[name].state in DROPPING:
            return None
        self.drop(name, "lying", f"served {path}, which failed verification: {reason}")
        return name

    def excluded(self) -> tuple[str, ...]:
        return tuple(self.progress.dropped(frozenset({"slow", "lying"})))

    def summary(self) -> str:
        parts = [f"{h.name} {h.state}" + (f" ({h.reason[:80]})" if h.reason else "")
                 for h in self.progress.holders.values() if h.state in DROPPING]
        return "; ".join(parts) or "none dropped"

    # ---- files ----

    async def get(self, path: str, max_length: int) -> bytes:
        kind = file_kind(path)
        if path in self.cache:
            data = self.cache[path]
            if data is None:
                raise NotHeld(f"no holder has {path}")
            if kind == "probe" and self.screen is not None:
                screened = await self._screened("cache", path, data)
                self.screen.advance(screened[4])
            return data
        self.progress.phase = phase_of(path)
        self.on_change()
        names = self.live()
        if not names:
            raise MirrorError(f"no holder left to ask for {path} ({self.summary()})")
        answers: list[Answer] = []
        async with trio.open_nursery() as nursery:
            winner = await self._race(nursery, names, path, max_length, kind, answers)
            nursery.cancel_scope.cancel()
        if winner is not None:
            name, _, _, data, parsed = winner
            if kind == "probe" and self.screen is not None:
                self.screen.advance(parsed)
            self.cache[path] = data
            self.delivered_by[path] = name
            for other in answers:  # the losers of a timestamp race hold older versions
                if other[1] == "ok" and other[0] != name and other[4] < parsed:
                    self.progress.record(other[0], "stale", f"had timestamp version "
                                         f"{other[4]}, older than {parsed}")
            self.progress.record(name, "ok")
            self.on_change()
            return data
        return self._settle_missing(path, kind, answers)

    def _settle_missing(self, path: str, kind: str, answers: list[Answer]) -> bytes:
        if any(a[1] == "not_found" for a in answers):
            self.cache[path] = None
            raise NotHeld(f"no holder has {path}")
        stale = [f"{a[0]}: {a[2]}" for a in answers if a[1] == "stale"]
        if stale:
            raise MirrorError(f"no holder has a usable {path}: {'; '.join(stale)[:300]}")
        raise MirrorError(f"no holder delivered {path}")

    async def _race(self, nursery: trio.Nursery, names: list[str], path: str, max_length: int,
                    kind: str, answers: list[Answer]) -> Answer | None:
        send, receive = trio.open_memory_channel[Answer](len(names))
        started = running = 0
        opened = trio.current_time()

        def launch() -> None:
            nonlocal started, running
            name = names[started]
            started += 1
            running += 1
            self.progress.record(name, "asked")
            nursery.start_soon(self._one, name, path, max_length, send)

        wide = kind in ("probe", "timestamp")
        for _ in range(min(len(names), self.policy.max_parallel if wide else 1)):
            launch()
        best: Answer | None = None
        while running:
            wait = math.inf
            not_found = sum(1 for a in answers if a[1] == "not_found")
            if not wide and started < len(names):
                wait = self.policy.hedge_after
            elif kind == "probe" and not_found >= NOT_FOUND_QUORUM:
                wait = max(0.0, opened + self.policy.probe_grace - trio.current_time())
            with trio.move_on_after(wait) as waited:
                answer = await receive.receive()
            if waited.cancelled_caught:
                if kind == "probe":
                    return None  # absent: two holders said so and the grace passed
                if started < len(names) and running < self.policy.max_parallel:
                    launch()  # a hedge: the holders asked so far are slow
                continue
            running -= 1
            answers.append(answer)
            name, outcome, detail, _, parsed = answer
            if outcome in DROPPING:
                self.drop(name, outcome, detail)
            elif outcome == "stale":
                self.progress.record(name, "stale", detail)
            elif outcome == "not_found":
                self.progress.record(name, "not_found")
                if kind == "probe" and self.book.is_good(name):
                    return None  # a holder that served verified files before says absent
            elif outcome == "ok":
                if kind != "timestamp":
                    return answer
                if best is None or (parsed, -names.index(name)) > (best[4], -names.index(best[0])):
                    best = answer  # the highest version; among equals, the first in order
            if started < len(names) and running < self.policy.max_parallel:
                launch()
        return best

    async def _one(self, name: str, path: str, max_length: int,
                   send: trio.MemorySendChannel[Answer]) -> None:
        """One download and its screening; the answer goes to ``send`` (never raises)."""
        try:
            data = await self.sources[name].fetch(path, max_length, self.policy)
        except NotHeld:
            answer: Answer = (name, "not_found", "", b"", None)
        except Slow as exc:
            answer = (name, "slow", f"{path}: {exc}", b"", None)
        except BadAnswer as exc:
            answer = (name, "lying", f"{path}: {exc}", b"", None)
        except MirrorError as exc:
            answer = (name, "unreachable", f"{path}: {exc}", b"", None)
        else:
            answer = await self._screened(name, path, data)
        send.send_nowait(answer)

    async def _screened(self, name: str, path: str, data: bytes) -> Answer:
        screen = self.screen
        if screen is None:
            return (name, "ok", "", data, None)
        try:
            parsed = await trio.to_thread.run_sync(screen.check, path, data)
        except Lie as exc:
            return (name, "lying", str(exc), b"", None)
        except Stale as exc:
            return (name, "stale", str(exc), b"", None)
        return (name, "ok", "", data, parsed)


def chunks_of(data: bytes) -> Iterator[bytes]:
    """ngclient reads a fetch as an iterator of chunks."""
    for offset in range(0, len(data), CHUNK):
        yield data[offset:offset + CHUNK]
