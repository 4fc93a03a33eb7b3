"""Build -> install for several donors -> discover and use the vessels -> uninstall leaves nothing.

Donors run the real CLI in subprocesses with HOME, XDG dirs and ``crontab`` redirected into
tmp_path; a one-node testbed is the DHT bootstrap peer named in the bundle.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from installer.donor.procs import find_process, read_int_file, stop_process
from nodemanager import open_node_client
from overlay import LookupResult
from seattlecore import KeyPair, PublicKey, load_private, save_keypair
from testbed.local import start_testbed, stop_all
from tests.support.dht import lookup_until

pytestmark = pytest.mark.slow
DONORS = 3


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process([sys.executable, "-m", "installer", *args], env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)


async def find(key: PublicKey, bootstrap: str, nodes: int) -> LookupResult:
    host, _, port = bootstrap.rpartition(":")
    return await lookup_until(key, (host, int(port)),
                              lambda found: len({a.address for a in found.candidates}) >= nodes)


async def researcher_uses_vessels(keys: Path, bootstrap: str, work: Path) -> None:
    """bob, in seash, finds his vessels on every donor and uploads to all of them."""
    (work / "note.txt").write_text("bob was here\n")
    done = await trio.run_process(
        [sys.executable, "-m", "seash", "--home", str(keys), "--bootstrap", bootstrap, "--json",
         "-c", "loadkeys bob; browse; upload note.txt; cat note.txt"],
        cwd=work, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    docs = {doc["command"]: doc for doc in map(json.loads, done.stdout.decode().splitlines())}
    cat = docs["cat note.txt"]["results"]
    assert len(cat) == 2 * DONORS
    assert all(r["status"] == "ok" and "bob was here" in r["value"] for r in cat)


async def test_donors_install_discover_use_and_uninstall(tmp_path: Path,
                                                         safe_env: dict[str, str]) -> None:
    seed = await start_testbed(tmp_path / "seed", 1, vessels=1, sandbox=False)
    prefixes = [tmp_path / f"donor{i}" for i in range(DONORS)]
    try:
        keys = tmp_path / "keys"
        for name in ("planner", "alice", "bob"):
            save_keypair(keys, name, KeyPair.generate())
        alice, bob = load_private(keys / "alice.privatekey"), load_private(keys / "bob.privatekey")
        built = await cli(safe_env, "build", "--planner-key", str(keys / "planner.privatekey"),
                          "--vessel", f"40:{keys / 'alice.publickey'}:{bob.public}",
                          "--vessel", f"30:{bob.public}", "--bootstrap", seed["bootstrap"],
                          "-o", str(tmp_path / "bundle.tgz"))
        assert built.returncode == 0, built.stderr

        install = ["install", str(tmp_path / "bundle.tgz"), "--host", "127.0.0.1", "--no-sandbox",
                   "--trust", str(keys / "planner.publickey")]
        for prefix in prefixes:
            done = await cli(safe_env, *install, "--prefix", str(prefix))
            assert done.returncode == 0, done.stderr
            assert b"node manager running" in done.stdout
            assert b"WARNING" not in done.stderr  # the seed answered
        crontab = Path(safe_env["FAKE_CRONTAB_FILE"]).read_text()
        assert crontab.count("@reboot") == DONORS
        pids = [read_int_file(prefix / "nodemanager.pid") for prefix in prefixes]

        again = await cli(safe_env, *install, "--prefix", str(prefixes[0]))
        assert again.returncode == 0 and b"nothing to do" in again.stdout
        assert read_int_file(prefixes[0] / "nodemanager.pid") == pids[0]

        found = await find(alice.public, seed["bootstrap"], DONORS)
        assert {a.vessel for a in found.candidates} == {"v1"}
        for advert in found.candidates:
            host, _, port = advert.address.rpartition(":")
            async with open_node_client(host, int(port), identity=alice) as nm:
                await nm.add_file("v1", "data.txt", b"alice was here\n")
                assert "data.txt" in await nm.list_files("v1")
                assert await nm.retrieve_file("v1", "data.txt") == b"alice was here\n"
        bobs = await find(bob.public, seed["bootstrap"], DONORS)
        assert len(bobs.candidates) == 2 * DONORS  # user of v1, owner of v2
        await researcher_uses_vessels(keys, seed["bootstrap"], tmp_path)

        status = await cli(safe_env, "status", "--prefix", str(prefixes[1]))
        assert status.returncode == 0, status.stdout
        assert b"running" in status.stdout and b"DHT peers" in status.stdout
        assert b"WARNING" not in status.stderr
        assert re.search(rb"connections: \d+ of \d+ \(\d+ trusted", status.stdout), status.stdout

        for prefix, pid in zip(prefixes, pids, strict=True):
            gone = await cli(safe_env, "uninstall", "--prefix", str(prefix), "--purge")
            assert gone.returncode == 0, gone.stderr
            assert pid is not None and find_process(pid, str(prefix) + "/") is None
            assert not prefix.exists()
        assert "seattle-p2p" not in Path(safe_env["FAKE_CRONTAB_FILE"]).read_text()
    finally:
        for prefix in prefixes:
            stop_process(read_int_file(prefix / "nodemanager.pid") or 0, str(prefix) + "/", timeout=5)
        stop_all(seed["nodes"])


async def test_uninstall_keeps_files_and_reinstall_restarts(tmp_path: Path,
                                                            safe_env: dict[str, str]) -> None:
    keys = tmp_path / "keys"
    save_keypair(keys, "planner", KeyPair.generate())
    owner = KeyPair.generate().public
    prefix = tmp_path / "donor"
    try:
        built = await cli(safe_env, "build", "--planner-key", str(keys / "planner.privatekey"),
                          "--vessel", f"100:{owner}", "--bootstrap", "127.0.0.1:9",
                          "-o", str(tmp_path / "b.tgz"))
        assert built.returncode == 0, built.stderr
        install = ["install", str(tmp_path / "b.tgz"), "--prefix", str(prefix), "--host",
                   "127.0.0.1", "--no-sandbox", "--service", "systemd"]
        alone = await cli(safe_env, *install)
        assert alone.returncode == 0, alone.stderr
        assert b"WARNING: no DHT bootstrap peer answered" in alone.stderr
        assert b"127.0.0.1:9" in alone.stderr
        status = await cli(safe_env, "status", "--prefix", str(prefix))
        assert b"WARNING: no DHT bootstrap peer answered" in status.stderr
        units = Path(safe_env["SEATTLE_SYSTEMD_USER_DIR"])
        assert len(list(units.glob("*.service"))) == 1
        node_key = (prefix / "state" / "node.publickey").read_text()
        first = read_int_file(prefix / "nodemanager.pid")

        gone = await cli(safe_env, "uninstall", "--prefix", str(prefix))
        assert gone.returncode == 0, gone.stderr
        assert find_process(first, str(prefix) + "/") is None
        assert not list(units.glob("*.service")) and (prefix / "state").is_dir()
        assert (await cli(safe_env, "status", "--prefix", str(prefix))).returncode == 1

        back = await cli(safe_env, *install)
        assert back.returncode == 0, back.stderr
        other = await cli(safe_env, *install, "--percent", "20")
        assert other.returncode == 1
        assert f"uninstall --purge --prefix {prefix}'".encode() in other.stderr
        assert (prefix / "state" / "node.publickey").read_text() == node_key  # same node
        assert find_process(read_int_file(prefix / "nodemanager.pid"), str(prefix) + "/") is not None
        assert len(list(units.glob("*.service"))) == 1
    finally:
        await cli(safe_env, "uninstall", "--prefix", str(prefix), "--purge")
        stop_process(read_int_file(prefix / "nodemanager.pid") or 0, str(prefix) + "/", timeout=5)
    assert not prefix.exists() and not list(Path(safe_env["SEATTLE_SYSTEMD_USER_DIR"]).glob("*.service"))
