"""Remembered peers (overlay/routing.py, remembered contacts): a node rejoins through the
peers it knew when every configured bootstrap peer is gone, keeps its UDP port, and a corrupt, huge, forged or
stale peers file (or a swarm of new ids) never stops it or grows the file past its bound."""

from __future__ import annotations

import json
import random
import socket
from functools import partial
from pathlib import Path

import pytest
import trio

from overlay import DhtConfig, DhtNode, dht_loop
from overlay.answers import Contact
from overlay.routing import (
    PEER_MAX_MISSES,
    PEERS_FILE,
    PEERS_MAX_BYTES,
    PEERS_PER_GROUP,
    REMEMBER_PEERS,
    Remembered,
    after_join,
    decode_peers,
    encode_peers,
    join_seeds,
    remember,
)
from seattlecore import KeyPair
from testbed.attackers.dht import HostilePeer, make_ident
from tests.support.dht import (
    TEST_BITS,
    RunningNode,
    adverts_for,
    node_host,
    seeded_identity,
    start_node,
)
from tests.support.net import ip
from tests.support.polling import eventually

NOW = 1_700_000_000.0


def contact(index: int, host: str | None = None, port: int = 4000) -> Contact:
    ident = seeded_identity("peerstore", index)
    return Contact(ident.node_id, host or f"10.{index // 256}.{index % 256}.1", port, ident.pk, ident.nonce)


def entry(index: int, **kw: object) -> Remembered:
    return Remembered(contact(index), NOW, **kw)  # type: ignore[arg-type]


# -- the pure core ------------------------------------------------------------------------------

def test_file_round_trip_and_forged_entries_dropped() -> None:
    peers = [entry(i) for i in range(5)]
    data = encode_peers(peers, 4321, NOW)
    got, dropped = decode_peers(data, bits=TEST_BITS)
    assert (got.port, list(got.peers), dropped) == (4321, peers, 0)
    doc = json.loads(data)
    doc["peers"][1][0] = "00" * 20  # an id that does not match its key and puzzle
    doc["peers"][2][1] = "dht.example"  # not an IP literal
    doc["peers"][3] = [1, 2]
    got, dropped = decode_peers(json.dumps(doc).encode(), bits=TEST_BITS)
    assert [r.contact for r in got.peers] == [peers[0].contact, peers[4].contact] and dropped == 3


def test_unusable_files_are_refused() -> None:
    for data in (b"\x00\xff garbage", b"[1, 2]", b'{"version": 9, "peers": []}',
                 b'{"version": 1, "peers": {}}', b"{" * (PEERS_MAX_BYTES + 1)):
        try:
            decode_peers(data, bits=TEST_BITS)
        except ValueError:
            continue
        raise AssertionError(f"accepted {data[:20]!r}")


def test_remember_prefers_old_table_contacts_and_is_bounded() -> None:
    table = [(contact(i), float(1000 - i), NOW) for i in range(200)]  # contact 199 was added first
    out = remember(table, [], NOW)
    assert len(out) == REMEMBER_PEERS
    assert out[0].contact == contact(199) and out[1].contact == contact(198)
    same_net = [(contact(i, host=f"10.9.9.{i}"), float(i), NOW) for i in range(1, 10)]
    assert len(remember(same_net, [], NOW)) == PEERS_PER_GROUP  # one /24 cannot fill the file
    assert len(encode_peers(remember(table, [], NOW), 65535, NOW)) < PEERS_MAX_BYTES


