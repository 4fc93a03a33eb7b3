"""Pure parts of relaying: the relay's table, reservation proofs, relay choice, advert field."""

from __future__ import annotations

import msgpack
import pytest

from nodemanager.nat.relayclient import choose_relays
from nodemanager.nat.relaycore import RelayLimits, RelayRefused, RelayTable, parse_limit
from nodemanager.nat.relaywire import RelayProtocolError, check_reserve, sign_reserve
from overlay.advert import MAX_RELAYS, Advert, dht_key_for, make_advert, verify_advert
from overlay.errors import InvalidAdvert, OverlayUsageError
from seattlecore import KeyPair

NOW = 1_700_000_000.0


def key() -> KeyPair:
    return KeyPair.generate()


def test_reservation_limits_per_relay_address_and_prefix() -> None:
    table = RelayTable(RelayLimits(max_reservations=4, reservations_per_ip=2,
                                   reservations_per_prefix=3))
    table.reserve(key().public, "10.0.0.1", 1, NOW)
    table.reserve(key().public, "10.0.0.1", 2, NOW)
    with pytest.raises(RelayRefused, match=r"from 10\.0\.0\.1") as ip:
        table.reserve(key().public, "10.0.0.1", 3, NOW)
    table.reserve(key().public, "10.0.0.2", 4, NOW)
    with pytest.raises(RelayRefused, match=r"10\.0\.0\.0/24") as prefix:
        table.reserve(key().public, "10.0.0.3", 5, NOW)
    table.reserve(key().public, "10.9.0.1", 6, NOW)
    with pytest.raises(RelayRefused, match="maximum of 4") as full:
        table.reserve(key().public, "10.8.0.1", 7, NOW)
    assert {e.value.code for e in (ip, prefix, full)} == {"ReservationLimit"}
    assert len(table.reservations) == 4 and table.counters.refused_reservations == 3


def test_renewal_keeps_the_slot_and_the_newest_control_wins() -> None:
    table = RelayTable(RelayLimits(max_reservations=1, reservation_ttl=100))
    node = key().public
    table.reserve(node, "10.0.0.1", 1, NOW)
    held = table.reserve(node, "10.0.0.1", 2, NOW + 50)  # renewal at capacity: allowed
    assert held.expires == NOW + 150 and held.control == 2 and table.counters.renewals == 1
    table.release(node, 1)  # the replaced control connection ends: nothing happens
    assert node.raw in table.reservations
    table.release(node, 2)
    assert not table.reservations


def test_circuits_need_a_live_reservation_and_room() -> None:
    table = RelayTable(RelayLimits(reservation_ttl=10, circuits_per_reservation=1, max_circuits=2))
    a, b, c = key().public, key().public, key().public
    with pytest.raises(RelayRefused) as none:
        table.open_circuit(a, NOW)
    assert none.value.code == "NoReservation"
    for i, node in enumerate((a, b, c)):
        table.reserve(node, f"10.0.{i}.1", i, NOW)
    held = table.open_circuit(a, NOW)
    with pytest.raises(RelayRefused, match="relayed connections"):
        table.open_circuit(a, NOW)
    table.open_circuit(b, NOW)
    with pytest.raises(RelayRefused, match="maximum of 2 relayed"):
        table.open_circuit(c, NOW)
    table.close_circuit(held)
    with pytest.raises(RelayRefused) as expired:
        table.open_circuit(a, NOW + 11)
    assert expired.value.code == "NoReservation" and table.circuits == 1


def test_a_reservation_proof_is_bound_to_relay_challenge_and_time() -> None:
    node, relay, other = key(), key().public, key().public
    challenge = b"c" * 16
    msg = sign_reserve(node, relay, challenge, NOW)
    assert check_reserve(msg, relay=relay, challenge=challenge, now=NOW, window=300).node == node.public
    with pytest.raises(RelayProtocolError, match="another relay"):
        check_reserve(msg, relay=other, challenge=challenge, now=NOW, window=300)
    with pytest.raises(RelayProtocolError, match="challenge"):
        check_reserve(msg, relay=relay, challenge=b"d" * 16, now=NOW, window=300)
    with pytest.raises(RelayProtocolError, match="time window"):
        check_reserve(msg, relay=relay, challenge=challenge, now=NOW + 301, window=300)
    body = msgpack.unpackb(msg["body"])
    forged = {**msg, "body": msgpack.packb({**body, "node": key().public.raw})}
    with pytest.raises(RelayProtocolError, match="signature"):
        check_reserve(forged, relay=relay, challenge=challenge, now=NOW, window=300)


