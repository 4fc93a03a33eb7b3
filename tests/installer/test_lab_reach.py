"""Reachability in the network lab (root): public hosts decide public; cone- and symmetric-
NATed hosts decide private within a few probes, run their DHT nodes in client mode, are in
no honest routing table, and still publish and look up. Under CI=true these run, never skip."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.lab.nodes import lab_reports
from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, cli, lab, lab_seash, lookup, status_rows
from tests.support.polling import eventually_sync
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]

DECIDE_TIMEOUT = 90.0
DHT = Path(sys.executable).with_name("seattle-dht")


def decided(data: dict[str, Any]) -> list[Any]:
    """Every node's report once all have decided both ports and their DHT nodes follow the
    decision (the mode switches a moment after the board changes; fails after
    DECIDE_TIMEOUT)."""
    def all_decided() -> list[Any] | None:
        reports = lab_reports(data)
        reach = [r.reachability or {} for r in reports]
        if all(r.get("tcp") != "unknown" and r.get("udp") != "unknown" and r.get("observed")
               and report.dht_mode == ("server" if r.get("udp") == "public" else "client")
               for r, report in zip(reach, reports, strict=True)):
            return reports
        raise AssertionError([r.get("reason") for r in reach])

    return eventually_sync(all_decided, timeout=DECIDE_TIMEOUT, interval=1, what="every node decided")


def dht_doc(node: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((Path(node["state"]) / "dht-status.json").read_text())
    return doc


def test_nat_lab_reachability_and_client_mode(tmp_path: Path) -> None:
    directory = tmp_path / "tb"
    with lab(directory, "--nodes", "7", "--nat", "0.43", "--nat-kind", "mixed", "--no-sandbox",
             "--wait") as (data, _):
        nodes = data["nodes"]
        kinds = sorted(n["nat"] for n in nodes)
        assert kinds.count("none") >= 3 and {"cone", "symmetric"} <= set(kinds), kinds
        # 'up --wait' returned: usable now, with no more waiting (NATed vessels via relays)
        listed = lab_seash(directory, data, "loadkeys demo; browse; list")
        assert f"list: {2 * len(nodes)} ok" in listed.stdout, listed.stdout + listed.stderr
        crawl = json.loads(cli("shell", "--dir", str(directory), "--", str(DHT), "crawl", "--json",
                               "--bootstrap", data["bootstrap"]).stdout)
        public = {f"{n['address']}:{n['dht_port']}" for n in nodes if n["nat"] == "none"}
        assert public <= set(crawl["live_nodes"]), crawl
        rows = status_rows(cli("status", "--dir", str(directory)).stdout)
        assert [rows[n["name"]][6] for n in nodes] == ["2"] * len(nodes), rows
        reports = decided(data)
        for node, report in zip(nodes, reports, strict=True):
            reach = report.reachability
            assert reach is not None
            want = "public" if node["nat"] == "none" else "private"
            assert (reach["tcp"], reach["udp"]) == (want, want), (node["nat"], reach)
            assert reach["observed"] == node["public_address"], (node, reach)
            # decided within a bounded number of dial-backs: the window holds at most 5
            assert "of 5" not in reach["reason"] or want == "public", reach["reason"]
            assert report.dht_mode == ("server" if want == "public" else "client"), report
        # the status files are rewritten every 10 s: read them once all were written after the decision
        decided_at = time.time()
        eventually_sync(lambda: all((Path(n["state"]) / "dht-status.json").stat().st_mtime > decided_at
                                    for n in nodes), timeout=30, interval=0.5, what="fresh status files")
        nated_ids = {dht_doc(n)["stats"]["node_id"] for n in nodes if n["nat"] != "none"}
        for node in nodes:
            doc = dht_doc(node)
            if node["nat"] == "none":
                assert doc["mode"] == "server"
                assert not nated_ids & {p["id"] for p in doc["peers"]}, node["name"]
            else:
                assert doc["mode"] == "client"
        # NATed nodes still publish (their adverts are found) and look up (from behind NAT)
        adverts = {a["address"] for a in lookup(directory, data)}
        assert adverts == {f"{n['public_address']}:{n['port']}" for n in nodes}
        nated = next(n for n in nodes if n["nat"] != "none")
        done = cli("shell", "--dir", str(directory), nated["name"], "--", str(DHT), "lookup", "--json",
                   "--bootstrap", data["bootstrap"], data["demo"]["publickey"])
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["candidates"]) == 2 * len(nodes)
        status = cli("status", "--dir", str(directory))
        assert "private/private" in status.stdout and "public/public" in status.stdout, status.stdout
