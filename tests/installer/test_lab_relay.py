"""Donors behind NAT in the network lab (root): every vessel usable from seash via relays.

``seattle-testbed up --lab --nodes 20 --nat 0.5 --nat-kind mixed``: half the hosts sit behind
cone or symmetric NAT routers that drop unsolicited inbound connections. The NATed node
managers hold reservations with public ones and advertise them; seash on the researcher's
host browses, runs and lists every vessel. Under CI=true these tests must run, never skip.
(test_lab.py's autouse ``nothing_left`` fixture is not used here: it removes *every* lab that
appeared meanwhile, including those of concurrent runs; ``lab()`` checks that ours is gone.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, cli, lab, lab_seash, wait_lab_relayed
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]
NODES = 20


def test_every_vessel_behind_nat_is_usable_through_relays(tmp_path: Path) -> None:
    directory = tmp_path / "tb"
    # No pinning: every node's prober decides whether it is reachable, as on a donor's machine.
    with lab(directory, "--nodes", str(NODES), "--nat", "0.5", "--nat-kind", "mixed",
             "--wait") as (data, _):
        nated = [n for n in data["nodes"] if n["nat"] != "none"]
        assert len(nated) == NODES // 2
        adverts = wait_lab_relayed(directory, data, 2 * NODES, timeout=180)
        public = {f"{n['address']}:{n['port']}" for n in data["nodes"] if n["nat"] == "none"}
        assert all(not a["relays"] for a in adverts if a["address"] in public)
        done = lab_seash(directory, data, "loadkeys demo; browse; run hello.py lab; wait; list")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"browse: {NODES} ok" in done.stdout
        assert f"list: {2 * NODES} ok" in done.stdout
        assert done.stdout.count("Terminated") >= 2 * NODES
        # the NATed vessels' list lines: the researcher is public, so the hole punch's
        # connection reversal takes every one of them direct after the relayed start
        assert done.stdout.count("[relay ") + done.stdout.count("[punched]") == NODES
        status = cli("status", "--dir", str(directory))
        assert status.returncode == 0, status.stderr
