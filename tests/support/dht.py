"""Waiting on the DHT: announcing is asynchronous, so tests look up until the answer is right."""

from __future__ import annotations

from collections.abc import Callable

from overlay import LookupResult, lookup_once
from seattlecore import PublicKey
from tests.support.polling import eventually


async def lookup_until(key: PublicKey, bootstrap: tuple[str, int], accept: Callable[[LookupResult], bool],
                       *, timeout: float = 30, what: str = "") -> LookupResult:
    """Look ``key`` up through ``bootstrap`` until ``accept(result)``; return that result."""
    async def answer() -> LookupResult | None:
        result = await lookup_once(key, [bootstrap], timeout=5)
        return result if accept(result) else None

    return await eventually(answer, timeout=timeout, interval=0.2,
                            what=what or f"adverts of {key.short()}")
