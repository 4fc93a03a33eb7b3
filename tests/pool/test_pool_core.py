"""The pool's pure rules, and the give-back of an overshoot on in-process nodes.

The give-back test partitions two in-process node managers (each counts leases in a
``FakeDirectory`` of its own), so both grant a member with quota 1 (an overshoot of 1);
once they share one directory again, the recount ends the younger lease only.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from nodemanager import NodeServer, errors, open_node_client
from nodemanager.node.files import VesselStore
from nodemanager.node.pool import Lease, PoolConfig, live_leases, over_quota, renewed_deadline
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node, parse_spec
from nodemanager.node.state import NodeState
from nodemanager.proto.pool import (
    Credential,
    FreeTag,
    LeaseTag,
    check_credential,
    decode_tag,
    encode_tag,
    listing_key,
    sign_consent,
    sign_credential,
)
from overlay import Advert, AdvertStore, FakeDirectory, make_advert, open_advert
from seash.leases import Offer, choose
from seattlecore import KeyPair, load_private
from tests.support import poolwire as pw

NOW = 1_800_000_000.0
PLANNER = KeyPair.generate()
ALICE = KeyPair.generate()


def cred(vessels: int = 1, **kw: float) -> bytes:
    fields = {"issued": NOW - 10, "expires": NOW + 3600, **kw}
    return sign_credential(PLANNER, Credential(
        pool=PLANNER.public, researcher=ALICE.public, vessels=vessels,
        issued=fields["issued"], expires=fields["expires"], serial=7))


def test_credentials_checked_by_pool_researcher_time_and_revocation() -> None:
    good = cred()
    assert check_credential(good, pool=PLANNER.public, researcher=ALICE.public, now=NOW).serial == 7
    with pytest.raises(errors.BadCredential):
        check_credential(good, pool=ALICE.public, researcher=ALICE.public, now=NOW)
    with pytest.raises(errors.BadCredential):
        check_credential(good, pool=PLANNER.public, researcher=PLANNER.public, now=NOW)
    with pytest.raises(errors.CredentialExpired):
        check_credential(good, pool=PLANNER.public, researcher=ALICE.public, now=NOW + 3600)
    with pytest.raises(errors.CredentialRevoked):
        check_credential(good, pool=PLANNER.public, researcher=ALICE.public, now=NOW,
                         revoked=frozenset({7}))
    tampered = bytearray(good)
    tampered[-70] ^= 1
    with pytest.raises(errors.BadCredential):
        check_credential(bytes(tampered), pool=PLANNER.public, researcher=ALICE.public, now=NOW)


def lease(granted: float, deadline: float, vessel: str = "v1") -> Lease:
    return Lease(vessel=vessel, researcher=ALICE.public, granted=granted, deadline=deadline,
                 consent_at=granted, consent=bytes(64), serial=1, quota=1,
                 credential_expires=NOW + 30 * 86400)


def test_renewal_is_capped_at_the_longest_lease() -> None:
    config = PoolConfig(key=PLANNER.public, vessels=("v1",), lease=3600, max_lease=7200)
    held = lease(NOW, NOW + 3600)
    assert renewed_deadline(config, held, None, NOW + 1800) == NOW + 5400
    assert renewed_deadline(config, held, 60.0, NOW + 3500) == NOW + 3600  # never shorter
    assert renewed_deadline(config, held, None, NOW + 5000) == NOW + 7200  # capped
    with pytest.raises(errors.LeaseLimit):
        renewed_deadline(config, lease(NOW, NOW + 7200), None, NOW + 6000)
    with pytest.raises(errors.BadPoolRecord):
        PoolConfig(key=PLANNER.public, vessels=(), lease=10, max_lease=8 * 86400)


def record(node: KeyPair, vessel: str, granted: float, *, consent_by: KeyPair = ALICE,
           consent_node: KeyPair | None = None, pool: KeyPair = PLANNER,
           deadline: float | None = None) -> Advert:
    signer_node = consent_node or node
    consent = sign_consent(consent_by, pool.public, signer_node.public, vessel, granted)
    tag = encode_tag(LeaseTag(pool=pool.public, granted=granted,
                              deadline=deadline or granted + 3600, consent_at=granted,
                              consent=consent))
    blob = make_advert(node, address="127.0.0.1:1", vessel=vessel, user_key=ALICE.public,
                       seq=1, expires_at=NOW + 600, tag=tag)
    return open_advert(blob, now=NOW)


def test_only_consented_live_leases_of_the_pool_count_oldest_first() -> None:
    a, b, liar = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    adverts = [
        record(b, "v2", NOW - 5), record(a, "v1", NOW - 50),
        record(liar, "v1", NOW - 1, consent_by=liar),                # no consent of Alice's
        record(liar, "v1", NOW - 1, consent_node=a),                 # Alice's, for node a
        record(a, "v3", NOW - 1, pool=KeyPair.generate()),           # another pool
        record(a, "v4", NOW - 7200, deadline=NOW - 1),               # over
        record(a, "v5", NOW - 8 * 86400, deadline=NOW + 10),         # consent too old
    ]
    seen = live_leases(adverts, researcher=ALICE.public, pool=PLANNER.public, now=NOW)
    assert [(s.node, s.vessel) for s in seen] == [(a.public, "v1"), (b.public, "v2")]
    # the youngest past the quota give back; a node's own leases count when the DHT lost them
    mine = {"v2": lease(NOW - 5, NOW + 3600, "v2")}
    assert over_quota(seen, 1, b.public, mine) == ["v2"]
    assert over_quota(seen, 2, b.public, mine) == []
    assert over_quota(seen[:1], 1, b.public, mine) == ["v2"]
    assert over_quota(seen, 1, a.public, {"v1": lease(NOW - 50, NOW + 3600)}) == []


def test_tags_round_trip_and_garbage_is_refused() -> None:
    free = FreeTag(pool=PLANNER.public, cpu=0.5, memory=10, disk=20, reach="nat")
    assert decode_tag(encode_tag(free)) == free
    for junk in (b"", b"\xc1", pw.pack([1]), pw.pack({"k": "free"}), pw.pack({"k": "lease"}),
                 pw.pack({"k": "free", "p": b"x", "c": 1, "m": 1, "d": 1, "n": "public"}),
                 pw.pack({"k": "free", "p": bytes(32), "c": 1, "m": 1, "d": 1, "n": "moon"})):
        with pytest.raises(errors.BadPoolRecord):
            decode_tag(junk)


def test_choose_filters_by_kind_and_spreads_over_networks() -> None:
    offers = []
    for net in range(3):
        for host in range(4):
            node = KeyPair.generate()
            blob = make_advert(node, address=f"10.0.{net}.{host + 1}:1224", vessel="v1",
                               user_key=listing_key(PLANNER.public), seq=1, expires_at=NOW + 60,
                               tag=encode_tag(FreeTag(pool=PLANNER.public, cpu=1, memory=1,
                                                      disk=1, reach="nat" if host else "public")))
            offers.append(Offer(open_advert(blob, now=NOW), decode_tag(
                open_advert(blob, now=NOW).tag)))  # type: ignore[arg-type]
    spread = choose(offers, "any", True, random.Random(3))
    assert len({o.net for o in spread[:3]}) == 3 and len(spread) == 12
    assert {o.tag.reach for o in choose(offers, "public", False, random.Random(3))} == {"public"}
    assert len(choose(offers, "nat", True, random.Random(3))) == 9


@asynccontextmanager
async def pool_server(root: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[NodeServer, int]]:
    spec = parse_spec(__import__("json").dumps(pw.pool_spec(PLANNER.public.raw, 1)))
    init_node(root, spec)
    state = NodeState(root / STATE_FILE)
    from tests.support.fakes import FakeRunner
    server = NodeServer(keys=load_private(root / f"{NODE_KEY_NAME}.privatekey"), state=state,
                        store=VesselStore(root), runner=FakeRunner())
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    yield server, port


async def publish_leases(server: NodeServer, directory: FakeDirectory) -> None:
    blobs = [make_advert(server.keys, address="127.0.0.1:1", vessel=vessel, user_key=key,
                         seq=int(time.time() * 1000), expires_at=time.time() + 600, tag=tag)
             for (vessel, key), tag in server.advert_tags().items()]
    await directory.publish(blobs)


async def test_an_overshoot_is_detected_and_the_youngest_lease_given_back(
        tmp_path: Path, nursery: trio.Nursery) -> None:
    member = ALICE
    blob = sign_credential(PLANNER, Credential(
        pool=PLANNER.public, researcher=member.public, vessels=1, issued=time.time() - 10,
        expires=time.time() + 3600, serial=1))
    async with pool_server(tmp_path / "a", nursery) as (a, port_a), \
            pool_server(tmp_path / "b", nursery) as (b, port_b):
        assert a.pool is not None and b.pool is not None
        a.pool.attach(FakeDirectory(), "127.0.0.1:1")   # partitioned: neither sees the other
        b.pool.attach(FakeDirectory(), "127.0.0.1:2")
        for port, server in ((port_a, a), (port_b, b)):
            async with open_node_client("127.0.0.1", port, identity=member,
                                        node_key=server.node) as client:
                await client.acquire_vessel("v1", blob)
                await client.add_file("v1", "mine.txt", b"data")
            await trio.sleep(0.01)  # b's lease is the younger
        assert a.pool.book.leases and b.pool.book.leases  # overshoot: 2 leases, quota 1
        healed = FakeDirectory(AdvertStore())
        for server in (a, b):
            server.pool.attach(healed, "127.0.0.1:1")  # type: ignore[union-attr]
            await publish_leases(server, healed)
        assert await a.pool.give_back(member.public) == []
        assert await b.pool.give_back(member.public) == ["v1"]
        assert "v1" in a.pool.book.leases and not b.pool.book.leases
        assert b.state.vessels["v1"].users == () and b.store.list("v1") == []
        assert b.pool.status()["given_back"] == 1


def test_claims_count_for_grants_but_never_make_a_lease_give_back() -> None:
    a, b = KeyPair.generate(), KeyPair.generate()
    consent = sign_consent(ALICE, PLANNER.public, b.public, "v1", NOW - 100)
    claim = encode_tag(LeaseTag(pool=PLANNER.public, granted=NOW - 100, deadline=NOW + 600,
                                consent_at=NOW - 100, consent=consent, tentative=True))
    assert decode_tag(claim).tentative  # type: ignore[union-attr]
    blob = make_advert(b, address="127.0.0.1:1", vessel="v1", user_key=ALICE.public, seq=1,
                       expires_at=NOW + 30, tag=claim)
    seen = live_leases([open_advert(blob, now=NOW), record(a, "v1", NOW - 5)],
                       researcher=ALICE.public, pool=PLANNER.public, now=NOW)
    assert len(seen) == 2  # an acquisition counts the claim...
    # ...but the older claim does not push a granted lease past the quota
    assert over_quota(seen, 1, a.public, {"v1": lease(NOW - 5, NOW + 3600)}) == []
