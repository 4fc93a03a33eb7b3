"""Ask a running node manager and its DHT node how they are (``status`` commands)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from installer.donor.procs import read_int_file
from nodemanager import NodeManagerError, open_node_client
from overlay import OverlayError, query_status
from overlay.status import read_status_file

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 5.0
DHT_SETTLE_TIMEOUT = 30.0
"""How long install waits for a new node's DHT node before judging its peers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VesselLine:
    name: str
    status: str
    owner: str
    users: tuple[str, ...]
    advertise: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReport:
    """One node as seen from outside; ``error`` says what could not be asked."""

    node_key: str | None = None
    port: int | None = None
    dht_port: int | None = None
    vessels: tuple[VesselLine, ...] = ()
    dht_peers: int | None = None
    port_limits: Mapping[str, float] = field(default_factory=dict)
    """The node manager's connection limits (GetNodeStatus ``limits``)."""
    port_counters: Mapping[str, int] = field(default_factory=dict)
    """Its connection counters (GetNodeStatus ``connections``)."""
    error: str | None = None
    version: str | None = None
    updates: Mapping[str, Any] | None = None
    """The updater's status (managed installs with updates on), from GetNodeStatus."""
    reachability: Mapping[str, Any] | None = None
    """tcp/udp reachability, observed address and reason (GetNodeStatus; docs/nat.md)."""
    dht_mode: str | None = None
    """``server`` or ``client`` (client: the DHT port is not reachable)."""
    relay: Mapping[str, Any] = field(default_factory=dict)
    relayed: Mapping[str, Any] = field(default_factory=dict)
    pool: Mapping[str, Any] | None = None
    """Pool vessels and their leases (GetNodeStatus ``pool``; docs/pool.md)."""
    donor: Mapping[str, Any] = field(default_factory=dict)
    """Paused or not and why, the CPU mechanism, the policy (GetNodeStatus ``donor``)."""

    @property
    def advertised_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for vessel in self.vessels:
            if vessel.advertise:
                keys += [k for k in (vessel.owner, *vessel.users) if k not in keys]
        return tuple(keys)


def report_json(report: NodeReport) -> dict[str, Any]:
    """A report as JSON-ready data (``status --json``): every field, plus the advertised keys."""
    data = asdict(report)
    data["advertised_keys"] = list(report.advertised_keys)
    return data


async def query_node(state: Path, host: str = "127.0.0.1") -> NodeReport:
    """Ask the node manager whose state is ``state`` for its vessels and DHT peer count."""
    port = read_int_file(state / "nodemanager.port")
    dht_port = read_int_file(state / "dht.port")
    if port is None:
        return NodeReport(error="no nodemanager.port (not started?)")
    try:
        async with open_node_client(host, port, timeout=QUERY_TIMEOUT) as client:
            info = await client.get_vessels(sign=False)
            status = await client.get_node_status()
    except (NodeManagerError, OSError) as exc:
        return NodeReport(port=port, dht_port=dht_port, error=f"node manager: {exc}")
    vessels = tuple(
        VesselLine(name=v.name, status=v.status, owner=v.owner.to_text(),
                   users=tuple(u.to_text() for u in v.users), advertise=v.advertise)
        for v in info.vessels
    )
    peers: int | None = None
    mode: str | None = None
    error = None
    if dht_port is not None:
        try:
            doc = await query_status((host, dht_port), timeout=QUERY_TIMEOUT)
            peers = len(doc.get("peers", []))
            mode = str(doc.get("mode", "server"))
        except (OverlayError, OSError, trio.TooSlowError) as exc:
            error = f"dht: {exc}"
            mode = _mode_from_file(state)
    return NodeReport(node_key=info.node.to_text(), port=port, dht_port=dht_port,
                      vessels=vessels, dht_peers=peers, port_limits=status.limits,
                      port_counters=status.connections, error=error, version=status.version,
                      updates=status.updates, reachability=status.reachability, dht_mode=mode,
                      relay=status.relay, relayed=status.relayed, pool=status.pool,
                      donor=status.donor)


def render_donor(report: NodeReport) -> list[str]:
    """``vessels: running (cgroup-v1 cpu quota + freezer, idle priority)`` or why paused."""
    donor = report.donor
    if not donor:
        return []
    state = (f"PAUSED ({donor.get('paused')}: {donor.get('detail')})" if donor.get("paused")
             else f"running at {100 * float(donor.get('cpu_factor', 1.0)):.0f} % of their CPU share")
    return [f"vessels: {state}; {donor.get('mechanism')}"]


def _mode_from_file(state: Path) -> str | None:
    """The DHT mode from the node's status file (when its status RPC is not ours to ask)."""
    try:
        return str(read_status_file(state).get("mode", "server"))
    except OverlayError:
        return None


def render_reachability(report: NodeReport) -> list[str]:
    """The status lines about reachability and the DHT mode (docs/nat.md)."""
    reach = report.reachability
    if reach is None:
        return []
    where = f" at {reach.get('observed')}" if reach.get("observed") else ""
    pinned = ", pinned" if reach.get("pinned") else ""
    mode = f"; DHT in {report.dht_mode} mode" if report.dht_mode else ""
    return [f"reachability: tcp {reach.get('tcp')}, udp {reach.get('udp')}{where}{pinned}{mode}",
            f"  because: {reach.get('reason')}"]


