"""A researcher's session against a real pool: a planner's ``grant``, then seash's
``loadgrant``, ``get``, ``run``, ``show log``, ``show leases``, ``renew``, ``release``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from installer.planner.grant import render_pool
from seattlecore import KeyPair, save_keypair
from tests.support import poolwire as pw
from tests.support.seash import seash

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NET = 43


async def test_get_run_release_from_seash(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_text((EXAMPLES / "hello.py").read_text())
    save_keypair(home, "alice", KeyPair.generate())
    save_keypair(tmp_path, "planner", KeyPair(bytes(pw.WORLD_PLANNER)))
    granted = subprocess.run(
        [sys.executable, "-m", "installer", "grant", "--planner-key",
         str(tmp_path / "planner.privatekey"), "--researcher", str(home / "alice.publickey"),
         "--vessels", "2", "--days", "1", "-o", str(work / "alice.grant")],
        capture_output=True, text=True, timeout=60)
    assert granted.returncode == 0, granted.stderr
    async with pw.pool_world(tmp_path, 3, 1, net=NET, sandbox=True) as (nodes, _):
        host, dht = await pw.world_listed(nodes, NET, 3)
        boot = f"{host}:{dht}"

        session = await seash(home, """
            loadkeys alice; loadgrant alice.grant
            get 3 --spread
            show leases
            list
            on get run hello.py pool
            wait --for 30
            on get show log
            renew get
            release get
            show leases
        """, cwd=work, bootstrap=boot, json_output=False)
        out = session.stdout + session.stderr
        # quota 2: two leased, the third refused with the reason; the rest of the script runs
        assert session.returncode == 1, out
        assert out.count("leased as %") == 2 and "leased 2 of 3 vessels" in out, out
        # the third is refused with its reason (unless this lookup missed its listing)
        assert "QuotaReached" in out or "no more free vessels listed" in out, out
        assert out.count("lease 3h59m") == 2  # list shows the time left
        assert out.count("hello from a vessel; args = ['pool']") == 2
        assert "renew: 2 ok" in out and "release: 2 ok" in out
        assert session.stdout.rstrip().endswith("(leases: none)")
        # the nodes agree: every pool vessel is free again
        for pool in await pw.world_pools(nodes, NET):
            assert pool["vessels"] == {"v1": None}
            assert render_pool(pool, 0.0)[1] == "  v1    free"


async def test_get_from_an_open_pool_pays_the_work_per_key(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    for name in ("alice", "bob"):
        save_keypair(home, name, KeyPair.generate())
    save_keypair(tmp_path, "planner", KeyPair(bytes(pw.WORLD_PLANNER)))
    granted = subprocess.run(
        [sys.executable, "-m", "installer", "grant", "--planner-key",
         str(tmp_path / "planner.privatekey"), "--open", "--work", "12", "--vessels", "1",
         "--days", "1", "-o", str(work / "open.grant")],
        capture_output=True, text=True, timeout=60)
    assert granted.returncode == 0, granted.stderr
    net = 49
    async with pw.pool_world(tmp_path, 3, 1, net=net) as (nodes, _):
        host, dht = await pw.world_listed(nodes, net, 3)
        boot = f"{host}:{dht}"
        session = await seash(home, """
            loadkeys alice; loadgrant open.grant
            get 2
            loadkeys bob; loadgrant open.grant
            get 1 as bobs
        """, cwd=work, bootstrap=boot, json_output=False)
        out = session.stdout + session.stderr
        # one vessel per key: alice gets 1 of 2 (QuotaReached), bob, a new key, gets his
        assert "open pool" in out, out
        assert out.count("leased as %") == 2, out
        assert "leased 1 of 2 vessels" in out and "QuotaReached" in out, out
        assert "leased 1 vessels: group 'bobs'" in out, out


async def test_get_leases_two_vessels_of_one_node_at_once(tmp_path: Path) -> None:
    """Two vessels of one node go out in one batched fan-out (revision 7): each acquisition
    is still sent alone, bound to its own moment (it once failed inside the batch); renewals
    and releases go in one Batch per node."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    alice = KeyPair.generate()
    save_keypair(home, "alice", alice)
    (work / "alice.grant").write_bytes(pw.credential(pw.WORLD_PLANNER, alice.public.raw,
                                                     vessels=4, expires=time.time() + 86400))
    net = 50
    async with pw.pool_world(tmp_path, 2, 2, net=net) as (nodes, _):
        host, dht = await pw.world_listed(nodes, net, 4)
        boot = f"{host}:{dht}"
        session = await seash(home, "loadkeys alice; loadgrant alice.grant; get 4; "
                                    "renew get; release get",
                              cwd=work, bootstrap=boot, json_output=False)
        out = session.stdout + session.stderr
        assert session.returncode == 0, out
        assert out.count("leased as %") == 4, out
        # renew and release go out as one Batch per node: each call of it is carried out
        # under the batch's nonce (they once all failed ReplayedNonce)
        assert "renew: 4 ok" in out and "release: 4 ok" in out, out
