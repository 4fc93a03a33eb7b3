"""Admission control as a pure core: limits, eviction order, trust, token buckets."""

from __future__ import annotations

import pytest

from nodemanager.node.admission import Admission, Conn, PortLimits, TokenBucket, prefix_of

LIMITS = PortLimits(max_connections=10, reserved_connections=2, per_address=3, per_prefix=5,
                    address_rate=2.0, address_burst=2.0, prefix_rate=100.0,
                    prefix_burst=100.0, public_rate=100.0, public_burst=100.0)


def opened(admission: Admission, host: str, now: float = 0.0) -> Conn:
    result = admission.open(host, now)
    assert result.conn is not None
    return result.conn


def test_prefixes() -> None:
    limits = PortLimits()
    assert prefix_of("127.1.2.3", limits) == ("127.1.2.3", "127.1.2.0/24")
    assert prefix_of("::ffff:10.0.0.7", limits) == ("10.0.0.7", "10.0.0.0/24")
    assert prefix_of("2001:db8:1:2::5", limits) == ("2001:db8:1:2::5", "2001:db8:1::/48")
    assert prefix_of("fe80::1%eth0", limits)[1] == "fe80::/48"
    assert prefix_of("local", limits) == ("local", "local")


def test_limits_are_validated() -> None:
    for bad in ({"reserved_connections": 1024}, {"per_address": 0}, {"ipv4_prefix": 33},
                {"public_rate": 0.0}, {"address_burst": 0.5}):
        with pytest.raises(ValueError):
            PortLimits(**bad)  # type: ignore[arg-type]


def test_per_address_limit_evicts_the_longest_idle_of_that_address() -> None:
    admission = Admission(LIMITS)
    first, second, third = (opened(admission, "127.0.0.1", now=t) for t in (0, 1, 2))
    other = opened(admission, "127.0.0.2", now=0)
    admission.end(first, now=2.5)  # first answered a request last: second is the idlest
    result = admission.open("127.0.0.1", 3)
    assert result.evicted == (second,) and second.evicted
    assert not (first.evicted or third.evicted or other.evicted) and result.conn is not None
    assert admission.statistics().evicted_total == 1


def test_busy_connections_are_never_evicted() -> None:
    admission = Admission(LIMITS)
    conns = [opened(admission, "127.0.0.1", now=t) for t in range(3)]
    for conn in conns:
        admission.begin(conn)
    result = admission.open("127.0.0.1", 5)
    assert result.conn is None and result.evicted == ()
    assert admission.statistics().refused_total == 1
    admission.end(conns[1], now=6)
    assert admission.open("127.0.0.1", 7).evicted == (conns[1],)


def test_per_prefix_limit_evicts_within_the_prefix() -> None:
    admission = Admission(LIMITS)
    outsider = opened(admission, "127.0.9.1", now=-1)
    crowd = [opened(admission, f"127.0.0.{i}", now=i) for i in range(1, 6)]
    result = admission.open("127.0.0.77", 10)
    assert result.evicted == (crowd[0],)
    assert not outsider.evicted


def test_full_pool_evicts_from_the_largest_prefix_and_trusted_use_the_reserve() -> None:
    admission = Admission(LIMITS)
    small = [opened(admission, f"127.1.0.{i}", now=-10) for i in range(1, 3)]
    large = [opened(admission, f"127.2.0.{i}", now=i) for i in range(1, 6)]
    owner = opened(admission, "127.3.0.1", now=0)
    admission.trust(owner)
    # 7 public + 1 trusted; public slots are 10 - 2 = 8
    opened(admission, "127.4.0.1", now=20)
    result = admission.open("127.4.0.2", 21)
    assert result.evicted == (large[0],), "the biggest prefix sheds first, its idlest first"
    assert not any(conn.evicted for conn in small) and not owner.evicted
    stats = admission.statistics()
    assert (stats.connections, stats.trusted) == (9, 1)


def test_only_trusted_connections_make_a_newcomer_refused() -> None:
    limits = PortLimits(max_connections=3, reserved_connections=1)
    admission = Admission(limits)
    trusted = []
    for _ in range(3):  # each trusted at once (public slots are only 3 - 1 = 2)
        trusted.append(opened(admission, "127.0.0.1"))
        admission.trust(trusted[-1])
    assert admission.open("127.0.0.2", 1).conn is None
    admission.close(trusted[0])
    assert admission.open("127.0.0.2", 2).conn is not None
    assert admission.statistics().connections == 3


