"""Revocation without a server: ``seattle-installer revoke`` publishes a signed list into the
DHT; pool nodes adopt the highest list, refuse and end the revoked members' leases.

The attacker builds revocation pages by hand (msgpack, from docs/pool.md) and stores them
in the DHT as a hostile client: forged (signed by another key), for another pool, oversized,
and a replay of an older list after a newer one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio_asyncio

from overlay import dht_keys_for, lookup_once, make_advert, open_advert, open_client
from seattlecore import KeyPair, PublicKey, save_keypair
from tests.support import poolwire as pw
from tests.support.daemons import Daemon
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

NET = 48
PLANNER = pw.WORLD_PLANNER
POOL = pw.POOL_OF_WORLD


def host(i: int) -> str:
    return f"127.{NET}.{i}.1"


def boot(nodes: list[Daemon]) -> str:
    return f"{host(0)}:{nodes[0].dht_port}"


async def publish(nodes: list[Daemon], blobs: list[bytes], accepted: bool | None = True) -> None:
    """Store ``blobs`` as a hostile DHT client; ``accepted``: some peer must take them (the
    client asks again while its bootstrap knows no peer yet)."""
    async def once() -> bool:
        async with open_client([(host(0), nodes[0].dht_port or 0)]) as client:
            result = await client.publish(blobs)
        return accepted is None or (result.stores_accepted > 0) == accepted
    await eventually(once, timeout=30, interval=1, what="the attacker's records stored")


async def raw_records(nodes: list[Daemon], key: PublicKey) -> list[bytes]:
    """The record blobs DHT peers hold under ``key`` (what a hostile peer can capture)."""
    async with open_client([(host(0), nodes[0].dht_port or 0)]) as client:
        found = await trio_asyncio.aio_as_trio(client._search)(dht_keys_for(key))
        return [blob for _, blob in found.records]


def revocation_key(pool: bytes) -> PublicKey:
    return PublicKey(hashlib.blake2b(b"seattle/pool/revoked/v1\x00" + pool,
                                     digest_size=32).digest())


def page(signer: KeyPair, *, pool: bytes, seq: int, serials: list[int], index: int = 0,
         count: int = 1, under: bytes | None = None, slot: str | None = None) -> bytes:
    """One hand-built revocation page, signed by ``signer`` as the advert's node key."""
    tag = msgpack.packb({"k": "revoked", "p": pool, "q": seq, "i": index, "n": count,
                         "s": b"".join(s.to_bytes(8, "big") for s in serials)},
                        use_bin_type=True)
    return make_advert(signer, address="x.invalid:9", vessel=slot or f"revoked-{index}",
                       user_key=revocation_key(under or pool), seq=int(time.time() * 1000),
                       expires_at=time.time() + 600, tag=bytes(tag))


async def status(nodes: list[Daemon], i: int) -> dict[str, Any]:
    got = await pw.send(nodes[i].port, pw.frame(pw.pack(pw.body("GetNodeStatus"))), host=host(i))
    pool: dict[str, Any] = got["result"]["pool"]
    return pool


