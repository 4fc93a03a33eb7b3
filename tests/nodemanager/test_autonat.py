"""Reachability decisions (pure, ``now`` passed in) and the dial-back lines."""

from __future__ import annotations

import random

import pytest

from nodemanager import BadResponse
from nodemanager.nat.autonat import (
    Answer,
    Confidence,
    DialBudget,
    DialRequest,
    Kind,
    ServerLimits,
    agreed_address,
    answer_line,
    choose_servers,
    dht_client_mode,
    parse_answer,
    parse_request,
    plan_round,
    probe_order,
)
from nodemanager.nat.reachability import Reach


def decide(outcomes: list[bool]) -> list[Reach]:
    confidence = Confidence()
    return [confidence.add(o) for o in outcomes]


def test_two_agreeing_outcomes_decide() -> None:
    U, PUB, PRI = Reach.UNKNOWN, Reach.PUBLIC, Reach.PRIVATE
    assert decide([True, True]) == [U, PUB]
    assert decide([False, False]) == [U, PRI]
    assert decide([True, False, True, False]) == [U, U, U, U]  # never a margin of 2
    # a decision stands until the window (last 5) turns by a margin of 2 the other way
    assert decide([True, True, False, False, False, False]) == [U, PUB, PUB, PUB, PUB, PRI]


def test_one_liar_among_honest_servers_cannot_flip_a_decision() -> None:
    confidence = Confidence()
    for outcome in [True, True, False, True, True, False, True]:  # every third lies
        confidence.add(outcome)
    assert confidence.decided is Reach.PUBLIC
    assert confidence.tally == (3, 2)


def test_observed_address_needs_two_agreeing_observers() -> None:
    assert agreed_address([]) is None
    assert agreed_address([("a", "198.51.100.1")]) is None  # one observer is not enough
    assert agreed_address([("a", "198.51.100.1"), ("b", "198.51.100.1")]) == "198.51.100.1"
    assert agreed_address([("a", "198.51.100.1"), ("b", "203.0.113.9")]) is None  # a tie
    # one observer repeating itself counts once (latest answer wins)
    assert agreed_address([("a", "203.0.113.9"), ("a", "203.0.113.9"), ("b", "198.51.100.1")]) is None
    three = [("a", "x"), ("b", "x"), ("c", "y")]
    assert agreed_address(three) == "x"


def test_servers_from_distinct_prefixes_and_fresh_first() -> None:
    peers = [("198.51.100.1", 1), ("198.51.100.2", 2), ("203.0.113.1", 3), ("192.0.2.1", 4)]
    assert choose_servers(peers, 3) == [("198.51.100.1", 1), ("203.0.113.1", 3), ("192.0.2.1", 4)]
    # after asking those, the others come first; the /24 rule still holds among them
    again = choose_servers(peers, 3, recent=[("198.51.100.1", 1), ("203.0.113.1", 3)])
    assert again[:2] == [("198.51.100.2", 2), ("192.0.2.1", 4)]
    assert choose_servers(peers, 2, exclude=[("198.51.100.1", 1)]) == [
        ("198.51.100.2", 2), ("203.0.113.1", 3)]
    assert choose_servers(peers[:1] * 5, 3) == [("198.51.100.1", 1)]  # duplicates once


def test_dht_mode() -> None:
    assert dht_client_mode(Reach.PRIVATE, can_probe=False)
    assert not dht_client_mode(Reach.PUBLIC, can_probe=True)
    assert dht_client_mode(Reach.UNKNOWN, can_probe=True)  # a contact only once proven
    assert not dht_client_mode(Reach.UNKNOWN, can_probe=False)  # the first node serves


def test_request_and_answer_lines_round_trip() -> None:
    request = DialRequest(Kind.UDP, 40312, bytes(range(16)))
    assert request.line() == b"seattle-dialback 1 udp 40312 000102030405060708090a0b0c0d0e0f\n"
    assert parse_request(request.line()) == request
    assert parse_answer(answer_line(Answer.DIALED)) is Answer.DIALED
    assert parse_answer(answer_line(Answer.REFUSED, "rate")) is Answer.REFUSED