def test_close_is_idempotent_and_eviction_refunds_waiting_tokens() -> None:
    admission = Admission(LIMITS)
    conn = opened(admission, "127.0.0.1")
    assert [admission.charge(conn, 0.0) for _ in range(2)] == [0.0, 0.0]
    assert admission.charge(conn, 0.0) == pytest.approx(0.5)  # 2/s: one token of debt
    assert admission.statistics().waiting == 1
    admission.close(conn)
    admission.close(conn)
    assert admission.statistics().waiting == 0
    again = opened(admission, "127.0.0.1")
    assert admission.charge(again, 0.0) == pytest.approx(0.5), "the refund paid the debt back"


def test_token_bucket_debt_orders_waiters() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0, tokens=2.0, stamp=0.0)
    waits = [bucket.take(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    assert bucket.take(1.0) == 0.0  # refilled (and capped at the burst)
    assert bucket.full(10.0)


def test_bucket_tables_stay_bounded() -> None:
    admission = Admission(PortLimits(max_connections=4, reserved_connections=1,
                                     address_burst=1.0, address_rate=1.0))
    for index in range(100):
        conn = opened(admission, f"127.0.{index // 200}.{index % 200 + 1}", now=index)
        admission.charge(conn, float(index))
        admission.close(conn)
    assert len(admission._address_buckets) <= 16  # 4 x max_connections


def test_a_prefix_that_used_up_its_evictions_is_shed_and_others_still_get_in() -> None:
    limits = PortLimits(max_connections=6, reserved_connections=1, per_prefix=4,
                        evict_rate=0.5, evict_burst=2.0)
    admission = Admission(limits)
    crowd = [opened(admission, f"127.1.0.{i}") for i in range(1, 5)]
    assert all(admission.open(f"127.1.0.{i}", 1.0).conn for i in (5, 6))  # two evictions
    assert [conn.evicted for conn in crowd] == [True, True, False, False]
    shed = admission.open("127.1.0.7", 1.0)
    assert (shed.conn, shed.evicted, shed.shed) == (None, (), True)
    assert admission.open("127.2.0.1", 1.0).conn is not None  # another network: room
    assert admission.open("127.1.0.8", 3.0).conn is not None  # one token back after 2 s
    stats = admission.statistics()
    assert (stats.shed_total, stats.evicted_total, stats.refused_total) == (1, 3, 0)


def test_an_owner_newcomer_gives_its_eviction_token_back() -> None:
    limits = PortLimits(max_connections=3, reserved_connections=1, evict_rate=0.001,
                        evict_burst=1.0)
    admission = Admission(limits)
    opened(admission, "127.1.0.1")
    opened(admission, "127.1.0.2")
    owner = opened(admission, "127.0.0.1")  # crowded: costs 127.0.0.0/24 its only token
    admission.trust(owner)
    assert admission.open("127.0.0.1", 1.0).conn is not None  # not crowded: free
    third = admission.open("127.0.0.1", 1.0)  # crowded: uses the token given back
    assert third.conn is not None and len(third.evicted) == 1
    assert admission.open("127.0.0.1", 1.0).shed


def test_eviction_takes_from_the_largest_prefix_as_sizes_change() -> None:
    limits = PortLimits(max_connections=9, reserved_connections=1, evict_burst=100.0)
    admission = Admission(limits)
    a = [opened(admission, f"127.1.0.{i}", now=i) for i in range(1, 4)]
    b = [opened(admission, f"127.2.0.{i}", now=10 + i) for i in range(1, 6)]
    admission.close(b[0])
    admission.close(b[1])  # now 127.1.0.0/24 holds 3, 127.2.0.0/24 holds 3
    opened(admission, "127.3.0.1", now=20)
    opened(admission, "127.3.0.2", now=21)
    result = admission.open("127.4.0.1", 22)  # 8 public = the public slots: one must go
    assert result.evicted == (a[0],), "ties go to the prefix that reached the size first"
    result = admission.open("127.4.0.2", 23)
    assert result.evicted == (b[2],)
