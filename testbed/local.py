"""A whole testbed on one machine (N node managers on loopback): the library behind
``seattle-testbed`` (whose command line is ``testbed/cli.py``).

``start_testbed`` creates a demo identity (``DIR/keys/demo.publickey/.privatekey``) that owns every
vessel, initialises one state directory per node, starts node 0 (the DHT bootstrap peer),
then all others bootstrapping from it, each detached in its own session, and writes
``DIR/testbed.json``. ``stop_all`` SIGTERMs every node and waits for it to exit;
``restart_node`` stops one node (SIGTERM, or SIGKILL as a crash) and starts it again with
its command line and state, so it gets its remembered ports and peers back, and updates its
record; ``run_everywhere`` runs one program on every vessel of the demo identity.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import trio

from installer.donor.procs import find_process, read_int_file, spawn_detached, stop_process, wait_gone
from installer.errors import TestbedError
from nodemanager.nat.dial import Route, open_route_client
from overlay import Advert, OverlayError, lookup_once
from sandbox import ResourceTable
from seattlecore import KeyPair, PublicKey, load_private, save_keypair, write_atomic
from testbed.pool import PLANNER, pool_node_spec, write_grant

log = logging.getLogger(__name__)

MANIFEST = "testbed.json"
DEMO = "demo"
HOST = "127.0.0.1"
PORT_BASE = 20000
NET_ENV = "SEATTLE_TESTBED_NET"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LIVENESS_EVERY = 1.0
VESSEL_VALUES = {
    "cpu": 0.05, "memory": 100_000_000, "diskused": 10_000_000, "events": 10,
    "filewrite": 100_000, "fileread": 100_000, "filesopened": 10, "insockets": 4,
    "outsockets": 4, "netsend": 10_000, "netrecv": 10_000, "loopsend": 1_000_000,
    "looprecv": 1_000_000, "lograte": 30_000, "random": 1_000,
}
"""A small vessel (after Seattle's own test vessel: docs/seattle.md, A small vessel)."""


def vessel_table(index: int) -> ResourceTable:
    """The testbed's ``index``-th vessel (over all nodes): small, with two ports of its own."""
    ports = frozenset({PORT_BASE + 2 * index, PORT_BASE + 2 * index + 1})
    return ResourceTable(VESSEL_VALUES, ports, ports)


def node_spec(node: int, vessels: int, owner: PublicKey) -> dict[str, Any]:
    return {"vessels": [{"owner": owner.to_text(),
                         "resources": vessel_table(node * vessels + j).as_dict()}
                        for j in range(vessels)]}


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSite:
    """Where a node runs: the address it listens on and a prefix for its command line.

    On loopback node i listens on its own address (``node_host``); in the network lab (testbed/lab/nodes.py)
    each runs under ``ip netns exec <its host's namespace>`` on its host's address, and
    ``extra`` (namespace, NAT kind, public address) goes into ``testbed.json``.
    """

    host: str = HOST
    prefix: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    """More ``seattle-nodemanager`` options (e.g. ``--reachability private``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TestbedNode:
    """One running node of the testbed."""

    __test__ = False

    name: str
    state: Path
    pid: int
    port: int
    dht_port: int
    site: NodeSite

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": str(self.state), "pid": self.pid,
                "port": self.port, "dht_port": self.dht_port, "address": self.site.host,
                **self.site.extra}


def load_manifest(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise TestbedError(f"no testbed in {directory} ({MANIFEST}: {exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise TestbedError(f"{directory / MANIFEST} is malformed")
    return data


def running_nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in data["nodes"] if find_process(n.get("pid"), n["state"]) is not None]


def nodes_rss_mb(data: dict[str, Any]) -> float:
    """Resident memory of a testbed's node manager processes in MB (a node gone counts 0)."""
    total = 0
    for node in data["nodes"]:
        try:
            total += psutil.Process(node["pid"]).memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def demo_identity(directory: Path, name: str = DEMO) -> KeyPair:
    """Load or create ``keys/NAME.privatekey`` (default: the demo identity)."""
    private = directory / "keys" / f"{name}.privatekey"
    if private.exists():
        return load_private(private)
    keys = KeyPair.generate()
    save_keypair(directory / "keys", name, keys)
    return keys


async def _init_all(states: list[Path], specs: list[dict[str, Any]]) -> None:
    """Run ``seattle-nodemanager init`` for every new state dir, a few at a time."""
    limiter = trio.CapacityLimiter(max(os.cpu_count() or 1, 1) + 1)
    failures: list[str] = []

    async def init(state: Path, spec_path: Path) -> None:
        async with limiter:
            result = await trio.run_process(
                [sys.executable, "-m", "nodemanager", "init", "--state", str(state),
                 "--spec", str(spec_path)], capture_stdout=True, capture_stderr=True, check=False)
        if result.returncode != 0:
            failures.append(f"{state.name}: {result.stderr.decode(errors='replace')[-300:]}")

    async with trio.open_nursery() as nursery:
        for state, spec in zip(states, specs, strict=True):
            if (state / "state.sqlite").exists():
                continue  # initialised by an earlier 'up': keep its keys and files
            state.parent.mkdir(parents=True, exist_ok=True)
            spec_path = state.parent / f"{state.name}.json"
            spec_path.write_text(json.dumps(spec))
            nursery.start_soon(init, state, spec_path)
    if failures:
        raise TestbedError("node init failed: " + "; ".join(failures[:3]))


def node_host(index: int) -> str:
    """Node ``index``'s own loopback address, each in its own /24 (127.1.0.1, 127.1.1.1, ...),
    so the DHT's per-address and per-prefix limits apply on a one-machine testbed as they
    would between machines. ``$SEATTLE_TESTBED_NET`` moves the first /16 (default 1: 127.1.x.1),
    so testbeds started side by side (parallel test workers) never share an address."""
    return f"127.{loopback_net() + index // 256}.{index % 256}.1"


def loopback_net() -> int:
    """The second octet of node 0's address: ``$SEATTLE_TESTBED_NET`` (1-254), default 1."""
    value = os.environ.get(NET_ENV, "1")
    if not value.isdigit() or not 1 <= int(value) <= 254:
        raise TestbedError(f"{NET_ENV}={value!r}: want a number from 1 to 254")
    return int(value)


def _start(state: Path, bootstrap: str | None, sandbox: bool, site: NodeSite) -> int:
    for name in ("nodemanager.port", "dht.port"):
        (state / name).unlink(missing_ok=True)
    argv = [*site.prefix, sys.executable, "-m", "nodemanager", "--state", str(state),
            "--listen", f"{site.host}:0", *site.args]
    if bootstrap:
        argv += ["--bootstrap", bootstrap]
    if not sandbox:
        argv.append("--no-sandbox")
    return spawn_detached(argv, state / "daemon.out", state)


async def _wait_ports(states: list[Path], pids: list[int], timeout: float) -> None:
    """Wait until every node has written its DHT port (it then serves and has joined)."""
    next_check = trio.current_time() + LIVENESS_EVERY
    with trio.move_on_after(timeout):
        while True:
            waiting = [i for i, s in enumerate(states) if not (s / "dht.port").exists()]
            if not waiting:
                return
            if trio.current_time() >= next_check:  # psutil is not free: check now and then
                next_check = trio.current_time() + LIVENESS_EVERY
                dead = [states[i].name for i in waiting
                        if find_process(pids[i], str(states[i])) is None
                        and not (states[i] / "dht.port").exists()]
                if dead:
                    raise TestbedError(f"node(s) {', '.join(dead[:5])} exited at start; "
                                       f"see {states[0].parent}/<node>/daemon.out")
            await trio.sleep(0.1)
    raise TestbedError(f"nodes did not start within {timeout:.0f} s")


def refuse_running(directory: Path) -> None:
    """Raise if ``directory`` holds a testbed with a live node."""
    if (directory / MANIFEST).exists() and running_nodes(load_manifest(directory)):
        raise TestbedError(f"a testbed is already up in {directory}; run "
                           f"'seattle-testbed down --dir {shlex.quote(str(directory))}'")


async def start_testbed(directory: Path, nodes: int, vessels: int = 2, sandbox: bool = True,
                        sites: Sequence[NodeSite] | None = None,
                        extra: dict[str, Any] | None = None, pool: bool = False) -> dict[str, Any]:
    """Initialise and start ``nodes`` node managers; write and return ``testbed.json``'s data.

    ``sites`` says where each node runs (default: all on loopback); ``extra`` is added to
    ``testbed.json`` as is (the lab's description). With ``pool`` every vessel is in a
    community pool and the demo identity gets a credential (testbed/pool.py).
    """
    if nodes < 1 or vessels < 1:
        raise TestbedError("need at least one node and one vessel per node")
    sites = list(sites or [NodeSite(host=node_host(i)) for i in range(nodes)])
    if len(sites) != nodes:
        raise TestbedError(f"{len(sites)} sites for {nodes} nodes")
    refuse_running(directory)
    directory.mkdir(parents=True, exist_ok=True)
    demo = demo_identity(directory)
    states = [directory / "nodes" / f"n{i:03d}" for i in range(nodes)]
    specs = [node_spec(i, vessels, demo.public) for i in range(nodes)]
    if pool:  # the community pool (docs/pool.md)
        planner = demo_identity(directory, PLANNER)
        specs = [pool_node_spec([v["resources"] for v in spec["vessels"]], planner)
                 for spec in specs]
        extra = {**(extra or {}), "pool": {
            "key": planner.public.to_text(),
            "grant": str(write_grant(directory, planner, demo))}}
    await _init_all(states, specs)
    pids = [_start(states[0], None, sandbox, sites[0])]
    try:
        await _wait_ports(states[:1], pids, START_TIMEOUT)
        bootstrap = f"{sites[0].host}:{read_int_file(states[0] / 'dht.port')}"
        pids += [_start(state, bootstrap, sandbox, site)
                 for state, site in zip(states[1:], sites[1:], strict=True)]
        await _wait_ports(states, pids, START_TIMEOUT)
        last_started = time.time()
    except BaseException:
        stop_all([{"pid": pid, "state": str(state)} for pid, state in zip(pids, states, strict=False)])
        raise
    members = [TestbedNode(name=s.name, state=s, pid=p, port=read_int_file(s / "nodemanager.port") or 0,
                           dht_port=read_int_file(s / "dht.port") or 0, site=site)
               for s, p, site in zip(states, pids, sites, strict=True)]
    data = {"nodes": [m.as_dict() for m in members], "bootstrap": bootstrap,
            "vessels_per_node": vessels, "sandbox": sandbox, "started": time.time(),
            "last_started": last_started,
            "demo": {"publickey": str(directory / "keys" / f"{DEMO}.publickey"),
                     "privatekey": str(directory / "keys" / f"{DEMO}.privatekey")},
            **(extra or {})}
    write_atomic(directory / MANIFEST, (json.dumps(data, indent=1) + "\n").encode())
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    """One node's restart: its record before and after."""

    before: dict[str, Any]
    after: dict[str, Any]
    started_at: float
    """Wall-clock time the new process was started."""


def find_node(data: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    """The index and record of node ``name`` (``n003`` or ``3``)."""
    for index, node in enumerate(data["nodes"]):
        if name in (node["name"], str(index)):
            return index, node
    names = ", ".join(n["name"] for n in data["nodes"][:8])
    raise TestbedError(f"no node {name!r} in this testbed (nodes: {names}, ...)")


def kill_node(node: dict[str, Any], *, crash: bool, timeout: float = STOP_TIMEOUT) -> None:
    """Stop one node: SIGTERM and wait (a clean stop), or SIGKILL the daemon alone (a crash:
    its vessel programs are left for the next run to clean up)."""
    if find_process(node.get("pid"), node["state"]) is None:
        return
    if not crash:
        stop_process(node["pid"], node["state"], timeout=timeout)
        return
    try:
        os.kill(node["pid"], signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_gone(node["pid"], node["state"], timeout):
        raise TestbedError(f"{node['name']} (pid {node['pid']}) did not die of SIGKILL")


async def restart_node(directory: Path, name: str, *, crash: bool = False,
                       timeout: float = START_TIMEOUT,
                       before_start: Callable[[Path], None] | None = None) -> Restart:
    """Stop node ``name`` and start it again with its state (so its remembered ports and
    peers); record its new pid and ports in ``testbed.json`` (and the bootstrap address if
    it is node 0 and its DHT port moved). ``before_start(state_dir)`` runs while the node is
    down (benchmarks use it to make a node forget). Loopback testbeds only."""
    data = load_manifest(directory)
    if data.get("lab"):
        raise TestbedError("restart works on loopback testbeds (not in a network lab)")
    index, node = find_node(data, name)
    await trio.to_thread.run_sync(partial(kill_node, node, crash=crash))
    state = Path(node["state"])
    if before_start is not None:
        before_start(state)
    bootstrap = None if index == 0 else data["bootstrap"]
    site = NodeSite(host=node.get("address", HOST))
    started_at = time.time()
    pid = _start(state, bootstrap, bool(data.get("sandbox", True)), site)
    await _wait_ports([state], [pid], timeout)
    after = TestbedNode(name=node["name"], state=state, pid=pid,
                        port=read_int_file(state / "nodemanager.port") or 0,
                        dht_port=read_int_file(state / "dht.port") or 0, site=site).as_dict()
    data = load_manifest(directory)  # re-read: another restart may have written meanwhile
    data["nodes"][index] = {**data["nodes"][index], **after}
    if index == 0:
        data["bootstrap"] = f"{site.host}:{after['dht_port']}"
    write_atomic(directory / MANIFEST, (json.dumps(data, indent=1) + "\n").encode())
    return Restart(before=node, after=after, started_at=started_at)


def stop_all(nodes: Sequence[dict[str, Any]], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM every live node at once, wait for all; SIGKILL stragglers. Returns how many ran."""
    live = [n for n in nodes if find_process(n.get("pid"), n["state"]) is not None]
    for node in live:
        try:
            os.kill(node["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for node in live:
        if not wait_gone(node["pid"], node["state"], max(deadline - time.monotonic(), 0.1)):
            stop_process(node["pid"], node["state"], timeout=1.0)
    return len(live)


async def wait_discoverable(bootstrap: str, key: PublicKey, nodes: int,
                            timeout: float = 60.0) -> float:
    """Look ``key`` up until adverts from ``nodes`` distinct node managers appear; return seconds."""
    host, _, port = bootstrap.rpartition(":")
    start = trio.current_time()
    with trio.move_on_after(timeout):
        while True:
            try:
                result = await lookup_once(key, [(host, int(port))], timeout=10)
                if len({advert.address for advert in result.candidates}) >= nodes:
                    return trio.current_time() - start
            except OverlayError as exc:
                log.debug("lookup failed: %s", exc)
            await trio.sleep(0.5)
    raise TestbedError(f"not all {nodes} nodes were discoverable within {timeout:.0f} s")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """One vessel's run in the demo."""

    address: str
    vessel: str
    status: str
    log: str


async def run_everywhere(data: dict[str, Any], program: Path, args: Sequence[str],
                         timeout: float = 60.0) -> list[DemoResult]:
    """Find the demo identity's vessels, run ``program`` on each at once, collect every log."""
    demo = load_private(Path(data["demo"]["privatekey"]))
    await wait_discoverable(data["bootstrap"], demo.public, len(data["nodes"]), timeout)
    host, _, port = data["bootstrap"].rpartition(":")
    found = await lookup_once(demo.public, [(host, int(port))], timeout=10)
    code = program.read_bytes()
    results: list[DemoResult] = []

    async def one(advert: Advert) -> None:
        address, vessel = advert.address, advert.vessel
        async with open_route_client(Route.from_advert(advert), identity=demo) as nm:
            await nm.add_file(vessel, program.name, code)
            await nm.start_vessel(vessel, program.name, list(args))
            status = "Started"
            with trio.move_on_after(timeout):
                while status == "Started":
                    await trio.sleep(0.2)
                    info = await nm.get_vessels()
                    status = next(v.status for v in info.vessels if v.name == vessel)
            log = (await nm.read_log(vessel)).decode(errors="replace")
        results.append(DemoResult(address=address, vessel=vessel, status=status, log=log))

    async with trio.open_nursery() as nursery:
        for advert in found.candidates:
            nursery.start_soon(one, advert)
    return sorted(results, key=lambda r: (r.address, r.vessel))