def render_relays(report: NodeReport) -> list[str]:
    """Status lines about relaying: the relay service, and the relays this node uses."""
    lines = []
    relay = report.relay
    if relay.get("enabled"):
        counters = relay.get("counters", {})
        lines.append(f"relay: port {relay.get('port')}, {relay.get('reservations', 0)} "
                     f"reservations, {relay.get('circuits', 0)} relayed connections "
                     f"({counters.get('circuits_opened', 0)} so far, "
                     f"{counters.get('refused_reservations', 0)} reservations refused)")
    elif relay:
        lines.append("relay: off")
    held = [r.get("relay") for r in report.relayed.get("relays", [])]
    if report.relayed.get("active"):
        lines.append(f"reachable via relays: {', '.join(map(str, held)) or 'none yet'}")
    return lines


def render_updates(report: NodeReport) -> list[str]:
    """Status lines about the software: running version, latest verified, last check."""
    lines = [f"software: {report.version}"] if report.version else []
    updates = report.updates
    if updates is None:
        return lines
    when = updates.get("last_check_at")
    ago = f"{time.time() - float(when):.0f} s ago" if isinstance(when, int | float) else "never"
    lines.append(f"updates: running {updates.get('running')}, latest verified "
                 f"{updates.get('latest_verified') or '-'}, last check {ago}: "
                 f"{updates.get('last_result')}")
    trial = updates.get("trial")
    if isinstance(trial, dict):
        lines.append(f"  on trial: {trial.get('to')} (from {trial.get('from')}, "
                     f"boot {trial.get('boots')})")
    lines += _check_lines(updates)
    lines.append(f"  mirror served {updates.get('served_files', 0)} files, "
                 f"{updates.get('served_bytes', 0)} bytes")
    return lines


def _check_lines(updates: Mapping[str, Any]) -> list[str]:
    """The running check (phase, elapsed, dropped holders) or the last one, and the last good."""
    lines = []
    current, last = updates.get("current_check"), updates.get("last_check")
    check = current if isinstance(current, dict) else last
    if isinstance(check, dict):
        holders = [h for h in check.get("holders", []) if isinstance(h, dict)]
        label = "checking now" if check is current else "last check"
        lines.append(f"  {label}: #{check.get('number')}, {check.get('phase')}, "
                     f"{check.get('elapsed')} s, {len(holders)} holders asked")
        for holder in holders:
            if holder.get("state") in ("slow", "lying", "unreachable"):
                lines.append(f"    dropped {holder.get('holder')}: {holder.get('state')}: "
                             f"{str(holder.get('reason'))[:160]}")
    good = updates.get("last_good_check")
    if isinstance(good, dict) and isinstance(good.get("at"), int | float):
        lines.append(f"  last good check: {time.time() - float(good['at']):.0f} s ago: "
                     f"{good.get('result')}")
    return lines


async def query_node_settled(state: Path, timeout: float = DHT_SETTLE_TIMEOUT) -> NodeReport:
    """``query_node`` once the node's DHT node is up (it writes ``dht.port`` after its first
    bootstrap attempt), or after ``timeout`` seconds, whichever comes first."""
    with trio.move_on_after(timeout):
        while read_int_file(state / "dht.port") is None:
            await trio.sleep(0.1)
    return await query_node(state)


def bootstrap_warning(report: NodeReport, bootstrap: Sequence[str]) -> str | None:
    """A loud, multi-line warning when the node's DHT node has no peer (None when it has).

    A node that no bootstrap peer answered is running, but nobody can find its vessels
    through the DHT until a peer is reachable (it retries on its own)."""
    if report.node_key is None or (report.dht_peers is not None and report.dht_peers > 0):
        return None
    tried = ", ".join(bootstrap) or "(none in the bundle)"
    lines = [
        "WARNING: no DHT bootstrap peer answered" if report.dht_peers == 0
        else f"WARNING: the node's DHT status is unknown ({report.error or 'no DHT port'})",
        f"  bootstrap peers tried: {tried}",
        "  the node manager runs, but researchers cannot find its vessels through the DHT",
        "  until one of these peers is reachable from here (the node keeps trying).",
        "  Check the addresses with the planner, and firewalls for UDP; then run",
        "  'seattle-installer status' again. (Expected only for the first node of a new network.)",
    ]
    bar = "!" * max(len(line) for line in lines)
    return "\n".join([bar, *lines, bar])


async def query_nodes(states: list[Path], limit: int = 16,
                      hosts: Sequence[str] | None = None) -> list[NodeReport]:
    """``query_node`` for many nodes concurrently (one slow node delays no other); node i
    is asked at ``hosts[i]`` (the address it listens on; default 127.0.0.1)."""
    reports: list[NodeReport] = [NodeReport() for _ in states]
    limiter = trio.CapacityLimiter(limit)
    where = list(hosts) if hosts is not None else ["127.0.0.1"] * len(states)
    if len(where) != len(states):
        raise ValueError(f"{len(where)} hosts for {len(states)} nodes")

    async def one(index: int, state: Path) -> None:
        async with limiter:
            with trio.move_on_after(3 * QUERY_TIMEOUT):
                reports[index] = await query_node(state, where[index])
                return
            reports[index] = NodeReport(error=f"no answer from {where[index]} within "
                                              f"{3 * QUERY_TIMEOUT:.0f} s")

    async with trio.open_nursery() as nursery:
        for index, state in enumerate(states):
            nursery.start_soon(one, index, state)
    return reports
