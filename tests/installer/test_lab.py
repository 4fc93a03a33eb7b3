"""The network lab for real (root): ``seattle-testbed up --lab``, ``shell``, ``down``.

Every test builds its lab through the command line and removes it in a ``finally``; an
autouse fixture fails any test that leaves a lab namespace, blackhole route or record
behind (and removes them). Under CI=true (root) these tests must run, never skip.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from installer import TestbedError
from testbed.lab import net as labnet
from testbed.lab.plan import Net
from tests.support.files import traversable
from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB, cli, lab, lab_seash, lookup, status_rows
from tests.support.polling import eventually_sync
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]
PUBLIC_NODES = 20
"""The issue asks for 20 hosts: on the 2-core VM that is ~25 s of start-up under load."""


def lab_state() -> tuple[set[str], set[Net], set[str]]:
    records = set(p.name for p in labnet.RECORDS.glob("*.json")) if labnet.RECORDS.is_dir() else set()
    return set(labnet.lab_namespaces()), set(labnet.blackholes()), records


@pytest.fixture(autouse=True)
def nothing_left(tmp_path: Path) -> Iterator[None]:
    """Fail a test that leaves anything of a lab on the machine (and remove it).

    Labs that other processes run meanwhile (their records name a directory outside this
    test's ``tmp_path``) are neither counted nor touched."""
    before = lab_state()
    yield
    after = lab_state()
    foreign = [r for r in labnet.read_records() if not Path(r["dir"]).is_relative_to(tmp_path)]
    foreign_ids = {r["id"] for r in foreign}
    foreign_nets = {Net(n) for r in foreign for n in r["ranges"]}
    left = [sorted(map(str, a - b)) for a, b in zip(after, before, strict=True)]
    left[0] = [n for n in left[0] if n.split("-")[1] not in foreign_ids]
    left[1] = [n for n in left[1] if Net(n) not in foreign_nets]
    left[2] = [n for n in left[2] if n.removesuffix(".json") not in foreign_ids]
    for name in left[0]:
        lab_id = name.split("-")[1]
        labnet.teardown(lab_id)
    labnet.release_ranges([Net(n) for n in left[1]])
    assert left == [[], [], []], f"left behind: {left}"


def routes_of(namespace: str) -> list[tuple[str | None, str | None]]:
    with IPRoute(netns=namespace, flags=0) as ipr:
        return [(f"{m.get('RTA_DST')}/{m['dst_len']}" if m.get("RTA_DST") else None, m.get("RTA_GATEWAY"))
                for m in ipr.get_routes(family=socket.AF_INET, table=254)]


def root_links() -> set[str]:
    with IPRoute() as ipr:
        return {m.get("IFLA_IFNAME") for m in ipr.get_links()}


def root_addresses() -> list[str]:
    with IPRoute() as ipr:
        return [m.get("IFA_ADDRESS") for m in ipr.get_addr(family=socket.AF_INET)
                if not m.get("IFA_ADDRESS").startswith("127.")]


def udp_in(namespace: str) -> socket.socket:
    with labnet.inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    return sock


def check_isolation(data: dict[str, Any]) -> None:
    """Blackholes up, no lab link in root, no lab packet out, no route out of the lab."""
    lab = data["lab"]
    ranges = [Net(r) for r in lab["ranges"]]
    assert set(ranges) <= set(labnet.blackholes())
    node = data["nodes"][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError) as sent:
        sock.sendto(b"x", (node["address"], node["dht_port"]))  # from root, by mistake
    assert sent.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        socket.create_connection((node["address"], node["port"]), timeout=5)
    for namespace in labnet.lab_namespaces(lab["id"]):
        for dst, gateway in routes_of(namespace):
            assert dst is not None or (gateway and any(Net(gateway + "/32").subnet_of(r) for r in ranges))
            assert dst is None or any(Net(dst).subnet_of(r) for r in ranges), (namespace, dst)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("0.0.0.0", 0))
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        for namespace in (lab["researcher"]["namespace"], lab["hosts"][-1]["namespace"]):
            with udp_in(namespace) as sock:
                for address in root_addresses():
                    with pytest.raises(OSError) as out:
                        sock.sendto(b"escape", (address, port))
                    assert out.value.errno == errno.ENETUNREACH
        with pytest.raises(TimeoutError):
            listener.recvfrom(100)