def test_stale_entries_are_forgotten() -> None:
    previous = [entry(1), entry(2, misses=PEER_MAX_MISSES - 1), entry(3)]
    tried = after_join(previous, [contact(1).addr], NOW + 5)
    assert [(r.seen, r.misses) for r in tried] == [(NOW + 5, 0), (NOW, PEER_MAX_MISSES), (NOW, 1)]
    retried = after_join(previous, [], NOW + 5, start=False)  # retries while alone: no misses
    assert retried == previous
    kept = remember([], tried, NOW + 10)
    assert [r.contact for r in kept] == [contact(1), contact(3)]
    assert remember([], [entry(4)], NOW + 31 * 86400) == []  # not seen for a month
    # the table wins over an old entry for the same id or the same address
    moved = Contact(contact(1).node_id, "10.7.7.7", 1, contact(1).pk, contact(1).nonce)
    assert [r.contact for r in remember([(moved, NOW, NOW)], [entry(1)], NOW)] == [moved]


def test_seeds_put_bootstrap_first_once_and_never_self() -> None:
    remembered = [entry(1), entry(2)]
    boot = [("10.0.1.1", 4000), ("10.5.5.5", 1)]
    assert join_seeds(boot, remembered, own=("10.0.2.1", 4000)) == boot


# -- real nodes on loopback ---------------------------------------------------------------------

def config(index: int, net: int, state: Path | None = None, **kw: object) -> DhtConfig:
    return DhtConfig(host=node_host(index, net), id_bits=TEST_BITS, state_dir=state,
                     identity=seeded_identity(f"rejoin{net}", index), rejoin_delays=(0.2, 1.0),
                     **kw)  # type: ignore[arg-type]


def addrs(node: DhtNode) -> set[tuple[str, int]]:
    return {c.addr for c in node.protocol.router.contacts()}


def knows(node: DhtNode, wanted: set[tuple[str, int]]) -> bool:
    return wanted <= addrs(node)


async def all_know_each_other(nodes: list[RunningNode]) -> bool:
    """Every node's table holds all the others (lookups on the way, as ``comes_to_know``)."""
    every = {n.addr for n in nodes}
    return all([await comes_to_know(n.node, every - {n.addr}) for n in nodes])


async def comes_to_know(node: DhtNode, wanted: set[tuple[str, int]]) -> bool:
    """``knows``, after a lookup of a random id: traffic makes the node check its peers again
    (a check that timed out on a loaded host is retried only when they talk)."""
    if not knows(node, wanted):
        await node.find_contacts()
    return knows(node, wanted)


def bound(sock: socket.socket, addr: tuple[str, int]) -> bool:
    try:
        sock.bind(addr)
    except OSError:
        return False
    return True


