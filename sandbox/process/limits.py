"""Pure policy of the vessel monitor: CPU duty cycle, memory/disk checks, the bounded log.

``CpuThrottle`` is a token bucket of CPU seconds: it fills at ``share`` CPU-seconds per
wall second up to ``burst`` and is emptied by the CPU the program used. When it goes
negative the program is stopped (SIGSTOP) for ``deficit / share`` seconds, during which the
bucket refills to zero. Over any long window the program gets ``share`` of one core plus at
most ``burst`` (Seattle stops for ``used*elapsed/limit - elapsed``, ``nanny.py``; the bucket
gives the same long-run share without letting an idle program bank unbounded credit).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sandbox.resources import ResourceTable

LOG_KEEP = 16 * 1024


@dataclass(slots=True)
class CpuThrottle:
    """Decides SIGSTOP durations from cumulative CPU-time samples."""

    share: float
    burst: float = 0.05
    window: float = 0.1
    """A stop comes once the program ran ``window`` s of wall time over its share (Seattle
    sampled every 0.1 s, so a busy program at 0.1 of a core runs 0.1 s, stops 0.9 s)."""
    credit: float = 0.0
    last_now: float | None = None
    last_cpu: float = 0.0
    stopped_total: float = 0.0

    def sample(self, now: float, cpu_seconds: float) -> float:
        """Feed a sample; return how long to stop the program now (0 for not at all)."""
        if self.last_now is None:
            self.last_now, self.last_cpu = now, cpu_seconds
            return 0.0
        elapsed = max(0.0, now - self.last_now)
        used = max(0.0, cpu_seconds - self.last_cpu)
        self.last_now, self.last_cpu = now, cpu_seconds
        self.credit = min(self.burst, self.credit + elapsed * self.share - used)
        if self.share <= 0:
            return 0.0 if used == 0 else 1.0
        if self.credit >= min(0.0, 1e-9 - self.window * (1.0 - self.share)):
            return 0.0
        stop = -self.credit / self.share
        longest = self.window * (1.0 - self.share) / self.share
        if longest > 0:  # a late sample does not make a longer stop; the rest of the debt waits
            stop = min(stop, longest)
        self.stopped_total += stop
        return stop


def check_quantities(table: ResourceTable, *, rss: int, disk: int | None) -> str | None:
    """Return why the program must stop (memory or disk over its limit), or None."""
    if rss > table["memory"]:
        return f"memory limit exceeded ({rss} > {int(table['memory'])} bytes)"
    if disk is not None and disk > table["diskused"]:
        return f"diskused limit exceeded ({disk} > {int(table['diskused'])} bytes)"
    return None


@dataclass(frozen=True, slots=True)
class LogSlice:
    """Part of a program's output stream: ``data`` starts at stream offset ``start``.

    ``total`` is every byte the program has logged since it started, kept or not; a reader
    that asked for bytes from ``since`` lost ``start - since`` of them (dropped by the ring).
    """

    data: bytes
    start: int
    total: int
    run: str = ""
    """Names the program run the stream belongs to (a new start gets a new one)."""

    def dropped_since(self, since: int) -> int:
        return max(0, self.start - since)


@dataclass(slots=True)
class LogRing:
    """The last ``keep`` bytes of a program's log (Seattle kept 16 KiB), and the stream total.

    Offsets are positions in the whole output stream of one program run: the ring holds
    ``[total - len(data), total)``.
    """

    keep: int = LOG_KEEP
    data: bytearray = field(default_factory=bytearray)
    total: int = 0
    run: str = field(default_factory=lambda: os.urandom(8).hex())
    """A fresh random name per program run, so readers notice a restart whatever its length."""

    def add(self, chunk: bytes | bytearray) -> None:
        self.total += len(chunk)
        self.data += chunk[-self.keep:]
        if len(self.data) > self.keep:
            del self.data[: len(self.data) - self.keep]

    def snapshot(self) -> bytes:
        return bytes(self.data)

    def since(self, offset: int | None = None) -> LogSlice:
        """The kept bytes from ``offset`` on (all kept bytes for None; none past the end)."""
        first = self.total - len(self.data)
        start = first if offset is None else min(max(offset, first), self.total)
        return LogSlice(bytes(self.data[start - first:]), start, self.total, self.run)


PERSISTED_MAGIC = b"seattle-log-v1 "


def encode_log(ring: LogRing) -> bytes:
    """The on-disk form: ``seattle-log-v1 <total> <run>\n`` then the kept bytes."""
    return PERSISTED_MAGIC + f"{ring.total} {ring.run}".encode() + b"\n" + ring.snapshot()


def decode_log(raw: bytes, keep: int = LOG_KEEP) -> LogRing:
    """Read ``encode_log`` output; anything else is taken as bare log bytes."""
    total: int | None = None
    run = ""
    if raw.startswith(PERSISTED_MAGIC):
        header, _, body = raw.partition(b"\n")
        digits, _, name = header[len(PERSISTED_MAGIC):].partition(b" ")
        if digits.isdigit() and (not name or name.isalnum()):
            total, raw, run = int(digits), body, name.decode("ascii")
    kept = raw[-keep:]
    if total is None or total < len(kept):
        total = len(kept)
    return LogRing(keep=keep, data=bytearray(kept), total=total, run=run)
