"""Build and remove a lab on this machine (the I/O side of ``testbed/lab/plan.py``).

Netlink goes through pyroute2 (namespaces, veths, addresses, routes, the root's blackhole
routes); NAT rules go through Debian's ``nft``; commands run in a host with ``ip netns
exec``. Nothing here touches the machine's own interfaces or routes except the lab's
blackhole routes, which it adds before anything else and removes last.

A record per lab (``/run/seattle-lab/<id>.json``: its ranges, its directory, the pid that
made it) is written before the first namespace exists and removed after the last one is
gone, so ``clean_stale`` can always find what a crashed lab left: a lab is stale when no
process runs in any of its namespaces and the process that made it is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from installer.errors import TestbedError
from testbed.lab.plan import (
    LabPlan,
    Net,
    first_free,
    home_candidates,
    lab_of,
    nat_ruleset,
    overlaps,
    public_candidates,
)

log = logging.getLogger(__name__)

RECORDS = Path("/run/seattle-lab")
CLAIM_TRIES = 20
KILL_WAIT = 5.0


def require_root() -> None:
    """Refuse clearly unless we may create namespaces and routes."""
    if os.geteuid() != 0:
        raise TestbedError("--lab needs root (it creates network namespaces, veths, nftables "
                           "rules and blackhole routes); run it as root, or drop --lab for "
                           "the loopback testbed")
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        raise TestbedError(f"--lab needs {' and '.join(missing)} (Debian: apt-get install "
                           "iproute2 nftables; scripts/setup.sh does it when run as root)")


def used_networks() -> list[Net]:
    """Every IPv4 range of the root namespace: interface addresses and routes (any table)."""
    used: list[Net] = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr(family=socket.AF_INET):
            used.append(Net(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}", strict=False))
        for msg in ipr.get_routes(family=socket.AF_INET):  # every table
            dst = msg.get("RTA_DST")
            if dst is not None:
                used.append(Net(f"{dst}/{msg['dst_len']}", strict=False))
    return used


def _blackhole(ipr: IPRoute, net: Net, command: str) -> None:
    ipr.route(command, dst=str(net), type="blackhole")


def claim_ranges(public: Net | None, home: Net | None) -> tuple[Net, Net]:
    """Pick (or check) the lab's two ranges and blackhole them in the root namespace.

    An explicit range that an interface or route of the machine already uses is refused;
    an automatic one skips such ranges. The blackhole route doubles as the range's lease:
    adding it fails if another lab (or anything else) got there first.
    """
    for _ in range(CLAIM_TRIES):
        used = used_networks()
        chosen: list[Net] = []
        for given, candidates in ((public, public_candidates()), (home, home_candidates())):
            if given is not None:
                clash = overlaps([given], used + chosen)
                if clash:
                    raise TestbedError(f"lab range {given} overlaps {clash[0][1]}, which this "
                                       "machine already uses; pick another with --lab-net")
                chosen.append(given)
            else:
                chosen.append(first_free(candidates, used + chosen))
        if _add_blackholes(chosen):
            return chosen[0], chosen[1]
        if public is not None and home is not None:
            break
    raise TestbedError("could not claim lab ranges: another lab took them; try again")


def _add_blackholes(nets: Sequence[Net]) -> bool:
    added: list[Net] = []
    with IPRoute() as ipr:
        for net in nets:
            try:
                _blackhole(ipr, net, "add")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
                for done in added:
                    _blackhole(ipr, done, "del")
                return False
            added.append(net)
    return True


def release_ranges(nets: Sequence[Net]) -> None:
    """Remove the lab's blackhole routes (absent ones are fine)."""
    with IPRoute() as ipr:
        for net in nets:
            try:
                _blackhole(ipr, net, "del")
            except NetlinkError as exc:
                if exc.code not in (errno.ESRCH, errno.ENOENT):
                    raise


def blackholes() -> list[Net]:
    """The blackhole routes of the root namespace's main table."""
    with IPRoute() as ipr:
        return [Net(f"{m.get('RTA_DST')}/{m['dst_len']}") for m in ipr.get_routes(family=socket.AF_INET)
                if m["type"] == 6 and m.get("RTA_DST") is not None]  # RTN_BLACKHOLE


def write_record(lab_id: str, ranges: Sequence[Net], directory: Path) -> None:
    RECORDS.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {"id": lab_id, "ranges": [str(n) for n in ranges], "dir": str(directory),
            "creator": os.getpid(), "created": time.time()}
    (RECORDS / f"{lab_id}.json").write_text(json.dumps(data) + "\n")


