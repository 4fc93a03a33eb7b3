from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay import Advert, InvalidAdvert, OverlayUsageError, sign_advert, verify_advert
from overlay.advert import MAX_RECORD_BYTES, MAX_TTL
from tests.support.dht import NOW, advert_blob, forged_blob, key_of, key_stream, seeded_keys

NODE = seeded_keys("advert-node")
USER = seeded_keys("advert-user").public


def test_roundtrip_and_size() -> None:
    blob = advert_blob(NODE, USER, vessel="v" * 64, address="host.example.org:65535")
    assert len(blob) < 400
    ad = verify_advert(blob, dht_key=key_of(USER), now=NOW)
    assert ad.node_key == NODE.public and ad.user_key == USER
    assert (ad.vessel, ad.seq, ad.withdrawn) == ("v" * 64, 1, False)


def test_forged_signature_rejected() -> None:
    new = key_stream("advert/test_forged_signature_rejected")
    blob = forged_blob(NODE, USER, signer=new())
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(blob, dht_key=key_of(USER), now=NOW)
    assert info.value.reason == "bad_signature"


def test_tampered_body_rejected() -> None:
    version, body, sig = msgpack.unpackb(advert_blob(NODE, USER))
    body = body.replace(b"127.0.0.1", b"127.0.0.2")
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(msgpack.packb([version, body, sig]), dht_key=key_of(USER), now=NOW)
    assert info.value.reason == "bad_signature"


def test_wrong_key_binding() -> None:
    new = key_stream("advert/test_wrong_key_binding")
    other = new().public
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(advert_blob(NODE, USER), dht_key=key_of(other), now=NOW)
    assert info.value.reason == "wrong_key"


@pytest.mark.parametrize(
    ("ttl", "reason"), [(-1.0, "expired"), (0.0, "expired"), (MAX_TTL + 10_000, "too_far_expiry")]
)
def test_time_checks(ttl: float, reason: str) -> None:
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(advert_blob(NODE, USER, ttl=ttl), dht_key=key_of(USER), now=NOW)
    assert info.value.reason == reason


def test_oversize_rejected_before_decoding() -> None:
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(b"\x00" * (MAX_RECORD_BYTES + 1), dht_key=key_of(USER), now=NOW)
    assert info.value.reason == "oversize"


def test_bad_version() -> None:
    _, body, sig = msgpack.unpackb(advert_blob(NODE, USER))
    with pytest.raises(InvalidAdvert) as info:
        verify_advert(msgpack.packb([2, body, sig]), dht_key=key_of(USER), now=NOW)
    assert info.value.reason == "bad_version"


def test_sign_requires_node_key() -> None:
    ad = Advert(node_key=NODE.public, address="h:1", vessel="v", user_key=USER, seq=1, expires_at=NOW)
    new = key_stream("advert/test_sign_requires_node_key")
    with pytest.raises(OverlayUsageError):
        sign_advert(new(), ad)


@pytest.mark.parametrize(
    "kwargs",
    [{"address": "nohost"}, {"address": "h:0"}, {"vessel": ""}, {"vessel": "a\nb"}, {"seq": -1}],
)
def test_advert_field_validation(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "node_key": NODE.public,
        "address": "h:1",
        "vessel": "v",
        "user_key": USER,
        "seq": 1,
        "expires_at": NOW,
    }
    fields.update(kwargs)
    with pytest.raises(OverlayUsageError):
        Advert(**fields)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_garbage_never_crashes(data: bytes) -> None:
    with pytest.raises(InvalidAdvert):
        verify_advert(data, dht_key=key_of(USER), now=NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c),
    )
)
def test_structured_garbage_never_crashes(obj: object) -> None:
    with pytest.raises(InvalidAdvert):
        verify_advert(msgpack.packb(obj), dht_key=key_of(USER), now=NOW)
