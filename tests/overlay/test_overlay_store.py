from __future__ import annotations

import pytest

from overlay import AdvertStore, InvalidAdvert, StoreLimits, open_advert, select_adverts, verify_advert
from overlay.dht import chunk_records
from seattlecore import KeyPair, PublicKey
from tests.support.dht import NOW, advert_blob, forged_blob, key_of, key_stream, seeded_keys

USER = seeded_keys("store-user").public
DKEY = key_of(USER)


def test_many_publishers_merge() -> None:
    store = AdvertStore()
    new = key_stream("store/test_many_publishers_merge")
    nodes = [new() for _ in range(5)]
    for node in nodes:
        assert store.offer(DKEY, advert_blob(node, USER), NOW) == "stored"
    assert len(store.blobs(DKEY, NOW)) == 5
    assert store.stats(NOW).records == 5


def test_highest_seq_wins_and_replay_rejected() -> None:
    store = AdvertStore()
    new = key_stream("store/test_highest_seq_wins_and_replay_rejected")
    node = new()
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
    new = key_stream("store/test_refresh_and_conflict")
    node = new()
    blob = advert_blob(node, USER, seq=3)
    store.offer(DKEY, blob, NOW)
    assert store.offer(DKEY, blob, NOW + 1) == "refreshed"
    with pytest.raises(InvalidAdvert) as info:
        store.offer(DKEY, advert_blob(node, USER, seq=3, address="h:9"), NOW)
    assert info.value.reason == "conflict"


def test_tombstone_withdraws_and_blocks_resurrection() -> None:
    store = AdvertStore()
    new = key_stream("store/test_tombstone_withdraws_and_blocks_resurrection")
    node = new()
    old = advert_blob(node, USER, seq=1)
    store.offer(DKEY, old, NOW)
    store.offer(DKEY, advert_blob(node, USER, seq=2, withdrawn=True), NOW)
    with pytest.raises(InvalidAdvert):
        store.offer(DKEY, old, NOW)
    sel = select_adverts([("a", b) for b in store.blobs(DKEY, NOW)], dht_key=DKEY, now=NOW)
    assert sel.candidates == () and sel.withdrawn == 1


def test_expiry_culls() -> None:
    store = AdvertStore()
    new = key_stream("store/test_expiry_culls")
    store.offer(DKEY, advert_blob(new(), USER, ttl=10), NOW)
    store.offer(DKEY, advert_blob(new(), USER, ttl=100), NOW)
    assert len(store.blobs(DKEY, NOW + 50)) == 1
    assert store.blobs(DKEY, NOW + 200) == [] and DKEY not in store
    assert store.stats(NOW + 200).records == 0


def test_forged_counted() -> None:
    store = AdvertStore()
    new = key_stream("store/test_forged_counted")
    with pytest.raises(InvalidAdvert):
        store.offer(DKEY, forged_blob(new(), USER, signer=new()), NOW)
    assert store.stats(NOW).rejected == {"bad_signature": 1}


def test_caps() -> None:
    limits = StoreLimits(max_records_per_key=4, max_per_publisher_per_key=2, max_per_publisher=3)
    store = AdvertStore(limits)
    new = key_stream("store/test_caps")
    flooder = new()
    accepted, reasons = store.offer_many(
        DKEY, [advert_blob(flooder, USER, vessel=f"v{i}") for i in range(5)], NOW
    )
    assert accepted == 2 and reasons == ["publisher_full"] * 3
    other_user = new().public
    store.offer(key_of(other_user), advert_blob(flooder, other_user), NOW)
    with pytest.raises(InvalidAdvert) as info:
        store.offer(key_of(other_user), advert_blob(flooder, other_user, vessel="z"), NOW)
    assert info.value.reason == "publisher_full"
    store.offer_many(DKEY, [advert_blob(new(), USER) for _ in range(2)], NOW)
    with pytest.raises(InvalidAdvert) as info:
        store.offer(DKEY, advert_blob(new(), USER), NOW)
    assert info.value.reason == "key_full"
    # expiry frees capacity
    assert store.stats(NOW + 10_000).records == 0


def test_select_keeps_highest_and_reports_rejections() -> None:
    new = key_stream("store/test_select_keeps_highest_and_reports_rejections")
    node = new()
    got = [
        ("p1", advert_blob(node, USER, seq=1, address="h:1")),
        ("p2", advert_blob(node, USER, seq=2, address="h:2")),
        ("p3", b"junk"),
        ("p4", b"junk"),
    ]
    sel = select_adverts(got, dht_key=DKEY, now=NOW)
    assert [a.address for a in sel.candidates] == ["h:2"]
    assert [(r.reason, r.source) for r in sel.rejected] == [("malformed", "p3")]