def test_public_lab_browse_run_adverts(tmp_path: Path) -> None:
    links = root_links()
    directory = tmp_path / "tb"
    with lab(directory, "--nodes", str(PUBLIC_NODES), "--wait") as (data, out):
        assert f"all {PUBLIC_NODES} nodes usable" in out and "seattle-testbed shell --dir" in out
        lab_data = data["lab"]
        public = Net(lab_data["ranges"][0])
        assert root_links() == links  # no link from the lab into the root namespace
        check_isolation(data)
        assert data["bootstrap"].startswith(data["nodes"][0]["address"] + ":")
        for node in data["nodes"]:
            assert node["nat"] == "none" and Net(node["address"] + "/32").subnet_of(public)

        done = lab_seash(directory, data, "loadkeys demo; browse; run hello.py lab; wait; list")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"browse: {PUBLIC_NODES} ok" in done.stdout
        assert done.stdout.count("Terminated") >= 2 * PUBLIC_NODES
        assert f"list: {2 * PUBLIC_NODES} ok" in done.stdout

        adverts = lookup(directory, data)
        expected = {f"{n['address']}:{n['port']}" for n in data["nodes"]}
        assert {a["address"] for a in adverts} == expected  # lab addresses, never 127.0.0.1
        assert len(adverts) == 2 * PUBLIC_NODES

        status = cli("status", "--dir", str(directory))
        assert status.returncode == 0 and status.stdout.count(" running ") == PUBLIC_NODES
        rows = status_rows(status.stdout)  # asked at each node's lab address, from its host
        assert sorted(rows) == [n["name"] for n in data["nodes"]]
        assert all(row[6] == "2" and "error:" not in row for row in rows.values()), status.stdout
    assert not set(map(Net, lab_data["ranges"])) & set(labnet.blackholes())
    assert cli("down", "--dir", str(directory)).returncode == 0  # idempotent


def nat_behaviour(data: dict[str, Any]) -> dict[str, Any]:
    """Ports seen by two public hosts for one UDP socket behind each kind of NAT; inbound."""
    lab = data["lab"]
    publics = [h for h in lab["hosts"] if h["nat"] == "none"][:2]
    echoes = [udp_in(h["namespace"]) for h in publics]
    seen: dict[str, Any] = {}
    try:
        for echo, host in zip(echoes, publics, strict=True):
            echo.bind((host["address"], 7007))
        for host in lab["hosts"]:
            if host["nat"] == "none" or host["nat"] in seen:
                continue
            with udp_in(host["namespace"]) as sock:
                sock.bind(("0.0.0.0", 41000))
                ports = []
                for echo, target in zip(echoes, publics, strict=True):
                    sock.sendto(b"hi", (target["address"], 7007))
                    _, (ip, port) = echo.recvfrom(10)
                    assert ip == host["public_address"]
                    ports.append(port)
                with udp_in(lab["researcher"]["namespace"]) as stranger:  # never contacted
                    stranger.sendto(b"unsolicited", (host["public_address"], ports[0]))
                with contextlib.suppress(TimeoutError):
                    sock.recvfrom(20)
                    ports.append("inbound delivered")
                seen[host["nat"]] = ports
    finally:
        for echo in echoes:
            echo.close()
    return seen