def revoke(tmp_path: Path, nodes: list[Daemon], *serials: str) -> str:
    done = subprocess.run([sys.executable, "-m", "installer", "revoke", "--planner-key",
                           str(tmp_path / "planner.privatekey"), *serials,
                           "--bootstrap", boot(nodes)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def acquire(nodes: list[Daemon], keys: list[bytes], i: int, vessel: str, member: Any,
                  cred: bytes) -> dict[str, Any]:
    """One acquisition; asked again (a fresh request) while the node answers PoolError, the
    documented "try again" when its lease record did not reach a busy DHT."""
    for _ in range(5):
        got = await pw.send(nodes[i].port, pw.acquire_frame(member, cred, POOL, keys[i],
                                                             vessel), host=host(i))
        if pw.code(got) != "PoolError":
            break
        await trio.sleep(1.0)
    return got


async def test_a_published_revocation_ends_leases_and_refuses_hostile_lists(
        tmp_path: Path) -> None:
    planner = KeyPair(PLANNER.encode())
    save_keypair(tmp_path, "planner", planner)
    alice, bob = pw.new_key(31), pw.new_key(32)
    alice_cred = pw.credential(PLANNER, pw.pub(alice), vessels=2, serial=501)
    bob_cred = pw.credential(PLANNER, pw.pub(bob), vessels=3, serial=502)
    async with pw.pool_world(tmp_path, 3, 2, net=NET) as (nodes, keys):
        async def listed() -> bool:
            found = await lookup_once(PublicKey(hashlib.blake2b(
                b"seattle/pool/v1\x00" + POOL, digest_size=32).digest()),
                [(host(0), nodes[0].dht_port or 0)], timeout=10)
            assert len(found.candidates) == 6
            return True
        await eventually(listed, timeout=30, what="pool listed")
        got = await acquire(nodes, keys, 0, "v1", alice, alice_cred)
        assert got["ok"], got

        # hostile lists, each naming bob's serial: none may be adopted
        liar, other = KeyPair.generate(), KeyPair.generate()
        await publish(nodes, [
            page(liar, pool=POOL, seq=9_000_000_000, serials=[502]),          # forged signer
            page(other, pool=other.public.raw, seq=9_000_000_000, serials=[502],
                 under=POOL),                                               # another pool's
            page(planner, pool=POOL, seq=9_000_000_001, serials=[502] * 41),  # oversized page
            page(planner, pool=POOL, seq=9_000_000_002, serials=[502], index=0, count=9),
            page(planner, pool=POOL, seq=9_000_000_003, serials=[502], slot="revoked-5"),
        ], accepted=None)
        await publish(nodes, [page(other, pool=other.public.raw, seq=9_000_000_000,
                                   serials=[502])])  # a list of another pool, at its own key
        await trio.sleep(5.5)  # an acquisition looks the list up again after 5 s
        got = await acquire(nodes, keys, 1, "v1", bob, bob_cred)
        assert got["ok"], got
        assert (await status(nodes, 1))["revocations"] == 0

        # the planner revokes alice (by her credential file) and bob (by serial)
        (tmp_path / "alice.grant").write_bytes(alice_cred)
        out = revoke(tmp_path, nodes, str(tmp_path / "alice.grant"))
        assert "1 serials revoked" in out
        await trio.sleep(5.5)
        refused = await acquire(nodes, keys, 2, "v1", alice, alice_cred)
        assert pw.code(refused) == "CredentialRevoked", refused
        assert "revoked" in refused["error"]["message"]
        # node 0 adopts the list (its periodic look, or at the next acquisition) and ends
        # alice's lease; her renewals are refused
        got = await acquire(nodes, keys, 0, "v2", bob, bob_cred)
        assert got["ok"], got

        async def ended() -> bool:
            return (await status(nodes, 0))["vessels"]["v1"] is None
        await eventually(ended, timeout=40, what="the revoked member's lease ended")
        renew = await pw.send(nodes[0].port, pw.signed("RenewLease", {"vessel": "v1"}, alice,
                                                       keys[0]), host=host(0))
        assert pw.code(renew) == "Forbidden", renew
        first = (await status(nodes, 0))["revocations"]
        assert first > 0

        # a newer list revokes bob too; then an attacker replays the older list's pages
        old_pages = [b for b in await raw_records(nodes, revocation_key(POOL))
                     if open_advert(b, now=time.time()).node_key.raw == POOL]
        revoke(tmp_path, nodes, "502")
        await trio.sleep(5.5)
        refused = await acquire(nodes, keys, 2, "v2", bob, bob_cred)
        assert pw.code(refused) == "CredentialRevoked", refused
        await publish(nodes, old_pages, accepted=None)
        await trio.sleep(5.5)
        refused = await acquire(nodes, keys, 2, "v2", bob, bob_cred)
        assert pw.code(refused) == "CredentialRevoked", refused
        assert (await status(nodes, 2))["revocations"] > first
        assert (await status(nodes, 2))["revoked"] == 2
