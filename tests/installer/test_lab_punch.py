"""Direct connections to donors behind NAT in the network lab (root), end to end.

``seattle-testbed up --lab --nodes 6 --nat 0.5 --nat-kind mixed --researcher-nat``: node 1
and 4 sit behind cone NATs, node 2 behind a symmetric one, the researcher behind a cone NAT.
seash reaches the NATed nodes through relays, then the hole punch moves each session with a
cone donor to a direct connection (simultaneous open: both sides are behind NAT), while the
symmetric donor stays relayed. Under CI=true these tests must run, never skip.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, lab, lab_seash, wait_lab_relayed
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]
NODES = 6


def test_cone_donors_go_direct_symmetric_stays_relayed(tmp_path: Path) -> None:
    directory = tmp_path / "tb"
    with lab(directory, "--nodes", str(NODES), "--nat", "0.5", "--nat-kind", "mixed",
             "--researcher-nat", "--pin-reachability", "--no-sandbox", "--wait") as (data, _):
        kinds = {f"{n['public_address']}:{n['port']}": n["nat"] for n in data["nodes"]}
        assert sorted(kinds.values()) == ["cone", "cone", "none", "none", "none", "symmetric"]
        wait_lab_relayed(directory, data, 2 * NODES, timeout=120)
        done = lab_seash(directory, data, "loadkeys demo; browse; list; show info")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"list: {2 * NODES} ok" in done.stdout
        paths = {}
        for address, kind in kinds.items():
            lines = re.findall(rf"^ *%\d+ +{re.escape(address)}:v\d+ +ok .*$", done.stdout, re.MULTILINE)
            assert lines, (address, done.stdout)
            paths[kind] = paths.get(kind, set()) | {
                "punched" if "[punched]" in line else "relay" if "[relay " in line else "direct"
                for line in lines}
        assert paths == {"none": {"direct"}, "cone": {"punched"}, "symmetric": {"relay"}}, \
            done.stdout
        rows = re.findall(r"^%\d+ +\S+ .* (direct|punched|relay \S+)$", done.stdout, re.MULTILINE)
        assert sorted(r.split()[0] for r in rows) == ["direct"] * 6 + ["punched"] * 4 + ["relay"] * 2
