"""Pure tests: the per-RPC answer decoders, key-derived ids, address groups."""

from __future__ import annotations

import os

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay import BadAnswer, NodeIdentity
from overlay.answers import (
    MAX_CONTACTS,
    PAGE_BYTES,
    Contact,
    ValueAnswer,
    decode_contacts,
    decode_find_value,
    decode_hello,
    decode_page,
    decode_ping,
    decode_records,
    decode_store,
)
from overlay.netgroup import group_of, host_scope, may_introduce, source_group
from overlay.nodeid import check_id, id_digest
from tests.support.dht import TEST_BITS, seeded_identity

IDENT = seeded_identity("answers-ident")
OTHER = seeded_identity("answers-other")


def wire(ident: NodeIdentity = IDENT, host: str = "127.5.0.1", port: int = 4000) -> list[object]:
    return [ident.node_id, host, port, ident.pk, ident.nonce]


def contacts(listing: object, introducer: str = "loopback") -> list[Contact]:
    return decode_contacts(listing, introducer=introducer, bits=TEST_BITS)  # type: ignore[arg-type]


def test_good_contacts_decode() -> None:
    (one, two) = contacts([wire(), wire(OTHER, port=4001)])
    assert one == Contact(IDENT.node_id, "127.5.0.1", 4000, IDENT.pk, IDENT.nonce)
    assert two.addr == ("127.5.0.1", 4001)