def peers_file(state: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((state / PEERS_FILE).read_text())
    return loaded


async def test_rejoins_through_remembered_peers_when_every_bootstrap_peer_is_gone(tmp_path: Path) -> None:
    net = 40
    user = KeyPair.generate().public
    async with dht_loop(), trio.open_nursery() as nursery:
        boot = await start_node(nursery, config(0, net))
        others = [await start_node(nursery, config(i, net, bootstrap=(boot.addr,))) for i in (1, 2, 3)]
        await eventually(partial(knows, boot.node, {o.addr for o in others}), what="boot knows all")
        state = tmp_path / "n4"
        last = await start_node(nursery, config(4, net, state, bootstrap=(boot.addr,)))
        first_port = last.node.port
        await eventually(lambda: len(last.node.protocol.router) >= 3, what="table filled")
        await last.stop()
        assert len(peers_file(state)["peers"]) >= 3  # type: ignore[arg-type]
        await boot.stop()  # its only configured bootstrap peer is gone for good

        again = await start_node(nursery, config(4, net, state, bootstrap=(boot.addr,)))
        assert again.node.port == first_port  # the remembered UDP port
        await eventually(lambda: addrs(again.node) >= {o.addr for o in others}, what="rejoined")
        keys, blobs = adverts_for(user, 1)
        result = await again.node.publish(blobs)
        assert result.peers > 0 and result.stores_accepted > 0
        found = await others[2].node.lookup(user)
        assert [a.node_key for a in found.candidates] == [keys[0].public]
        nursery.cancel_scope.cancel()


async def test_first_node_without_bootstrap_rejoins_and_is_found_again(tmp_path: Path) -> None:
    """The issue's case: the first node has no bootstrap peer; after a restart it comes back
    on its old port and through the peers it knew, and others reach it."""
    net = 41
    async with dht_loop(), trio.open_nursery() as nursery:
        state = tmp_path / "n0"
        first = await start_node(nursery, config(0, net, state))
        port = first.node.port
        others = [await start_node(nursery, config(i, net, bootstrap=(first.addr,))) for i in (1, 2)]
        await eventually(lambda: len(first.node.protocol.router) == 2, what="others admitted")
        await first.stop()
        again = await start_node(nursery, config(0, net, state))
        assert again.node.port == port
        await eventually(lambda: addrs(again.node) == {o.addr for o in others}, what="rejoined")
        user = KeyPair.generate().public
        _, blobs = adverts_for(user, 1)
        assert (await others[0].node.publish(blobs)).stores_accepted > 0
        assert len((await again.node.lookup(user)).candidates) == 1
        nursery.cancel_scope.cancel()


async def test_a_whole_network_restarts_without_any_bootstrap_peer(tmp_path: Path) -> None:
    """Every node stops; they come back one by one, none with a bootstrap peer: the first
    one back is alone and keeps trying its remembered peers (without forgetting them), the
    others join through it, and all find each other again."""
    net = 46
    states = [tmp_path / f"n{i}" for i in range(3)]
    async with dht_loop(), trio.open_nursery() as nursery:
        first = await start_node(nursery, config(0, net, states[0]))
        nodes = [first] + [await start_node(nursery, config(i, net, states[i], bootstrap=(first.addr,)))
                           for i in (1, 2)]
        await eventually(partial(all_know_each_other, nodes), timeout=60, what="full tables")
        old = {n.addr for n in nodes}
        for running in nodes:
            await running.stop()
        back = [await start_node(nursery, config(i, net, states[i])) for i in (2, 1, 0)]
        assert {n.addr for n in back} == old  # every node on its old port
        # a loaded host times admission checks out; they are retried after 10 s
        await eventually(partial(all_know_each_other, back), timeout=60,
                         what="every node knows the others again")
        nursery.cancel_scope.cancel()


async def test_taken_port_is_replaced_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    net = 42
    async with dht_loop(), trio.open_nursery() as nursery:
        state = tmp_path / "n0"
        first = await start_node(nursery, config(0, net, state))
        port = first.node.port
        await first.stop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            # the loop closes the old socket on its next turn: bind as soon as it is free
            await eventually(partial(bound, squatter, (first.addr[0], port)), what="old port free")
            again = await start_node(nursery, config(0, net, state))
            assert again.node.port != port and again.node.port_moved
            assert f"cannot bind {first.addr[0]}:{port}" in caplog.text
            await again.stop()
        assert peers_file(state)["port"] == again.node.port  # the new port is remembered
        nursery.cancel_scope.cancel()


def hostile_files(rng: random.Random) -> dict[str, bytes]:
    """Peers files an attacker (or a crash, or a full disk) could leave."""
    unreachable = []
    for i in range(REMEMBER_PEERS):  # proven-looking ids at addresses where nobody answers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            host = node_host(10 + i, 43)
            sock.bind((host, 0))
            ident = seeded_identity("gone", i)
            gone = Contact(ident.node_id, host, sock.getsockname()[1], ident.pk, ident.nonce)
            unreachable.append(Remembered(gone, NOW))
    forged = json.loads(encode_peers([entry(i) for i in range(REMEMBER_PEERS)], 0, NOW))
    for row in forged["peers"]:
        row[0] = rng.randbytes(20).hex()  # ids that match no key
    return {
        "corrupt": rng.randbytes(3000),
        "truncated": encode_peers(unreachable, 1, NOW)[:-40],
        "huge": b'{"version": 1, "peers": [' + b"[0]," * 3_000_000 + b"[0]]}",
        "unreachable": encode_peers(unreachable, 0, NOW),
        "forged": json.dumps(forged).encode(),
    }


async def test_hostile_peer_files_do_not_stop_start_or_bootstrap(tmp_path: Path) -> None:
    net = 43
    rng = random.Random(24)
    files = hostile_files(rng)
    user = KeyPair.generate().public
    async with dht_loop(), trio.open_nursery() as nursery:
        boot = await start_node(nursery, config(0, net))
        helper = await start_node(nursery, config(1, net, bootstrap=(boot.addr,)))
        await eventually(partial(knows, boot.node, {helper.addr}), what="boot admitted helper")
        _, blobs = adverts_for(user, 1)
        await helper.node.publish(blobs)
        for name, data in files.items():
            state = tmp_path / name
            state.mkdir()
            (state / PEERS_FILE).write_bytes(data)
            for _ in range(PEER_MAX_MISSES):  # start-ups in a row: stale entries fade out
                node = await start_node(nursery, config(2, net, state, bootstrap=(boot.addr,)))
                await eventually(partial(comes_to_know, node.node, {boot.addr, helper.addr}), what=name)
                assert len((await node.node.lookup(user)).candidates) == 1, name
                await node.stop()
                written = peers_file(state)
                assert len(json.dumps(written)) < PEERS_MAX_BYTES, name
            hosts = {row[1] for row in written["peers"]}  # type: ignore[attr-defined]
            assert hosts == {boot.addr[0], helper.addr[0]}, name  # junk and dead peers are gone
        nursery.cancel_scope.cancel()


async def test_a_swarm_of_new_ids_cannot_push_known_peers_out_of_the_file(tmp_path: Path) -> None:
    """An attacker speaking the wire with 120 proven ids on 40 networks (3 per /24, each
    answering hello) joins a node that already knows 3 honest peers: the node's file stays
    within its bound and per-network limit, and keeps the honest peers."""
    net = 44
    async with dht_loop(), trio.open_nursery() as nursery:
        honest = [await start_node(nursery, config(0, net))]
        honest += [await start_node(nursery, config(i, net, bootstrap=(honest[0].addr,))) for i in (1, 2)]
        await eventually(partial(knows, honest[0].node, {h.addr for h in honest[1:]}), what="boot knows all")
        state = tmp_path / "target"
        target = await start_node(nursery, config(3, net, state, bootstrap=(honest[0].addr,)))
        await eventually(partial(comes_to_know, target.node, {h.addr for h in honest}),
                         what="honest peers known")
        swarm = [HostilePeer(ip(f"127.{net + 1}.{i // 3}.{2 + i % 3}"), make_ident(TEST_BITS),
                             lambda peer, req: [])
                 for i in range(120)]
        for peer in swarm:
            await nursery.start(peer.serve)

        async def admitted() -> bool:  # each ping asks for a hello (at most 32 at once)
            async with trio.open_nursery() as joining:
                for peer in swarm:
                    joining.start_soon(peer.join, target.addr)
            return len(target.node.protocol.router) > REMEMBER_PEERS + 3  # more than fit

        await eventually(admitted, timeout=60, interval=0.5, what="swarm admitted")
        target.node.save_remembered()
        written = peers_file(state)
        rows = written["peers"]
        assert len(rows) == REMEMBER_PEERS and len((state / PEERS_FILE).read_bytes()) < PEERS_MAX_BYTES  # type: ignore[arg-type]
        per_net: dict[str, int] = {}
        for row in rows:  # type: ignore[attr-defined]
            per_net[row[1].rsplit(".", 1)[0]] = per_net.get(row[1].rsplit(".", 1)[0], 0) + 1
        assert max(per_net.values()) <= PEERS_PER_GROUP
        assert {(row[1], row[2]) for row in rows[:3]} == {h.addr for h in honest}  # type: ignore[index]
        nursery.cancel_scope.cancel()

