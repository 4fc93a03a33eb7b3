"""``seattle-testbed``: up (real sandbox) -> discover -> run a program on every vessel -> down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from installer.donor.procs import find_process
from nodemanager import open_node_client
from overlay import lookup_once, open_client
from seattlecore import load_private
from testbed.local import stop_all, vessel_table
from tests.support.files import traversable
from tests.support.lab import status_rows
from tests.support.net import ip
from tests.support.nodes import wait_log
from tests.support.processes import processes_in, wait_until_gone

pytestmark = pytest.mark.slow
NODES = 3
EXAMPLE = Path(__file__).parents[2] / "examples" / "hello.py"
SPIN = b"x = 0\nwhile True:\n    x += 1\n"


async def run_testbed(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process([sys.executable, "-m", "testbed.cli", *args],
                                  capture_stdout=True, capture_stderr=True, check=False)


def test_vessel_ports_are_disjoint() -> None:
    ports = [vessel_table(i).connport for i in range(200)]
    assert len(frozenset().union(*ports)) == 400


async def test_up_run_everywhere_down(tmp_path: Path) -> None:
    traversable(tmp_path)
    directory = tmp_path / "tb"
    up = await run_testbed("up", "--nodes", str(NODES), "--dir", str(directory), "--wait")
    assert up.returncode == 0, up.stderr
    data = json.loads((directory / "testbed.json").read_text())
    try:
        assert b"seash --home" in up.stdout and f"all {NODES} nodes usable".encode() in up.stdout
        assert len(data["nodes"]) == NODES and data["sandbox"] is True
        assert data["bootstrap"].startswith(ip("127.1.0.1") + ":")  # this worker's addresses
        again = await run_testbed("up", "--nodes", "1", "--dir", str(directory))
        assert again.returncode == 1 and b"already up" in again.stderr
        assert f"seattle-testbed down --dir {directory}".encode() in again.stderr

        status = await run_testbed("status", "--dir", str(directory))
        assert status.returncode == 0, status.stdout
        assert status.stdout.count(b" running ") == NODES
        rows = status_rows(status.stdout.decode())  # each asked at its own 127.x.y.1
        assert [rows[n["name"]][2] for n in data["nodes"]] == [n["address"] for n in data["nodes"]]
        assert [rows[n["name"]][6] for n in data["nodes"]] == ["2"] * NODES, status.stdout
        for argv in (["status", "--json"], ["--json", "status"]):
            doc = await run_testbed(*argv, "--dir", str(directory))
            assert doc.returncode == 0, doc.stderr
            nodes = json.loads(doc.stdout)["nodes"]
            assert [n["running"] for n in nodes] == [True] * NODES
            assert [(n["name"], n["port"], n["dht_port"]) for n in nodes] == [
                (n["name"], n["port"], n["dht_port"]) for n in data["nodes"]]
            assert all(n["report"]["port"] == n["port"] for n in nodes), nodes
            assert [len(n["report"]["vessels"]) for n in nodes] == [2] * NODES, nodes

        # 'up --wait' returned: found, usable and crawlable now, with no more waiting
        demo = load_private(Path(data["demo"]["privatekey"]))
        host, _, port = data["bootstrap"].rpartition(":")
        found = await lookup_once(demo.public, [(host, int(port))], timeout=5)
        assert len(found.candidates) == 2 * NODES
        async with open_client([(host, int(port))]) as dht:
            live, _ = await dht.crawl()
        assert {f"{n['address']}:{n['dht_port']}" for n in data["nodes"]} <= set(live)

        # a node that does not answer is an error in status, never zeros
        frozen = data["nodes"][1]
        os.kill(frozen["pid"], signal.SIGSTOP)
        try:
            stuck = await run_testbed("status", "--dir", str(directory))
        finally:
            os.kill(frozen["pid"], signal.SIGCONT)
        assert stuck.returncode == 1
        row = status_rows(stuck.stdout.decode())[frozen["name"]]
        assert row[6] == "error:" and frozen["address"] in " ".join(row), stuck.stdout
        program = EXAMPLE.read_bytes()
        for advert in found.candidates:
            address, _, tcp = advert.address.rpartition(":")
            async with open_node_client(address, int(tcp), identity=demo) as nm:
                await nm.add_file(advert.vessel, "hello.py", program)
                assert await nm.start_vessel(advert.vessel, "hello.py", ["testbed"]) == "Started"
        for advert in found.candidates:
            address, _, tcp = advert.address.rpartition(":")
            async with open_node_client(address, int(tcp), identity=demo) as nm:
                log = await wait_log(nm, advert.vessel, b"runtime is")
                assert b"hello from a vessel; args = ['testbed']" in log
                # now a CPU-bound program, held to its share by SIGSTOP/SIGCONT
                await nm.add_file(advert.vessel, "spin.py", SPIN)
                assert await nm.start_vessel(advert.vessel, "spin.py") == "Started"
        vessel_dirs = list(directory.glob("nodes/*/vessels/*"))
        assert len(vessel_dirs) == 2 * NODES
        assert all(processes_in(d) for d in vessel_dirs)
    finally:
        down = await run_testbed("down", "--dir", str(directory))
        stop_all(data["nodes"])
    assert down.returncode == 0, down.stderr
    assert [wait_until_gone(d, 2.0) for d in vessel_dirs] == [[]] * len(vessel_dirs)
    assert not any(find_process(n["pid"], n["state"]) for n in data["nodes"])
    assert (await run_testbed("down", "--dir", str(directory))).returncode == 0
    stopped = await run_testbed("status", "--dir", str(directory))
    assert stopped.returncode == 1 and stopped.stdout.count(b" stopped ") == NODES


async def test_demo_command(tmp_path: Path) -> None:
    """``seattle-testbed demo``: the one-command demo (up, run on every vessel, logs, down)."""
    traversable(tmp_path)
    directory = tmp_path / "demo"
    done = await run_testbed("demo", "--nodes", "2", "--dir", str(directory),
                             "--program", str(EXAMPLE), "one")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(b"hello from a vessel; args = ['one']") == 4
    assert b"testbed down" in done.stdout
    data = json.loads((directory / "testbed.json").read_text())
    assert not any(find_process(n["pid"], n["state"]) for n in data["nodes"])
