"""Restarts rejoin the network (issue 24): a seeded soak of kill -9 / SIGTERM restarts of
random node managers of a loopback testbed (the first one too), then every advert is found
from every node; a node whose only bootstrap peer is gone rejoins through the peers it
remembers; ``seattle-testbed restart`` keeps ports and the testbed's records right."""

from __future__ import annotations

import errno
import json
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from installer.donor.procs import find_process
from overlay import LookupResult, OverlayError, lookup_once
from overlay.routing import PEERS_FILE
from seattlecore import PublicKey
from testbed.local import kill_node, load_manifest, restart_node, start_testbed, stop_all
from tests.support.polling import eventually

pytestmark = pytest.mark.slow
SEED = 24
NODES = 5
VESSELS = 2
ROUNDS = 8


def demo_key(data: dict[str, Any]) -> PublicKey:
    return PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())


def addresses(data: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> list[str]:
    """Every advert address the nodes should have (one per vessel), sorted."""
    return sorted(f"{n['address']}:{n['port']}" for n in (nodes or data["nodes"]) for _ in range(VESSELS))


async def found_from(node: dict[str, Any], key: PublicKey) -> LookupResult | None:
    """A lookup through ``node`` (None while it does not answer: a node manager serves the
    DHT only once peers dialled it back, a few seconds after a start)."""
    try:
        return await lookup_once(key, [(node["address"], node["dht_port"])], timeout=5)
    except OverlayError:
        return None


def remembered(node: dict[str, Any]) -> list[str]:
    try:
        rows = json.loads((Path(node["state"]) / PEERS_FILE).read_text())["peers"]
    except (OSError, ValueError):
        return []
    return [f"{row[1]}:{row[2]}" for row in rows]


async def test_soak_random_restarts_then_every_advert_is_found_from_every_node(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "tb"
    data = await start_testbed(directory, NODES, VESSELS, sandbox=False)
    try:
        key = demo_key(data)
        victims = [0, *(rng.randrange(NODES) for _ in range(ROUNDS - 1))]  # the first node too
        rng.shuffle(victims)
        for victim in victims:
            name = data["nodes"][victim]["name"]
            done = await restart_node(directory, name, crash=rng.random() < 0.5)
            # stable ports: peers and adverts that named it stay right
            assert done.after["port"] == done.before["port"]
            assert done.after["dht_port"] == done.before["dht_port"]
            await trio.sleep(rng.uniform(0.5, 3.0))
        data = load_manifest(directory)
        assert all(find_process(n["pid"], n["state"]) for n in data["nodes"])  # records are right
        assert data["bootstrap"] == f"{data['nodes'][0]['address']}:{data['nodes'][0]['dht_port']}"
        want = addresses(data)
        for node in data["nodes"]:
            async def complete(node: dict[str, Any] = node) -> LookupResult | None:
                result = await found_from(node, key)
                return result if result and sorted(a.address for a in result.candidates) == want else None

            await eventually(complete, timeout=60, interval=1.0, what=f"every advert from {node['name']}")
    finally:
        stop_all(load_manifest(directory)["nodes"])


async def test_node_rejoins_through_remembered_peers_when_its_bootstrap_peer_is_gone(tmp_path: Path) -> None:
    directory = tmp_path / "tb"
    data = await start_testbed(directory, 4, VESSELS, sandbox=False)
    nodes = data["nodes"]
    try:
        key = demo_key(data)
        others = {f"{n['address']}:{n['dht_port']}" for n in nodes[2:]}
        await eventually(lambda: others <= set(remembered(nodes[1])), timeout=60,
                         what="n001 remembers n002 and n003")
        kill_node(nodes[0], crash=False)  # n001's only configured bootstrap peer, gone for good
        done = await restart_node(directory, "n001", crash=True)
        since = int(done.started_at * 1000)  # seq of adverts published by the new process

        async def republished() -> LookupResult | None:
            result = await found_from(nodes[3], key)
            if result is None:
                return None
            fresh = [a for a in result.candidates if a.node_key == mine and a.seq >= since]
            return result if len(fresh) == VESSELS else None

        mine = PublicKey.from_text((Path(nodes[1]["state"]) / "node.publickey").read_text())
        result = await eventually(republished, timeout=60, interval=1.0, what="n001's new adverts")
        assert sorted(a.address for a in result.candidates) == addresses(data, nodes[1:])
    finally:
        stop_all(load_manifest(directory)["nodes"])


def test_restart_command_keeps_ports_and_records(tmp_path: Path) -> None:
    directory = tmp_path / "tb"
    data = trio.run(start_testbed, directory, 2, 1, False)
    try:
        for args in (["n001", "--kill"], ["0"]):
            before = load_manifest(directory)
            out = subprocess.run([sys.executable, "-m", "testbed.cli", "restart", *args, "--dir",
                                  str(directory)], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            after = load_manifest(directory)
            index = 1 if args[0] == "n001" else 0
            old, new = before["nodes"][index], after["nodes"][index]
            assert new["pid"] != old["pid"] and find_process(new["pid"], new["state"])
            assert not find_process(old["pid"], old["state"])
            assert (new["port"], new["dht_port"]) == (old["port"], old["dht_port"])
            assert f"tcp {new['port']} (same), dht {new['dht_port']} (same)" in out.stdout
            assert ("SIGKILL" in out.stdout) == ("--kill" in args)
        bad = subprocess.run([sys.executable, "-m", "testbed.cli", "restart", "n009", "--dir",
                              str(directory)], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "no node 'n009'" in bad.stderr
    finally:
        stop_all(load_manifest(directory)["nodes"])
    assert len(data["nodes"]) == 2


async def test_taken_port_moves_and_the_old_address_is_replaced_at_once(tmp_path: Path) -> None:
    """A crashed node's port is taken when it comes back: it says so, listens on a new one
    and announces at once; the adverts naming the old address are replaced (same slot, newer
    seq), not left to age out."""
    directory = tmp_path / "tb"
    data = await start_testbed(directory, 3, VESSELS, sandbox=False)
    nodes = data["nodes"]
    try:
        key = demo_key(data)
        await eventually(lambda: _found_all(nodes[0], key, addresses(data)), timeout=60,
                         interval=1.0, what="every advert before the crash")
        kill_node(nodes[2], crash=True)  # its adverts stay in the DHT
        with socket.socket() as squatter:  # a listener: the daemon's bind fails (EADDRINUSE)
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            # The killed daemon's orphaned connections (FIN_WAIT2 while a peer keeps its side
            # open) may hold the port for up to a minute: bind once they are gone.
            await eventually(lambda: _bound(squatter, nodes[2]["address"], nodes[2]["port"]),
                             timeout=90, interval=0.5, what="the squatter's bind")
            squatter.listen()
            done = await restart_node(directory, "n002", crash=True)
        assert done.after["port"] != done.before["port"]
        log = (Path(nodes[2]["state"]) / "nodemanager.log").read_text()
        assert f"node manager port {done.before['port']} of the last run is taken" in log
        data = load_manifest(directory)
        await eventually(lambda: _found_all(nodes[1], key, addresses(data)), timeout=60,
                         interval=1.0, what="the new address only")
    finally:
        stop_all(load_manifest(directory)["nodes"])


def _bound(sock: socket.socket, host: str, port: int) -> bool:
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return False
    return True


async def _found_all(node: dict[str, Any], key: PublicKey, want: list[str]) -> bool:
    result = await found_from(node, key)
    return result is not None and sorted(a.address for a in result.candidates) == want
