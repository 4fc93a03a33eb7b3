from __future__ import annotations

import pytest

from overlay import AdvertStore, InvalidAdvert, StoreLimits, select_adverts
from seattlecore import KeyPair
from tests.overlay.overlay_helpers import NOW, advert_blob, forged_blob, key_of

USER = KeyPair.generate().public
DKEY = key_of(USER)


def test_many_publishers_merge() -> None:
    store = AdvertStore()
    nodes = [KeyPair.generate() for _ in range(5)]
    for node in nodes:
        assert store.offer(DKEY, advert_blob(node, USER), NOW) == "stored"
    assert len(store.blobs(DKEY, NOW)) == 5
    assert store.stats(NOW).records == 5


def test_highest_seq_wins_and_replay_rejected() -> None:
    store = AdvertStore()
    node = KeyPair.generate()
    store.offer(DKEY, advert_blob(node, USER, seq=5, address="h:5"), NOW)
    assert store.offer(DKEY, advert_blob(node, USER, seq=6, address="h:6"), NOW) == "replaced"
    with pytest.raises(InvalidAdvert) as info:
        store.offer(DKEY, advert_blob(node, USER, seq=5, address="h:5"), NOW)
    assert info.value.reason == "stale_seq"
    assert store.rejected["stale_seq"] == 1
    (only,) = store.blobs(DKEY, NOW)
    assert select_adverts([("x", only)], dht_key=DKEY, now=NOW).candidates[0].address == "h:6"


def test_refresh_and_conflict() -> None:
    store = AdvertStore()
    node = KeyPair.generate()
    blob = advert_blob(node, USER, seq=3)
    store.offer(DKEY, blob, NOW)
    assert store.offer(DKEY, blob, NOW + 1) == "refreshed"
    with pytest.raises(InvalidAdvert) as info:
        store.offer(DKEY, advert_blob(node, USER, seq=3, address="h:9"), NOW)
    assert info.value.reason == "conflict"


def test_tombstone_withdraws_and_blocks_resurrection() -> None:
    store = AdvertStore()
    node = KeyPair.generate()
    old = advert_blob(node, USER, seq=1)
    store.offer(DKEY, old, NOW)
    store.offer(DKEY, advert_blob(node, USER, seq=2, withdrawn=True), NOW)
    with pytest.raises(InvalidAdvert):
        store.offer(DKEY, old, NOW)
    sel = select_adverts([("a", b) for b in store.blobs(DKEY, NOW)], dht_key=DKEY, now=NOW)
    assert sel.candidates == () and sel.withdrawn == 1


def test_expiry_culls() -> None:
    store = AdvertStore()
    store.offer(DKEY, advert_blob(KeyPair.generate(), USER, ttl=10), NOW)
    store.offer(DKEY, advert_blob(KeyPair.generate(), USER, ttl=100), NOW)
    assert len(store.blobs(DKEY, NOW + 50)) == 1
    assert store.blobs(DKEY, NOW + 200) == [] and DKEY not in store
    assert store.stats(NOW + 200).records == 0


def test_forged_counted() -> None:
    store = AdvertStore()
    with pytest.raises(InvalidAdvert):
        store.offer(DKEY, forged_blob(KeyPair.generate(), USER, signer=KeyPair.generate()), NOW)
    assert store.stats(NOW).rejected == {"bad_signature": 1}


def test_caps() -> None:
    limits = StoreLimits(max_records_per_key=4, max_per_publisher_per_key=2, max_per_publisher=3)
    store = AdvertStore(limits)
    flooder = KeyPair.generate()
    accepted, reasons = store.offer_many(
        DKEY, [advert_blob(flooder, USER, vessel=f"v{i}") for i in range(5)], NOW
    )
    assert accepted == 2 and reasons == ["publisher_full"] * 3
    other_user = KeyPair.generate().public
    store.offer(key_of(other_user), advert_blob(flooder, other_user), NOW)
    with pytest.raises(InvalidAdvert) as info:
        store.offer(key_of(other_user), advert_blob(flooder, other_user, vessel="z"), NOW)
    assert info.value.reason == "publisher_full"
    store.offer_many(DKEY, [advert_blob(KeyPair.generate(), USER) for _ in range(2)], NOW)
    with pytest.raises(InvalidAdvert) as info:
        store.offer(DKEY, advert_blob(KeyPair.generate(), USER), NOW)
    assert info.value.reason == "key_full"
    # expiry frees capacity
    assert store.stats(NOW + 10_000).records == 0


def test_select_keeps_highest_and_reports_rejections() -> None:
    node = KeyPair.generate()
    got = [
        ("p1", advert_blob(node, USER, seq=1, address="h:1")),
        ("p2", advert_blob(node, USER, seq=2, address="h:2")),
        ("p3", b"junk"),
        ("p4", b"junk"),
    ]
    sel = select_adverts(got, dht_key=DKEY, now=NOW)
    assert [a.address for a in sel.candidates] == ["h:2"]
    assert [(r.reason, r.source) for r in sel.rejected] == [("malformed", "p3")]
