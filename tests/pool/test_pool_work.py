"""Open-pool credentials and the proof of work (pure): encodings, bounds and binding."""

from __future__ import annotations

import pytest

from nodemanager import errors
from nodemanager.proto.pool import (
    Credential,
    check_credential,
    check_work,
    read_credential,
    sign_credential,
    solve_work,
    work_digest,
    zero_bits,
)
from seattlecore import KeyPair

NOW = 1_800_000_000.0
PLANNER = KeyPair(bytes(range(32)))
POOL = PLANNER.public
EVE, NODE = KeyPair(bytes(range(1, 33))).public, KeyPair(bytes(range(2, 34))).public


def open_cred(work: int = 10, **kw: object) -> Credential:
    fields: dict[str, object] = {"pool": POOL, "researcher": POOL, "vessels": 1,
                                 "issued": NOW - 60, "expires": NOW + 3600, "serial": 5,
                                 "work": work, **kw}
    return Credential(**fields)  # type: ignore[arg-type]


def test_an_open_credential_round_trips_and_serves_any_key() -> None:
    blob = sign_credential(PLANNER, open_cred())
    cred = check_credential(blob, pool=POOL, researcher=EVE, now=NOW)
    assert cred.open and cred.work == 10
    member = Credential(pool=POOL, researcher=EVE, vessels=1, issued=NOW - 60,
                        expires=NOW + 3600, serial=6)
    assert b"\xa1w" not in sign_credential(PLANNER, member)  # member credentials unchanged
    with pytest.raises(errors.BadCredential, match="another researcher"):
        check_credential(sign_credential(PLANNER, member), pool=POOL, researcher=NODE, now=NOW)


@pytest.mark.parametrize("bad", [{"work": 7}, {"work": 41}, {"work": 12, "researcher": EVE}])
def test_open_credentials_out_of_bounds_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(errors.BadPoolRecord):
        open_cred(**bad)


def test_work_is_bound_to_key_node_vessel_and_moment() -> None:
    cred = read_credential(sign_credential(PLANNER, open_cred(12)))
    work = solve_work(POOL, EVE, NODE, "v1", NOW, 12)
    assert zero_bits(work_digest(POOL, EVE, NODE, "v1", NOW, work)) >= 12
    assert check_work(cred, EVE, NODE, "v1", NOW, work)
    # the same counter elsewhere: valid only by the chance 2**-12 per binding; the seeded
    # inputs here are ones where it is not
    refused = 0
    for args in ((NODE, NODE, "v1", NOW), (EVE, EVE, "v1", NOW), (EVE, NODE, "v2", NOW),
                 (EVE, NODE, "v1", NOW + 1)):
        if zero_bits(work_digest(POOL, *args, work)) < 12:
            with pytest.raises(errors.InsufficientWork):
                check_work(cred, *args, work)
            refused += 1
    assert refused == 4
    with pytest.raises(errors.InsufficientWork, match="asks a proof of work"):
        check_work(cred, EVE, NODE, "v1", NOW, None)
    with pytest.raises(errors.InsufficientWork, match="bytes"):
        check_work(cred, EVE, NODE, "v1", NOW, b"\0" * 17)
