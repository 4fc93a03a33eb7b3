"""A pool in the network lab (root): ``seattle-testbed up --lab --pool``, then seash on the
researcher's host leases 10 vessels with ``get 10 --spread``, each on a /24 of its own."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, lab, lab_seash
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]
NODES = 12
LEASED = re.compile(r"^(\d+\.\d+\.\d+)\.\d+:\d+:v\d+\s+ok leased as %\d+", re.MULTILINE)


def test_get_spread_leases_ten_distinct_networks_in_the_lab(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    with lab(directory, "--nodes", str(NODES), "--pool", "--vessels", "2", "--no-sandbox",
             "--wait") as (data, out):
        assert "community pool" in out, out
        assert len({n["public_address"] for n in data["nodes"]}) == NODES
        done = lab_seash(directory, data, f"loadkeys demo; loadgrant {data['pool']['grant']}; "
                                          "get 10 --spread; show leases; release get", "-v")
        text = done.stdout + done.stderr
        assert done.returncode == 0, text
        nets = LEASED.findall(done.stdout)
        assert len(nets) == 10, text
        if ipaddress.ip_network(data["lab"]["ranges"][0]).prefixlen <= 16:
            # 2 vessels on each of 12 hosts, each alone in its /24: spread takes 10 networks
            assert len(set(nets)) == 10, text
        else:  # another lab held 198.18.0.0/16: every host is packed into one TEST-NET /24
            assert len(set(nets)) == 1, text
        assert "release: 10 ok" in text, text
