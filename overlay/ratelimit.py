"""Per-source token-bucket rate limit, and a bounded set of recent addresses (pure; take ``now``)."""

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


class RecentSet:
    """Keys seen within ``ttl`` seconds, at most ``max_keys`` of them.

    When more than ``max_keys`` are fresh at once the set can no longer tell them apart:
    it forgets them and answers True for every key for ``ttl`` seconds (callers use it to
    *distrust* recent keys, so saturation fails safe).
    """

    def __init__(self, ttl: float, max_keys: int) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._seen: dict[str, float] = {}
        self._saturated_until = float("-inf")

    def note(self, key: str, now: float) -> None:
        if len(self._seen) >= self.max_keys and key not in self._seen:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.ttl}
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
                self._saturated_until = now + self.ttl
        self._seen[key] = now

    def recent(self, key: str, now: float) -> bool:
        if now < self._saturated_until:
            return True
        when = self._seen.get(key)
        return when is not None and now - when < self.ttl