def read_records() -> list[dict[str, Any]]:
    out = []
    for path in sorted(RECORDS.glob("*.json")) if RECORDS.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and lab_of(f"sl-{data['id']}-") == data["id"]:
                out.append(data)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("unreadable lab record %s", path)
    return out


def lab_namespaces(lab_id: str | None = None) -> list[str]:
    """The lab namespaces on this machine (of one lab, or of every lab)."""
    names = [n for n in netns.listnetns() if lab_of(n) is not None]
    return [n for n in names if lab_id is None or lab_of(n) == lab_id]


def lab_pids(lab_id: str) -> list[int]:
    """Processes running in any namespace of the lab."""
    pids = netns.ns_pids()
    return [pid for name, found in pids.items() if lab_of(name) == lab_id for pid in found]


def apply_plan(plan: LabPlan) -> None:
    """Create every namespace, link, address, route and NAT rule of the plan."""
    for name in plan.namespaces:
        netns.create(name)
    with ExitStack() as stack:
        rt = {name: stack.enter_context(IPRoute(netns=name)) for name in plan.namespaces}
        rt[plan.internet].link("add", ifname="br0", kind="bridge")
        bridge = rt[plan.internet].link_lookup(ifname="br0")[0]
        for link in plan.links():
            rt[link.a].link("add", ifname=link.a_if, kind="veth",
                            peer={"ifname": link.b_if, "net_ns_fd": link.b})
        for addr in plan.addresses():
            index = rt[addr.namespace].link_lookup(ifname=addr.ifname)[0]
            rt[addr.namespace].addr("add", index=index, address=addr.address, prefixlen=addr.prefixlen)
        for name, ipr in rt.items():
            for msg in ipr.get_links():
                ifname = msg.get("IFLA_IFNAME")
                master = {"master": bridge} if name == plan.internet and ifname not in ("br0", "lo") else {}
                ipr.link("set", index=msg["index"], state="up", **master)
        for route in plan.routes():
            rt[route.namespace].route("add", dst="0.0.0.0/0", gateway=route.gateway)
    for router in plan.routers:
        _configure_router(router.namespace, nat_ruleset(router.kind))


def _configure_router(namespace: str, ruleset: str) -> None:
    """Forwarding on, then the NAT and firewall rules (inside the router's namespace)."""
    script = "echo 1 > /proc/sys/net/ipv4/ip_forward && exec nft -f -"
    done = subprocess.run(exec_argv(namespace, ["sh", "-c", script]), input=ruleset.encode(),
                          capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        raise TestbedError(f"nft in {namespace} failed: {done.stderr.decode(errors='replace')[-300:]}")


def exec_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside a lab namespace."""
    return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", namespace, *argv]


def _kill_all(lab_id: str) -> None:
    """SIGKILL every process left in the lab's namespaces, until none is."""
    deadline = time.monotonic() + KILL_WAIT
    while (pids := lab_pids(lab_id)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def teardown(lab_id: str, ranges: Sequence[Net] = ()) -> int:
    """Remove everything of one lab (idempotent); returns how many namespaces went."""
    _kill_all(lab_id)
    names = lab_namespaces(lab_id)
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)
    if not ranges:
        ranges = [Net(r) for rec in read_records() if rec["id"] == lab_id for r in rec["ranges"]]
    release_ranges(ranges)
    (RECORDS / f"{lab_id}.json").unlink(missing_ok=True)
    log.info("lab %s removed (%d namespaces)", lab_id, len(names))
    return len(names)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale() -> list[str]:
    """Remove labs that crashed (no process in them, their maker gone); return their ids."""
    removed = []
    records = read_records()
    for record in records:
        if not lab_pids(record["id"]) and not _alive(record.get("creator")):
            teardown(record["id"], [Net(r) for r in record["ranges"]])
            removed.append(record["id"])
    known = {r["id"] for r in records}
    for lab_id in {lab_of(n) for n in lab_namespaces()} - known - {None}:
        if lab_id is not None and not lab_pids(lab_id):
            teardown(lab_id)  # namespaces with no record: what a crash left mid-teardown
            removed.append(lab_id)
    return removed


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the block with this thread in a lab namespace (sockets made here stay there)."""
    try:
        target = os.open(f"{netns.NETNS_RUN_DIR}/{namespace}", os.O_RDONLY)
    except FileNotFoundError as exc:
        raise TestbedError(f"no lab namespace {namespace} (is the lab up?)") from exc
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        netns.setns(target)
        try:
            yield
        finally:
            netns.setns(saved)
    finally:
        os.close(target)
        os.close(saved)
