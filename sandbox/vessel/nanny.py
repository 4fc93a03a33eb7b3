"""Seattle's nanny: per-resource accounting inside a vessel (``repy_v2/nanny.py``).

Pure core: ``RateBucket.charge(amount, now)`` returns how long the caller must wait; the
``Nanny`` shell sleeps that long under a per-resource lock. Counted items (threads, files,
sockets) raise ResourceExhaustedError at the cap; ports outside the grant raise
ResourceForbiddenError.

Invariant: a rate bucket's level drains at ``limit`` units per second and never goes below 0;
a caller that pushes it over ``burst = BURST_SECONDS * limit`` waits ``(level - burst) / limit``
seconds, so over any window of T seconds a resource moves at most ``limit * (T + 0.1)``
units. (Seattle allowed a whole second of burst; 0.1 s keeps short measurements honest.)
As in Seattle, the level drains only when the resource is charged again: ``getresources()``
reports the level left by the last charge (4096 after one ``listfiles()``, however late).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.repy import ResourceExhaustedError, ResourceForbiddenError
from sandbox.resources import ITEMS, PORTS, RENEWABLE, ResourceTable

BURST_SECONDS = 0.1


@dataclass(slots=True)
class RateBucket:
    """A leaky bucket for one renewable resource (bytes/s, or calls' charges/s)."""

    limit: float
    level: float = 0.0
    last: float = 0.0
    total: float = 0.0

    def drain(self, now: float) -> None:
        """Let the level leak down to ``now``."""
        if now > self.last:
            self.level = max(0.0, self.level - (now - self.last) * self.limit)
            self.last = now

    def charge(self, amount: float, now: float) -> float:
        """Add ``amount`` at ``now``; return the seconds the caller must wait."""
        self.drain(now)
        self.level += amount
        self.total += amount
        if self.limit <= 0:
            return float("inf") if self.level > 0 else 0.0
        return max(0.0, (self.level - BURST_SECONDS * self.limit) / self.limit)

    def rate_used(self) -> float:
        """The level left by the last charge (Seattle reports this as the usage)."""
        return self.level


@dataclass(slots=True)
class ItemCounter:
    """A capped count of live items (threads, open files, sockets)."""

    limit: int
    used: int = 0

    def add(self, kind: str) -> None:
        if self.used >= self.limit:
            raise ResourceExhaustedError(f"{kind} limit reached ({self.limit})")
        self.used += 1

    def remove(self) -> None:
        self.used = max(0, self.used - 1)


@dataclass
class Nanny:
    """The thread-safe accounting shell used by the API."""

    table: ResourceTable
    clock: Callable[[], float] = time.monotonic
    sleeper: Callable[[float], None] = time.sleep
    buckets: dict[str, RateBucket] = field(init=False)
    items: dict[str, ItemCounter] = field(init=False)
    ports_used: dict[str, set[int]] = field(init=False)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    _rate_locks: dict[str, threading.Lock] = field(init=False)

    def __post_init__(self) -> None:
        now = self.clock()
        self.buckets = {
            kind: RateBucket(self.table[kind], last=now) for kind in RENEWABLE if kind != "cpu"
        }
        self._rate_locks = {kind: threading.Lock() for kind in self.buckets}
        self.items = {kind: ItemCounter(int(self.table[kind])) for kind in ITEMS}
        self.ports_used = {kind: set() for kind in PORTS}

    def set_limits(self, table: ResourceTable) -> None:
        """New limits while the program runs (the donor reshared): rates and item caps take
        ``table``'s values at once; the ports stay. A rate's level so far is kept (drained at
        the old rate up to now); items already in use above a lowered cap stay, new ones are
        refused until the count is under it."""
        now = self.clock()
        with self._lock:
            for kind, bucket in self.buckets.items():
                bucket.drain(now)
                bucket.limit = table[kind]
            for kind, counter in self.items.items():
                counter.limit = int(table[kind])
            self.table = ResourceTable(table.values, self.table.messport, self.table.connport)

    def charge(self, kind: str, amount: float) -> None:
        """Charge ``amount`` of a renewable and sleep until it drains under the limit.

        Callers are served one at a time per resource, as in Seattle, so many threads
        cannot together exceed the rate.
        """
        bucket = self.buckets[kind]
        with self._rate_locks[kind]:
            wait = bucket.charge(amount, self.clock())
            if wait == float("inf"):
                raise ResourceExhaustedError(f"{kind} is not granted to this vessel (limit 0)")
            if wait > 0:
                self.sleeper(wait)

    def wait(self, kind: str) -> None:
        """Seattle's ``tattle_quantity(kind, 0)``: block while the resource is over budget."""
        self.charge(kind, 0)

    def add_item(self, kind: str) -> None:
        """Count one more item; the lock is re-entrant because a collected handle may
        release its item from inside another call (``__del__`` runs where GC runs)."""
        with self._lock:
            self.items[kind].add(kind)

    def remove_item(self, kind: str) -> None:
        with self._lock:
            self.items[kind].remove()

    def check_port(self, kind: str, port: int) -> None:
        """Raise ResourceForbiddenError unless ``port`` is granted under ``kind``."""
        if port not in self.table.ports(kind):
            raise ResourceForbiddenError(f"local port {port} is not allowed ({kind})")
        with self._lock:
            self.ports_used[kind].add(port)

    def usage(self) -> dict[str, float | int | set[int]]:
        """Seattle's usage dict: rate levels (floats), item counts (ints), ports used (sets)."""
        with self._lock:
            out: dict[str, float | int | set[int]] = {
                kind: bucket.rate_used() for kind, bucket in self.buckets.items()
            }
            out.update({kind: counter.used for kind, counter in self.items.items()})
            out.update({kind: set(ports) for kind, ports in self.ports_used.items()})
        return out

    def totals(self) -> dict[str, float]:
        """Everything charged since the start, per renewable."""
        return {kind: bucket.total for kind, bucket in self.buckets.items()}
