"""The hole-punch handshake's pure parts: messages, address rules, NAT verdicts, limits."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from nodemanager.errors import BadResponse
from nodemanager.nat import punchcore as pc
from nodemanager.nat.punchcore import Message


def body(message: Message) -> bytes:
    data = pc.encode(message)
    (length,) = pc.LENGTH.unpack(data[:2])
    assert length == len(data) - 2
    return data[2:]


@pytest.mark.parametrize("message", [
    Message(kind="connect", addrs=(("198.18.1.1", 40000),), nonce=b"n" * 16),
    Message(kind="connect", why="symmetric NAT: ports 1, 2"),
    Message(kind="sync"), Message(kind="stop"),
    Message(kind="result", ok=True), Message(kind="result", ok=False),
])
def test_messages_round_trip(message: Message) -> None:
    assert pc.decode(body(message)) == message


def test_magic_is_never_a_request_frame() -> None:
    from nodemanager.proto.wire import MAX_FRAME_BYTES
    assert int.from_bytes(pc.MAGIC, "big") > MAX_FRAME_BYTES


@pytest.mark.parametrize("raw, match", [
    (b"\xc1", "not valid msgpack"),
    (msgpack.packb([1, 2]), "not a handshake message"),
    (msgpack.packb({"t": "hello"}), "not a handshake message"),
    (msgpack.packb({"t": "result", "ok": 1}), "boolean ok"),
    (msgpack.packb({"t": "connect", "v": 2, "addrs": []}), "unsupported version"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [["1.2.3.4", 5]] * 5}), "at most 4"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [["1.2.3.4", 0]]}), r"not \[ip, port\]"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [["1.2.3.4", True]]}), r"not \[ip, port\]"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [["::1", 5000]]}), "bad address"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [["host.example", 5000]]}), "bad address"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [], "nonce": b"short"}, use_bin_type=True),
     "bad nonce"),
    (msgpack.packb({"t": "connect", "v": 1, "addrs": [], "why": "\x1b[2J"}), "reason text"),
    (b'\x82\xa1t\xa4sync\xa1t\xa4stop', "more than once"),
    (b"x" * (pc.MAX_MESSAGE + 1), "too long"),
])
def test_hostile_messages_are_refused(raw: bytes, match: str) -> None:
    with pytest.raises(BadResponse, match=match):
        pc.decode(raw)


def test_dial_target_only_the_peer_and_never_low_or_forbidden_ports() -> None:
    peer = "198.18.11.1"
    assert pc.dial_target([(peer, 40000)], peer) == ((peer, 40000), "")
    third, why = pc.dial_target([("198.18.99.1", 40000)], peer)
    assert third is None and "not the peer's address" in why
    low, why = pc.dial_target([(peer, 22)], peer)
    assert low is None and "port 22 may not be dialled" in why
    banned, why = pc.dial_target([(peer, 63000)], peer, [range(62000, 64000)])
    assert banned is None and "63000" in why
    # the first acceptable candidate wins, refused ones before it are skipped
    assert pc.dial_target([("198.18.99.1", 5000), (peer, 80), (peer, 5001)], peer)[0] == (peer, 5001)
    assert pc.dial_target([], peer) == (None, "the peer offered no address")
    for bad in ("224.0.0.1", "0.0.0.0", "127.0.0.1"):
        assert pc.dial_target([(bad, 5000)], None)[0] is None


def test_classify_tells_cone_from_symmetric() -> None:
    assert pc.classify(40000, [("198.18.11.1", 40000), ("198.18.11.1", 40000)]).addr == ("198.18.11.1", 40000)
    symmetric = pc.classify(40000, [("198.18.11.1", 51234), ("198.18.11.1", 60007)])
    assert symmetric.addr is None and "symmetric NAT" in symmetric.why and "51234" in symmetric.why
    split = pc.classify(40000, [("198.18.11.1", 40000), ("198.18.12.1", 40000)])
    assert split.addr is None and "disagree" in split.why
    assert pc.classify(40000, [("198.18.11.1", 41000)]).addr == ("198.18.11.1", 41000)
    assert pc.classify(40000, []).addr is None


def test_sync_delay_is_half_the_rtt_and_bounded() -> None:
    assert pc.sync_delay(0.08) == pytest.approx(0.04)
    assert pc.sync_delay(30.0) == pc.MAX_WAIT
    assert pc.sync_delay(-1.0) == 0.0


def test_limiter_rate_per_peer_with_fake_time() -> None:
    limiter = pc.PunchLimiter(concurrent=8, per_minute=6, burst=3)
    for _ in range(3):
        assert limiter.acquire("a", 0.0) is None
        limiter.release()
    refused = limiter.acquire("a", 1.0)
    assert refused is not None and "punch rate" in refused
    assert limiter.acquire("b", 1.0) is None  # another peer is not affected
    limiter.release()
    assert limiter.acquire("a", 11.0) is None  # 6/min: one token back after 10 s
    assert limiter.charge("a", 11.0) is False
    limiter.release()


def test_limiter_bounds_concurrent_punches_and_memory() -> None:
    limiter = pc.PunchLimiter(concurrent=2, max_peers=10)
    assert limiter.acquire("a", 0.0) is None and limiter.acquire("b", 0.0) is None
    assert "already running" in (limiter.acquire("c", 0.0) or "")
    limiter.release()
    assert limiter.acquire("c", 0.0) is None
    for peer in range(100):  # many sources: the table stays bounded
        limiter.release()
        limiter.acquire(f"10.0.0.{peer}", float(peer))
    assert len(limiter._buckets) <= 10


def test_classify_knows_a_public_address() -> None:
    seen = [("198.18.14.1", 40000), ("198.18.14.1", 40000)]
    assert pc.classify(40000, seen, seen).public
    assert not pc.classify(40000, seen, [("198.19.0.2", 40000)] * 2).public  # behind a NAT
    assert not pc.classify(40000, seen).public  # our own end unknown: assume not


@pytest.mark.parametrize("initiator, responder, roles", [
    # (initiator offer, responder offer) -> (initiator's role, responder's role)
    ((("1.1.1.1", 5000), False), (("2.2.2.2", 5000), False), ("simultaneous", "simultaneous")),
    ((("1.1.1.1", 5000), True), (None, False), ("listen", "connect")),  # reversal: symmetric donor
    ((None, False), (("2.2.2.2", 5000), True), ("connect", "listen")),
    ((("1.1.1.1", 5000), True), (("2.2.2.2", 5000), True), ("connect", "listen")),
    ((None, False), (("2.2.2.2", 5000), False), (None, None)),  # symmetric <-> cone
    ((None, True), (None, False), (None, None)),  # "public" without an address means nothing
])
def test_both_sides_choose_matching_roles(initiator: tuple[Any, bool], responder: tuple[Any, bool],
                                          roles: tuple[str | None, str | None]) -> None:
    i, r = pc.Offer(*initiator), pc.Offer(*responder)
    assert pc.choose_role(i, r, as_initiator=True) == roles[0]
    assert pc.choose_role(i, r, as_initiator=False) == roles[1]