def test_nat_lab_baseline(tmp_path: Path) -> None:
    """Half the donors behind NAT: what works today (the baseline for NAT traversal)."""
    directory = tmp_path / "tb"
    with lab(directory, "--nodes", "6", "--nat", "0.5", "--nat-kind", "mixed", "--no-sandbox",
             "--wait") as (data, _):
        hosts = data["lab"]["hosts"]
        nated = [n for n in data["nodes"] if n["nat"] != "none"]
        assert [n["nat"] for n in nated] == ["cone", "symmetric", "cone"]
        assert all(n["address"] == hosts[1]["address"] != n["public_address"] for n in nated)

        ports = nat_behaviour(data)
        assert ports["cone"] == [41000, 41000]  # endpoint-independent, port kept
        assert 41000 not in ports["symmetric"] and ports["symmetric"][0] != ports["symmetric"][1]

        # observed, not guessed: a NATed node advertises its router's address
        adverts = {a["address"] for a in lookup(directory, data)}
        assert adverts == {f"{n['public_address']}:{n['port']}" for n in data["nodes"]}

        # the lab's NAT: inbound connections fail, as on the internet. Tried by a plain TCP
        # connect from the researcher's host: seash itself may already reach the NATed nodes
        # (they take relays and punch holes within seconds, sooner or later with the load)
        targets = {f"{n['public_address']}:{n['port']}": n["nat"] == "none" for n in data["nodes"]}
        assert researcher_connects(directory, list(targets)) == targets

        done = lab_seash(directory, data, "loadkeys demo; set timeout 3; browse; list")
        for node in data["nodes"]:
            if node["nat"] == "none":
                address = re.escape(f"{node['address']}:{node['port']}")
                assert re.search(rf"^{address} +ok ", done.stdout, re.MULTILINE), done.stdout


CONNECT = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def accepts(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False

with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print(json.dumps(dict(zip(sys.argv[1:], pool.map(accepts, sys.argv[1:])))))
"""


def researcher_connects(directory: Path, targets: list[str]) -> dict[str, bool]:
    """Which ``host:port`` accept a TCP connection from the researcher's host."""
    done = cli("shell", "--dir", str(directory), "--", sys.executable, "-c", CONNECT, *targets)
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    used = next(str(Net(f"{a}/24", strict=False)) for a in [*root_addresses(), "127.0.0.1"])
    before = lab_state()
    taken = cli("up", "--lab", "--nodes", "1", "--lab-net", used, "--dir", str(tmp_path / "a"))
    assert taken.returncode == 1 and "which this machine already uses" in taken.stderr
    assert lab_state() == before
    bare = cli("up", "--nat", "0.5", "--dir", str(tmp_path / "b"))
    assert bare.returncode == 2 and "need(s) --lab" in bare.stderr  # bad usage

    from testbed.cli import main
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["up", "--lab", "--nodes", "1", "--dir", str(tmp_path / "c")]) == 1
    assert "--lab needs root" in capsys.readouterr().err
    assert lab_state() == before


def test_two_labs_never_share_a_range() -> None:
    """The blackhole is the range's lease: a second claim gets other ranges, or a refusal."""
    first = labnet.claim_ranges(None, None)
    try:
        second = labnet.claim_ranges(None, None)
        try:
            assert not set(first) & set(second)
            assert not any(a.overlaps(b) for a in first for b in second)
        finally:
            labnet.release_ranges(second)
        with pytest.raises(TestbedError, match="already uses"):
            labnet.claim_ranges(first[0], None)
    finally:
        labnet.release_ranges(first)


def test_up_cleans_a_crashed_lab(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    traversable(tmp_path)
    up = cli("up", "--lab", "--nodes", "2", "--no-sandbox", "--dir", str(first))
    assert up.returncode == 0, up.stderr
    crashed = json.loads((first / "testbed.json").read_text())["lab"]
    try:
        for pid in labnet.lab_pids(crashed["id"]):  # the crash: every node killed at once
            os.kill(pid, signal.SIGKILL)
        eventually_sync(lambda: not labnet.lab_pids(crashed["id"]), timeout=10, interval=0.05)
        assert labnet.lab_namespaces(crashed["id"])  # what the crash left
        with lab(second, "--nodes", "1", "--no-sandbox") as (data, _):
            assert not labnet.lab_namespaces(crashed["id"])
            assert not (labnet.RECORDS / f"{crashed['id']}.json").exists()
            assert data["lab"]["id"] != crashed["id"]
            code = cli("shell", "--dir", str(second), "n000", "--", "sh", "-c", "exit 3")
            assert code.returncode == 3
            where = cli("shell", "--dir", str(second), "--", "cat", "/proc/net/route")
            assert "eth0" in where.stdout and "\neth0\t00000000" not in where.stdout  # no default
            wrong = cli("shell", "--dir", str(second), "n007", "--", "true")
            assert wrong.returncode == 1 and "no lab host 'n007'" in wrong.stderr
    finally:
        labnet.teardown(crashed["id"])
    again = cli("down", "--dir", str(first))
    assert again.returncode == 0, again.stderr
