"""The testbed in the network lab (``seattle-testbed up --lab``): the glue between the lab
(``testbed/lab/plan.py`` plans it, ``testbed/lab/net.py`` builds it) and the testbed library.

``start_lab`` cleans what crashed labs left, claims two ranges (blackholed in the root
namespace), builds the namespaces, then starts one node manager per lab host with
``ip netns exec`` on its host's address, and writes ``testbed.json`` with a ``lab``
section. ``stop_lab`` stops the nodes and removes everything of the lab; it is idempotent.
Anything that must reach lab addresses (``--wait``, ``status``) runs inside a lab host.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from installer.donor.status import NodeReport, query_node
from installer.errors import TestbedError
from seattlecore import PublicKey
from testbed.lab import net as labnet
from testbed.lab.plan import RESEARCHER, Host, LabPlan, NatChoice, Net, plan_lab
from testbed.local import (
    MANIFEST,
    NodeSite,
    load_manifest,
    refuse_running,
    start_testbed,
    stop_all,
    wait_discoverable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabOptions:
    """``--nat F --nat-kind K --researcher-nat --lab-net PUBLIC[,HOME]``."""

    nat: float = 0.0
    nat_kind: NatChoice = "cone"
    researcher_nat: bool = False
    pin_reachability: bool = False
    """Start NATed hosts' node managers with ``--reachability private``, others ``public``."""
    public_net: Net | None = None
    home_net: Net | None = None


def describe(plan: LabPlan) -> dict[str, Any]:
    """The ``lab`` section of ``testbed.json``."""
    return {"id": plan.lab_id, "ranges": [str(n) for n in plan.ranges], "internet": plan.internet,
            "researcher": host_info(plan.researcher),
            "hosts": [host_info(h) for h in plan.nodes]}


def host_info(host: Host) -> dict[str, Any]:
    return {"name": host.name, "namespace": host.namespace, "address": host.address,
            "public_address": host.public_address, "nat": host.nat,
            "router": host.router.namespace if host.router else None}


def _clean_directory(directory: Path) -> None:
    """Remove the lab an earlier ``up`` in ``directory`` left (its nodes are not running)."""
    if not (directory / MANIFEST).exists():
        return
    lab = load_manifest(directory).get("lab")
    if isinstance(lab, dict) and isinstance(lab.get("id"), str):
        labnet.teardown(lab["id"], [Net(r) for r in lab.get("ranges", [])])


def start_lab(directory: Path, nodes: int, vessels: int = 2, sandbox: bool = True,
              options: LabOptions = LabOptions(), pool: bool = False) -> dict[str, Any]:
    """Build a lab of ``nodes`` hosts plus the researcher's and start a testbed in it
    (``pool``: every vessel in a community pool, as ``up --pool``)."""
    labnet.require_root()
    refuse_running(directory)
    _clean_directory(directory)
    for stale in labnet.clean_stale():
        log.warning("removed lab %s, left by a crashed run", stale)
    lab_id = secrets.token_hex(3)
    labnet.write_record(lab_id, (), directory)  # first: a crash from here on leaves a trace
    ranges: tuple[Net, ...] = ()
    try:
        ranges = labnet.claim_ranges(options.public_net, options.home_net)
        labnet.write_record(lab_id, ranges, directory)
        plan = plan_lab(lab_id, nodes, ranges[0], ranges[1], nat=options.nat,
                        nat_kind=options.nat_kind, researcher_nat=options.researcher_nat)
        labnet.apply_plan(plan)
        sites = [NodeSite(host=h.address, prefix=tuple(labnet.exec_argv(h.namespace, [])),
                          extra={k: v for k, v in host_info(h).items() if k != "name"},
                          args=_reachability_args(options, h.nat != "none"))
                 for h in plan.nodes]
        return trio.run(partial(start_testbed, directory, nodes, vessels, sandbox, sites,
                                {"lab": describe(plan)}, pool=pool))
    except BaseException:
        labnet.teardown(lab_id, ranges)
        raise


def _reachability_args(options: LabOptions, nated: bool) -> tuple[str, ...]:
    if not options.pin_reachability:
        return ()
    return ("--reachability", "private" if nated else "public")


def stop_lab(data: dict[str, Any]) -> tuple[int, int]:
    """Stop the testbed's nodes, then remove its lab; (nodes stopped, namespaces removed)."""
    stopped = stop_all(data["nodes"])
    lab = data.get("lab")
    if not isinstance(lab, dict):
        return stopped, 0
    return stopped, labnet.teardown(lab["id"], [Net(r) for r in lab["ranges"]])


def lab_of(data: dict[str, Any]) -> dict[str, Any] | None:
    lab = data.get("lab")
    return lab if isinstance(lab, dict) else None


def host_namespace(data: dict[str, Any], name: str | None) -> str | None:
    """The namespace of lab host ``name`` (default: the researcher's); None on loopback."""
    lab = lab_of(data)
    if lab is None:
        known = {RESEARCHER} | {n["name"] for n in data["nodes"]}
        if name is not None and name not in known:
            raise TestbedError(f"no host {name!r} in this testbed")
        return None
    hosts = [lab["researcher"], *lab["hosts"]]
    for host in hosts:
        if (name or RESEARCHER) in (host["name"], host["namespace"]):
            return str(host["namespace"])
    raise TestbedError(f"no lab host {name!r} (hosts: {RESEARCHER}, n000 ... "
                       f"n{len(hosts) - 2:03d})")


def run_on(data: dict[str, Any], name: str | None, argv: Sequence[str]) -> int:
    """Run ``argv`` on a host of the testbed (inside its namespace in a lab); its status."""
    namespace = host_namespace(data, name)
    full = list(argv) if namespace is None else labnet.exec_argv(namespace, argv)
    try:
        done = subprocess.run(full, check=False)
    except OSError as exc:
        raise TestbedError(f"cannot run {argv[0]}: {exc}") from exc
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


def wait_lab_discoverable(data: dict[str, Any], key: PublicKey, timeout: float = 60.0) -> float:
    """``wait_discoverable`` from the researcher's host."""
    lab = lab_of(data)
    assert lab is not None
    with labnet.inside(lab["researcher"]["namespace"]):
        return trio.run(wait_discoverable, data["bootstrap"], key, len(data["nodes"]), timeout)


def lab_reports(data: dict[str, Any]) -> list[NodeReport]:
    """Each node's status, asked from inside its own host (its address is private to it)."""
    reports = []
    for node in data["nodes"]:
        with labnet.inside(node["namespace"]):
            reports.append(trio.run(query_node, Path(node["state"]), node["address"]))
    return reports


def lab_hints(data: dict[str, Any], directory: Path) -> list[str]:
    """What ``up --lab`` prints after the usual lines."""
    lab = lab_of(data)
    assert lab is not None
    nated = sum(1 for h in lab["hosts"] if h["nat"] != "none")
    return [f"  lab {lab['id']}: internet {lab['ranges'][0]}, homes {lab['ranges'][1]}, "
            f"{nated} of {len(lab['hosts'])} nodes behind NAT, researcher at "
            f"{lab['researcher']['public_address']}",
            "run seash on the researcher's host:",
            f"  seattle-testbed shell --dir {directory} -- seash --home {directory / 'keys'} "
            f"--bootstrap {data['bootstrap']}"]
