"""The revocation list's pure rules: which list a node adopts from what a lookup returned."""

from __future__ import annotations

import pytest

from nodemanager import errors
from nodemanager.proto.revocation import (
    MAX_REVOKED,
    RevocationList,
    empty,
    newer,
    read_list,
    sign_pages,
)
from overlay import open_advert
from seattlecore import KeyPair

NOW = 1_800_000_000.0
PLANNER = KeyPair(bytes(range(32)))
POOL = PLANNER.public


def pages(revoked: RevocationList, signer: KeyPair = PLANNER) -> list:  # type: ignore[type-arg]
    if signer is not PLANNER:  # sign as if the signer were the pool, then claim the pool
        revoked = RevocationList(pool=signer.public, seq=revoked.seq, serials=revoked.serials)
    return [open_advert(b, now=NOW) for b in
            sign_pages(signer, revoked, publish_seq=1, expires_at=NOW + 600)]


def listed(seq: int, serials: range | list[int]) -> RevocationList:
    return RevocationList(pool=POOL, seq=seq, serials=frozenset(serials))


def test_the_highest_complete_list_wins_and_a_lower_one_never_replaces_it() -> None:
    big, small = listed(7, range(100)), listed(5, [1])
    assert len(pages(big)) == 3
    found = read_list(pages(big) + pages(small), POOL)
    assert found == big
    # a page of the newest list missing: the older complete one is all there is
    assert read_list(pages(big)[1:] + pages(small), POOL) == small
    # a node that adopted 7 refuses 5 (a replay), and adopts 8 even if it un-revokes
    assert newer(big, small) is None and newer(big, big) is None
    assert newer(big, listed(8, [])) == listed(8, [])
    assert newer(empty(POOL), None) is None


def test_lists_of_other_signers_or_pools_are_ignored() -> None:
    other = KeyPair(bytes(range(1, 33)))
    assert read_list(pages(listed(9, [3]), signer=other), POOL) is None
    assert read_list(pages(listed(9, [3])), other.public) is None


def test_an_oversized_list_cannot_be_made() -> None:
    with pytest.raises(errors.BadPoolRecord, match="at most"):
        listed(1, range(MAX_REVOKED + 1))
