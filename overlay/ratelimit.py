"""Per-source token-bucket rate limit for incoming datagrams (pure; takes ``now``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Allow ``rate`` events per second per source with bursts up to ``burst``.

    Memory is bounded: when more than ``max_sources`` sources are tracked, the table is
    pruned of sources whose bucket has refilled completely (they are indistinguishable
    from new ones).
    """

    def __init__(self, rate: float, burst: float, max_sources: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, source: str, now: float) -> bool:
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._prune(now)
            bucket = self._buckets[source] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _prune(self, now: float) -> None:
        full = [s for s, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for source in full:
            del self._buckets[source]
        if len(self._buckets) >= self.max_sources:
            self._buckets.clear()