def padded(node: KeyPair, vessel: str) -> bytes:
    return advert_blob(node, USER, vessel=vessel + "x" * (60 - len(vessel)), address="p" * 240 + ":1")


def test_pages_interleave_sources_and_publishers() -> None:
    """Issue 11 item 2: 16 keys x 16 padded records must not push honest adverts off the
    pages a reader fetches."""
    store = AdvertStore()
    new = key_stream("store/test_pages_interleave_sources_and_publishers")
    honest = [new() for _ in range(24)]
    for i, node in enumerate(honest):
        store.offer(DKEY, advert_blob(node, USER, address=f"127.40.{i}.1:1"), NOW, origin=f"127.40.{i}.1")
    for _ in range(16):
        flooder = new()
        store.offer_many(DKEY, [padded(flooder, f"f{j}") for j in range(16)], NOW, origin="127.41.0.9")
    pages = chunk_records(store.blobs(DKEY, NOW))
    first_two = {verify_advert(b, dht_key=DKEY, now=NOW).node_key for page in pages[:2] for b in page}
    assert {n.public for n in honest} <= first_two


def test_one_network_holds_a_bounded_share_of_a_key() -> None:
    store = AdvertStore(StoreLimits(max_per_source_per_key=10))
    new = key_stream("store/test_one_network_holds_a_bounded_share_of_a_key")
    blobs = [advert_blob(new(), USER) for _ in range(15)]
    accepted, reasons = store.offer_many(DKEY, blobs, NOW, origin="127.42.0.1")
    assert accepted == 10 and set(reasons) == {"source_full"}
    # the same /24, another address: same network
    assert store.offer_many(DKEY, blobs[10:], NOW, origin="127.42.0.77")[0] == 0
    assert store.offer_many(DKEY, blobs[10:], NOW, origin="127.43.0.1")[0] == 5


def test_full_store_evicts_the_largest_source_newest_first() -> None:
    """Issue 11 item 6: a full store took no honest advert at all."""
    store = AdvertStore(StoreLimits(max_total_records=60))
    new = key_stream("store/test_full_store_evicts_the_largest_source_newest_first")
    flood = [advert_blob(new(), new().public) for _ in range(80)]
    flood_keys = [key_of(verify_any(b)) for b in flood]
    for blob, key in zip(flood, flood_keys, strict=True):
        try:
            store.offer(key, blob, NOW, origin="127.44.0.1")
        except InvalidAdvert as exc:
            assert exc.reason == "store_full"
    assert store.stats(NOW).records == 60
    for i in range(20):
        honest = advert_blob(new(), USER)
        assert store.offer(DKEY, honest, NOW, origin=f"127.45.{i}.1") == "stored"
    stats = store.stats(NOW)
    assert stats.records == 60 and stats.evicted == 20
    oldest = flood_keys[0]
    assert len(store.blobs(oldest, NOW)) == 1  # long-lived records stay; the newest went
    # the flooder cannot push the honest records back out
    with pytest.raises(InvalidAdvert):
        store.offer(flood_keys[70], flood[70], NOW, origin="127.44.0.1")
    assert len(store.blobs(DKEY, NOW)) == 20


def test_bytes_are_bounded_and_a_direct_publisher_owns_its_record() -> None:
    store = AdvertStore(StoreLimits(max_total_bytes=3000))
    new = key_stream("store/test_bytes_are_bounded_and_a_direct_publisher_owns_its_record")
    node = new()
    blob = advert_blob(node, USER, address="127.46.0.1:5")
    store.offer(DKEY, blob, NOW, origin="127.47.0.1")  # first seen via a replicating holder
    store.offer(DKEY, blob, NOW + 1, origin="127.46.0.1")  # then from the publisher itself
    assert list(store._group_entries) == ["v4:127.46.0.0/24"]
    for i in range(20):
        try:
            store.offer(DKEY, padded(new(), f"b{i}"), NOW, origin="127.48.0.1")
        except InvalidAdvert:
            pass
    assert store.stats(NOW).bytes <= 3000


def verify_any(blob: bytes) -> PublicKey:
    return open_advert(blob, now=NOW).user_key
