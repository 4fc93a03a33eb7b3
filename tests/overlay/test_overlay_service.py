from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
import trio
import trio.testing

import overlay
from overlay import Announcer, FakeDirectory, PublishResult
from overlay.service import RETRY_FIRST
from seattlecore import KeyPair

EXPECTED_ALL = {
    "ADVERT_TTL",
    "REPLICA_KEYS",
    "REPUBLISH_INTERVAL",
    "Advert",
    "AdvertStore",
    "Announcer",
    "AnnouncerStats",
    "BadAnswer",
    "DhtConfig",
    "DhtNode",
    "DhtUnavailable",
    "Directory",
    "DiversityLimits",
    "FakeDirectory",
    "InvalidAdvert",
    "LookupResult",
    "NodeIdentity",
    "NodeStats",
    "OverlayError",
    "OverlayUsageError",
    "PublishResult",
    "Rejection",
    "Selection",
    "StoreLimits",
    "StoreStats",
    "dht_key_for",
    "dht_keys_for",
    "dht_loop",
    "lookup_once",
    "make_advert",
    "open_advert",
    "open_client",
    "open_dht_node",
    "parse_hostport",
    "query_status",
    "read_status_file",
    "select_adverts",
    "serve_dht",
    "sign_advert",
    "verify_advert",
}


def test_exported_members() -> None:
    assert set(overlay.__all__) == EXPECTED_ALL
    for name in overlay.__all__:
        assert getattr(overlay, name) is not None


class WallClock:
    """A wall clock that follows trio's (mock) clock."""

    def __init__(self, base: float = 1_700_000_000.0) -> None:
        self.base = base

    def __call__(self) -> float:
        return self.base + trio.current_time()


async def test_announcer_publishes_updates_and_withdraws(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = WallClock()
    directory = FakeDirectory(clock=clock)
    node = KeyPair.generate()
    alice, bob = KeyPair.generate().public, KeyPair.generate().public
    ann = Announcer(directory, node, "127.0.0.1:1224", republish_interval=300, ttl=750, clock=clock)
    ann.update([("v1", alice), ("v2", alice)])
    async with trio.open_nursery() as nursery:
        await nursery.start(ann.run)
        await trio.testing.wait_all_tasks_blocked()
        found = await directory.lookup(alice)
        assert sorted(a.vessel for a in found.candidates) == ["v1", "v2"]
        # an update re-announces at once, and withdraws the removed pair with a tombstone
        ann.update([("v1", bob)])
        await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() < 1
        assert [a.vessel for a in (await directory.lookup(bob)).candidates] == ["v1"]
        result = await directory.lookup(alice)
        assert result.candidates == () and result.withdrawn == 2
        # republish on the timer keeps records alive far beyond one TTL
        await trio.sleep(3000)
        assert [a.vessel for a in (await directory.lookup(bob)).candidates] == ["v1"]
        stats = ann.statistics()
        assert stats.rounds >= 10 and stats.failures == 0 and stats.advertised == 1
        assert stats.withdrawing == 0  # tombstones stop once old records must have expired
        nursery.cancel_scope.cancel()


async def test_stopped_announcer_ages_out(autojump_clock: trio.testing.MockClock) -> None:
    clock = WallClock()
    directory = FakeDirectory(clock=clock)
    user = KeyPair.generate().public
    ann = Announcer(directory, KeyPair.generate(), "h:1", republish_interval=10, ttl=25, clock=clock)
    ann.update([("v", user)])
    with trio.move_on_after(5):
        await ann.run()
    assert len((await directory.lookup(user)).candidates) == 1
    await trio.sleep(30)
    assert (await directory.lookup(user)).candidates == ()


async def test_announcer_rejects_bad_intervals() -> None:
    with pytest.raises(ValueError):
        Announcer(FakeDirectory(), KeyPair.generate(), "h:1", republish_interval=800, ttl=750)


class LonelyDirectory(FakeDirectory):
    """Reaches no peer for its first ``alone`` rounds (then the fake's one peer)."""

    def __init__(self, alone: int, clock: WallClock) -> None:
        super().__init__(clock=clock)
        self.alone = alone
        self.times: list[float] = []

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        self.times.append(trio.current_time())
        result = await super().publish(adverts)
        if len(self.times) <= self.alone:
            return replace(result, peers=0)
        return result


async def test_a_round_that_reached_no_peer_is_retried_soon(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A node alone at start (its bootstrap peer busy) must not wait a whole republish
    interval (300 s) before its adverts reach the DHT; retries back off to the interval."""
    clock = WallClock()
    directory = LonelyDirectory(alone=3, clock=clock)
    ann = Announcer(directory, KeyPair.generate(), "h:1", republish_interval=300, ttl=750, clock=clock)
    ann.update([("v1", KeyPair.generate().public)])
    async with trio.open_nursery() as nursery:
        await nursery.start(ann.run)
        await trio.sleep(700)
        nursery.cancel_scope.cancel()
    gaps = [round(b - a) for a, b in zip(directory.times, directory.times[1:], strict=False)]
    assert gaps[:5] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 300, 300]