@pytest.mark.parametrize("line", [
    b"", b"seattle-dialback 1 tcp 80 " + b"0" * 32,  # no newline
    b"seattle-dialback 2 tcp 80 " + b"0" * 32 + b"\n",
    b"seattle-dialback 1 sctp 80 " + b"0" * 32 + b"\n",
    b"seattle-dialback 1 tcp 0 " + b"0" * 32 + b"\n",
    b"seattle-dialback 1 tcp 65536 " + b"0" * 32 + b"\n",
    b"seattle-dialback 1 tcp 0080 " + b"0" * 31 + b"\n",
    b"seattle-dialback 1 tcp 198.51.100.7:80 " + b"0" * 32 + b"\n",  # no address, ever
    b"seattle-dialback 1 tcp 80 " + b"0" * 30 + b"\n",
    b"seattle-dialback 1 tcp 80 " + b"A" * 32 + b"\n",
    b"seattle-dialback 1 tcp 80 " + b"0" * 32 + b" 198.51.100.7\n",
    b"seattle-dialback 1 tcp \xff " + b"0" * 32 + b"\n", b"x" * 200 + b"\n",
])
def test_bad_requests_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_request(line)


@pytest.mark.parametrize("line", [b"", b"seattle-dialback 1 maybe\n", b"HTTP/1.1 200 OK\r\n",
                                  b"seattle-dialback 1 dialed", b"seattle-dialback 1 \xff\n"])
def test_bad_answers_are_refused(line: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_answer(line)


def test_budget_per_source_total_and_concurrency() -> None:
    budget = DialBudget(ServerLimits(per_source=12, total=60, burst=60, concurrent=100))
    now = 1000.0
    took = [budget.take("198.51.100.1", now) for _ in range(20)]
    assert took.count(None) == 12 and set(took[12:]) == {"rate"}
    for _i in range(12):
        budget.done()
    others = [budget.take(f"203.0.113.{i}", now) for i in range(100)]
    assert others.count(None) == 60 - 12  # the total is shared
    for _ in range(48):
        budget.done()
    assert budget.take("192.0.2.1", now + 60) is None  # refilled after a minute
    budget.done()
    small = DialBudget(ServerLimits(concurrent=2))
    assert [small.take(f"s{i}", now) for i in range(3)] == [None, None, "busy"]
    small.done()
    assert small.take("s9", now) is None


def test_budget_memory_is_bounded() -> None:
    budget = DialBudget(ServerLimits(total=1e9, concurrent=10**9, max_sources=100))
    for i in range(10_000):
        budget.take(f"10.{i // 256}.{i % 256}.1", 5.0 + i * 1e-6)
    assert len(budget._per_source._buckets) <= 100


def test_probe_order_spreads_over_contacts_and_keeps_the_bootstrap_peer_last() -> None:
    boot = [("192.0.2.1", 1)]
    contacts = [(f"198.51.100.{i}", 2) for i in range(1, 9)] + boot
    orders = {tuple(probe_order(contacts, boot, random.Random(seed))) for seed in range(20)}
    assert all(order[-1] == boot[0] and len(order) == 9 for order in orders)
    assert len({order[0] for order in orders}) >= 4  # newcomers do not all ask the same peer
    assert probe_order([], boot, random.Random(1)) == boot


def test_plan_round_asks_a_lone_peer_enough_times_and_keeps_stand_ins() -> None:
    peers = [(f"198.51.100.{i}", 1) for i in range(1, 6)]
    first, spare = plan_round(peers, 3, need=2)
    assert first == peers[:3] and spare[Kind.TCP] == spare[Kind.UDP] == peers[3:]
    spare[Kind.TCP].pop()
    assert spare[Kind.UDP] == peers[3:]  # each port has its own stand-ins
    assert plan_round(peers[:1], 3, need=2) == ([peers[0]] * 2, {Kind.TCP: [], Kind.UDP: []})
    assert plan_round([], 3, need=2) == ([], {Kind.TCP: [], Kind.UDP: []})


def test_budget_burst_then_pace() -> None:
    budget = DialBudget(ServerLimits(per_source=1e9, total=600, burst=120, concurrent=10**9))
    now = 1000.0
    assert [budget.take(f"s{i}", now) for i in range(121)].count(None) == 120
    assert budget.take("late", now) == "busy"
    assert [budget.take(f"t{i}", now + 1.0) for i in range(11)].count(None) == 10  # 600/min
