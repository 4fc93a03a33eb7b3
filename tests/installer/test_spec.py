from __future__ import annotations

import pytest

from installer import SpecError, VesselShare, check_bootstrap, complete_shares, parse_vessel_arg
from seattlecore import KeyPair

A, B, C = (KeyPair.generate().public for _ in range(3))


def test_parse_vessel_arg() -> None:
    share = parse_vessel_arg(f"30:{A}:{B},{C}")
    assert share == VesselShare(percent=30, owner=A, users=(B, C))
    assert parse_vessel_arg(f"40%:{A}").users == ()


@pytest.mark.parametrize("text, reason", [
    (f"35:{A}", "multiple of 10"),
    (f"0:{A}", "multiple of 10"),
    (f"110:{A}", "multiple of 10"),
    (f"x:{A}", "whole number"),
    ("30:nothex", "bad public key"),
    (f"30:{A}:zz", "bad public key"),
    (f"30:{A}:{B},{B}", "twice"),
    ("30", "PERCENT:OWNERKEY"),
], ids=["35", "0", "110", "x", "nothex", "bad-user", "twice", "no-owner"])  # no random key in ids
def test_bad_vessel_args(text: str, reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        parse_vessel_arg(text)


def test_remainder_becomes_reserved_vessel() -> None:
    shares = complete_shares([VesselShare(percent=30, owner=A), VesselShare(percent=50, owner=B)], C)
    assert [s.percent for s in shares] == [30, 50, 20]
    assert shares[-1].reserved and shares[-1].owner == C


def test_exactly_100_has_no_reserved_vessel() -> None:
    shares = complete_shares([VesselShare(percent=100, owner=A)], C)
    assert len(shares) == 1 and not shares[0].reserved


def test_over_100_refused() -> None:
    with pytest.raises(SpecError, match="110 %"):
        complete_shares([VesselShare(percent=60, owner=A), VesselShare(percent=50, owner=B)], C)


def test_no_vessels_refused() -> None:
    with pytest.raises(SpecError, match="at least one"):
        complete_shares([], C)


def test_bootstrap_checks() -> None:
    assert check_bootstrap(["127.0.0.1:4000", "[::1]:5", "127.0.0.1:4000"]) == ("127.0.0.1:4000", "::1:5")
    for bad in (["nohost"], ["h:0"], ["h:70000"], [":1"], ["a b:1"]):
        with pytest.raises(SpecError, match="HOST:PORT"):
            check_bootstrap(bad)
    with pytest.raises(SpecError, match="at least one"):
        check_bootstrap([])