def test_relays_are_chosen_in_new_prefixes_first() -> None:
    candidates = ["10.0.0.1:1", "10.0.0.2:1", "10.0.1.1:1", "bad", "10.0.2.1:1", "10.0.3.1:1"]
    assert choose_relays(candidates, ["10.0.0.9:1"], ["10.0.2.1:1"], 2) == ["10.0.1.1:1", "10.0.3.1:1"]
    assert choose_relays(candidates, [], [], 5) == ["10.0.0.1:1", "10.0.1.1:1", "10.0.2.1:1",
                                                    "10.0.3.1:1", "10.0.0.2:1"]


def test_relay_limits_parse_like_port_limits() -> None:
    assert parse_limit("max_circuits=12") == ("max_circuits", 12)
    assert parse_limit("circuit_idle=2.5") == ("circuit_idle", 2.5)
    for bad in ("nope=1", "max_circuits", "max_circuits=x"):
        with pytest.raises(ValueError):
            parse_limit(bad)
    with pytest.raises(ValueError):
        RelayLimits(max_circuits=0)


def test_advert_relays_are_signed_bounded_and_absent_when_empty() -> None:
    node, user = key(), key().public
    relays = ("198.18.0.1:1300", "198.18.1.1:1300")
    blob = make_advert(node, address="198.19.0.1:1224", vessel="v1", user_key=user, seq=1,
                       expires_at=NOW + 600, relays=relays)
    assert verify_advert(blob, dht_key=dht_key_for(user), now=NOW).relays == relays
    plain = make_advert(node, address="198.19.0.1:1224", vessel="v1", user_key=user, seq=1,
                        expires_at=NOW + 600)
    version, body, _ = msgpack.unpackb(plain)
    assert "r" not in msgpack.unpackb(body)  # public nodes' records are as before
    _, body, sig = msgpack.unpackb(blob)
    fields = msgpack.unpackb(body)
    fields["r"] = ["203.0.113.66:1"]  # a relay swapped in without the node's key
    tampered = msgpack.packb([version, msgpack.packb(fields), sig])
    with pytest.raises(InvalidAdvert) as bad:
        verify_advert(tampered, dht_key=dht_key_for(user), now=NOW)
    assert bad.value.reason == "bad_signature"
    with pytest.raises(OverlayUsageError):
        Advert(node_key=node.public, address="198.19.0.1:1224", vessel="v1", user_key=user,
               seq=1, expires_at=NOW, relays=tuple(f"10.0.0.{i}:1" for i in range(MAX_RELAYS + 1)))
    fields["r"] = []
    empty = sign_advert_body(node, fields)
    with pytest.raises(InvalidAdvert, match="relays"):
        verify_advert(empty, dht_key=dht_key_for(user), now=NOW)


def sign_advert_body(node: KeyPair, fields: dict[str, object]) -> bytes:
    body = msgpack.packb(fields)
    return msgpack.packb([1, body, node.sign(b"seattle-advert-v1", body)])  # type: ignore[no-any-return]


async def test_the_relay_directory_lists_other_relays_only() -> None:
    import time

    from nodemanager.nat.relaydir import RELAY_DIRECTORY_KEY, RELAY_VESSEL, find_relays
    from overlay import FakeDirectory

    directory = FakeDirectory()
    me, relay, nated, stranger = key(), key(), key(), key()
    later = time.time() + 600

    def advert(keys: KeyPair, address: str, **more: object) -> bytes:
        fields: dict[str, object] = {"address": address, "vessel": RELAY_VESSEL,
                                     "user_key": RELAY_DIRECTORY_KEY, "seq": 1,
                                     "expires_at": later, **more}
        return make_advert(keys, **fields)  # type: ignore[arg-type]

    await directory.publish([
        advert(me, "198.18.0.1:1300"), advert(relay, "198.18.1.1:1300"),
        advert(nated, "198.19.0.1:1300", relays=("198.18.1.1:1300",)),
        make_advert(stranger, address="198.18.2.1:1", vessel="v1", user_key=RELAY_DIRECTORY_KEY,
                    seq=1, expires_at=later)])
    assert await find_relays(directory, me.public) == ["198.18.1.1:1300"]
