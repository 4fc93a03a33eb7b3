"""``FakeDirectory``: the publish/lookup seam in memory, for fast tests of other packages.

It applies the same validation and merge rules as a real storing node and reader
(``AdvertStore`` + ``select_adverts``). Share one ``AdvertStore`` between several fakes to
simulate several node managers and shells talking to one network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import trio

from overlay.advert import dht_key_for, open_advert
from overlay.results import LookupResult, PublishResult
from overlay.select import select_adverts
from overlay.store import AdvertStore
from seattlecore import PublicKey


class FakeDirectory:
    """An in-memory ``Directory``. ``clock`` is the wall clock used for expiry."""

    def __init__(self, store: AdvertStore | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store if store is not None else AdvertStore()
        self.clock = clock
        self.published: list[bytes] = []

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        keys = set()
        accepted = 0
        for blob in adverts:
            key = dht_key_for(open_advert(blob, now=now).user_key)
            keys.add(key)
            accepted += self.store.offer_many(key, [blob], now)[0]
            self.published.append(blob)
        return PublishResult(keys=len(keys), peers=1, stores_accepted=accepted, elapsed=0.0)

    async def lookup(self, user_key: PublicKey) -> LookupResult:
        await trio.lowlevel.checkpoint()
        key = dht_key_for(user_key)
        now = self.clock()
        sel = select_adverts([("fake", b) for b in self.store.blobs(key, now)], dht_key=key, now=now)
        return LookupResult(
            candidates=sel.candidates,
            rejected=sel.rejected,
            peers_answered=("fake",),
            elapsed=0.0,
            withdrawn=sel.withdrawn,
        )