@pytest.mark.parametrize("item", [
    [1, 2],                                              # the crash of issue 11, item 1
    [b"x" * 20, "127.0.0.1"],
    [IDENT.node_id[:19], "127.5.0.1", 1, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "localhost", 1, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", 0, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", 65536, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", "80", IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", True, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", 1, OTHER.pk, IDENT.nonce],  # id not derived from this key
    [os.urandom(20), "127.5.0.1", 1, IDENT.pk, IDENT.nonce],
    [IDENT.node_id, "127.5.0.1", 1, IDENT.pk],
    [IDENT.node_id, "x" * 100, 1, IDENT.pk, IDENT.nonce],
    None, "contact", {"id": IDENT.node_id},
])
def test_malformed_contact_refuses_the_answer(item: object) -> None:
    with pytest.raises(BadAnswer):
        contacts([wire(), item])


def test_contact_lists_are_bounded_and_scoped() -> None:
    with pytest.raises(BadAnswer):
        contacts([wire()] * (MAX_CONTACTS + 1))
    with pytest.raises(BadAnswer):
        contacts({"not": "a list"})
    # unroutable or out-of-scope contacts are dropped, the answer is kept
    listing = [wire(host="0.0.0.0"), wire(host="224.0.0.1"), wire(host="10.1.2.3", port=9),
               wire(host="127.9.9.9", port=8), wire(OTHER, host="93.184.216.34")]
    assert [c.host for c in contacts(listing, "global")] == ["93.184.216.34"]
    assert {c.host for c in contacts(listing, "private")} == {"10.1.2.3", "93.184.216.34"}
    assert len(contacts(listing, "loopback")) == 2  # repeated ids are dropped too


def test_puzzle_and_ids() -> None:
    assert check_id(IDENT.node_id, IDENT.pk, IDENT.nonce, TEST_BITS)
    assert not check_id(IDENT.node_id, IDENT.pk, bytes(8), TEST_BITS)
    assert id_digest(IDENT.pk, IDENT.nonce)[:20] == IDENT.node_id
    strong = NodeIdentity.generate(12)
    assert id_digest(strong.pk, strong.nonce)[20:] < b"\x00\x10" + b"\xff" * 10
    assert NodeIdentity.from_bytes(strong.to_bytes(), 12) == strong
    with pytest.raises(ValueError):
        NodeIdentity.from_bytes(strong.keys.seed + bytes(8), 12)


def test_hello_proves_the_key_at_that_address() -> None:
    challenge = os.urandom(16)
    contact = decode_hello(IDENT.hello(challenge), challenge=challenge, addr=("127.5.0.2", 7),
                           bits=TEST_BITS)
    assert contact.node_id == IDENT.node_id and contact.addr == ("127.5.0.2", 7)
    replayed = IDENT.hello(os.urandom(16))
    with pytest.raises(BadAnswer):  # an answer to someone else's challenge
        decode_hello(replayed, challenge=challenge, addr=("127.5.0.2", 7), bits=TEST_BITS)
    stolen = dict(IDENT.hello(challenge), sig=OTHER.hello(challenge)["sig"])
    with pytest.raises(BadAnswer):
        decode_hello(stolen, challenge=challenge, addr=("127.5.0.2", 7), bits=TEST_BITS)
    for bad in (None, [], {"id": IDENT.node_id}, dict(IDENT.hello(challenge), extra=1)):
        with pytest.raises(BadAnswer):
            decode_hello(bad, challenge=challenge, addr=("127.5.0.2", 7), bits=TEST_BITS)


def test_value_answers_and_pages() -> None:
    page = msgpack.packb([b"r" * 200], use_bin_type=True)
    answer = decode_find_value({"value": page, "pages": 1, "more": False, "nodes": [wire()]},
                               introducer="loopback", bits=TEST_BITS)
    assert isinstance(answer, ValueAnswer) and answer.records == [b"r" * 200]
    assert contacts([wire()]) == decode_find_value([wire()], introducer="loopback", bits=TEST_BITS)
    full = msgpack.packb([b"r" * 900] * 6, use_bin_type=True)
    many = decode_find_value({"value": full, "pages": 20, "nodes": []}, introducer="loopback",
                             bits=TEST_BITS)
    assert isinstance(many, ValueAnswer) and many.pages == 20
    for bad in ({"value": page, "pages": 0, "nodes": []}, {"value": page, "pages": "2", "nodes": []},
                {"value": full, "pages": 21, "nodes": []},  # more pages than a holder may serve
                {"value": page, "nodes": []}, {"value": page, "pages": 3, "nodes": []},  # short page
                {"value": 7, "pages": 1, "nodes": []}, {"value": page, "pages": 1, "nodes": [[1, 2]]}):
        with pytest.raises(BadAnswer):
            decode_find_value(bad, introducer="loopback", bits=TEST_BITS)
    assert decode_page(None) == []
    assert decode_page({"value": page, "more": False}) == [b"r" * 200]
    for junk in (msgpack.packb([1, 2]), msgpack.packb({"a": 1}), b"\xc1", b"x" * (PAGE_BYTES * 2),
                 msgpack.packb([b"x" * 1001])):
        with pytest.raises(BadAnswer):
            decode_records(junk)


def test_small_answers() -> None:
    assert decode_ping(IDENT.node_id) == IDENT.node_id
    assert decode_store(True) is True
    for bad in (1, "True", None):
        with pytest.raises(BadAnswer):
            decode_store(bad)
    with pytest.raises(BadAnswer):
        decode_ping(b"short")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_any_answer_is_data_or_bad_answer(answer: object) -> None:
    """Whatever a peer sends, a decoder returns data or raises BadAnswer, nothing else."""
    for decode in (lambda a: decode_contacts(a, introducer="global", bits=TEST_BITS),
                   lambda a: decode_find_value(a, introducer="global", bits=TEST_BITS),
                   decode_page, decode_store, decode_ping,
                   lambda a: decode_hello(a, challenge=bytes(16), addr=("127.0.0.1", 1), bits=TEST_BITS)):
        try:
            decode(answer)
        except BadAnswer:
            pass


def test_groups_and_scopes() -> None:
    assert group_of("127.3.4.5") == group_of("127.3.4.200") == "v4:127.3.4.0/24"
    assert group_of("127.3.5.5") != group_of("127.3.4.5")
    assert group_of("127.0.0.1") is None and group_of("::1") is None
    assert group_of("2001:db8:1:2::7") == group_of("2001:db8:1:ffff::1") == "v6:2001:db8:1::/48"
    assert group_of("::ffff:203.0.113.9") == "v4:203.0.113.0/24"
    assert host_scope("93.184.216.34") == "global" and host_scope("192.168.1.2") == "private"
    assert host_scope("127.1.2.3") == "loopback"
    with pytest.raises(ValueError):
        host_scope("0.0.0.0")
    assert may_introduce("loopback", "global") and not may_introduce("global", "private")
    assert source_group("127.0.0.1") == "host:127.0.0.1" and source_group("bogus").startswith("other:")
