"""The page's chart history, kept across restarts in ``STATE/donor-history.jsonl``.

One JSON object per line, appended every ``SAMPLE_EVERY`` seconds (about 120 bytes, no
fsync: a crash loses the last few points, never the file). When the file holds twice
``HISTORY`` lines it is rewritten with the newest ``HISTORY`` (atomically), so it stays
under about 90 KB. On start the samples of the last hour are loaded; a line that does not
parse (a torn last write, a hand edit) is skipped, a sample from the future (the clock went
back) or older than an hour is dropped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from seattlecore.keys import write_atomic

log = logging.getLogger(__name__)

HISTORY_FILE = "donor-history.jsonl"
SAMPLE_EVERY = 10.0
HISTORY = 360
"""Samples kept: one hour at ``SAMPLE_EVERY``."""
MAX_LINE = 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of the page's charts."""

    at: float
    other_cpu: float | None
    vessels_cpu: float
    """Vessels' CPU use since the last sample, % of one core."""
    paused: str | None
    memory: float = 0.0
    """Vessels' programs' RSS together, bytes."""
    disk: float = 0.0
    net_rate: float = 0.0
    """Vessels' network bytes sent and received per second since the last sample."""


_NUMBERS = ("at", "vessels_cpu", "memory", "disk", "net_rate")


def encode_sample(sample: Sample) -> bytes:
    return json.dumps(asdict(sample), separators=(",", ":")).encode() + b"\n"


def decode_sample(line: bytes) -> Sample | None:
    """The sample on one line, or None if it is not one (pure)."""
    if len(line) > MAX_LINE:
        return None
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or set(data) != {f.name for f in fields(Sample)}:
        return None
    numbers = [data[name] for name in _NUMBERS]
    other, paused = data["other_cpu"], data["paused"]
    if not all(_finite(v) for v in numbers) or not (other is None or _finite(other)):
        return None
    if not (paused is None or (isinstance(paused, str) and len(paused) <= 32)):
        return None
    return Sample(**data)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def recent(samples: Iterable[Sample], now: float) -> list[Sample]:
    """The samples of the hour before ``now``, oldest first, at most ``HISTORY`` (pure)."""
    kept = [s for s in samples if now - HISTORY * SAMPLE_EVERY <= s.at <= now]
    kept.sort(key=lambda s: s.at)
    return kept[-HISTORY:]


def _tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of ``path``, from a line start (a grown file costs no memory)."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - limit))
        raw = handle.read(limit)
    return raw if size <= limit else raw.partition(b"\n")[2]


class HistoryFile:
    """Appends samples and loads the last hour; never raises on a bad or missing file."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / HISTORY_FILE
        self._lines = 0

    def load(self, now: float) -> list[Sample]:
        try:
            raw = _tail(self.path, 2 * HISTORY * MAX_LINE)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read %s: %s (charts start empty)", self.path, exc)
            return []
        lines = raw.splitlines()
        self._lines = len(lines)
        samples = [s for line in lines if (s := decode_sample(line)) is not None]
        if len(samples) < len(lines):
            log.info("%s: %d lines skipped", self.path, len(lines) - len(samples))
        return recent(samples, now)

    def append(self, sample: Sample, kept: Iterable[Sample]) -> None:
        """Add ``sample``; rewrite the file with ``kept`` (the in-memory history, which
        already holds ``sample``) once it has grown to twice ``HISTORY`` lines."""
        try:
            if self._lines >= 2 * HISTORY:
                lines = [encode_sample(s) for s in kept]
                write_atomic(self.path, b"".join(lines), mode=0o600)
                self._lines = len(lines)
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "ab") as handle:
                handle.write(encode_sample(sample))
            self._lines += 1
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
