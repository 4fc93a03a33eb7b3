"""Finding vessels: ``browse`` (DHT, then each node), ``contact``, ``list``, ``update``;
naming their nodes: ``show hostname`` (reverse DNS).

The DHT only says which nodes to ask; each node's signed GetVessels answer decides which of
its vessels the current identity may use. Every usable vessel gets a ``%N`` id.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import trio

from nodemanager import NodeClient, NodeInfo, VesselInfo
from nodemanager.errors import NoSuchVessel
from overlay import Advert
from seash.client import Found, Job, Node, NodeWide, contact_nodes, lookup
from seash.commands import Args
from seash.errors import NoVesselsFound, SeashError
from seash.executor import Executor
from seash.parse import parse_contact, parse_hostport
from seash.session import VesselRef
from seattlecore import PublicKey


def _adopt(ex: Executor, node: Node, found: Found, only: str | None = None) -> list[int]:
    return [ex.session.add_vessel(VesselRef(node[0], node[1], vessel.name, found.node_key), vessel)
            for vessel in found.vessels if only is None or vessel.name == only]


def _render_found(value: Found) -> str:
    names = ", ".join(v.name for v in value.vessels) or "none"
    return f"{len(value.vessels)} of {value.total} vessels usable: {names}"


async def _contact(ex: Executor, command: str, nodes: list[tuple[Node, PublicKey | None]],
                   only: str | None = None) -> list[int]:
    s = ex.session
    key = s.signing_key()
    start = trio.current_time()
    ex.reporter.start(command, len(nodes))
    results = await contact_nodes(
        ex.pool, nodes, identity=key, limiter=trio.CapacityLimiter(s.settings.concurrency),
        timeout=s.settings.timeout,
        on_result=lambda r: ex.reporter.result(r, _render_found(r.value) if r.ok else None))
    ids: list[int] = []
    for (node, _), result in zip(nodes, results, strict=True):
        if result.ok:
            ids += _adopt(ex, node, result.value, only)
    ex.conclude(command, results, start, groups=False)
    s.record_outcome(command, ids, [])
    if not ids:
        raise NoVesselsFound(f"no vessels usable by {s.current} found")
    ex.reporter.text(f"{len(ids)} vessels ready (group {command}good); 'list' shows them")
    return ids


def lease_note(deadline: float | None, now: float) -> str:
    """``lease 3h59m`` for a pool vessel leased until ``deadline`` (docs/pool.md), else ""."""
    if deadline is None:
        return ""
    if deadline <= now:
        return "lease expired"
    hours, rest = divmod(int(deadline - now), 3600)
    return f"lease {hours}h{rest // 60:02d}m" if hours else f"lease {rest // 60}m{rest % 60:02d}s"


def observers_of(peers: Sequence[str]) -> list[Node]:
    """DHT peers that answered a lookup, as hole-punch observers (bad entries skipped)."""
    out = []
    for text in peers:
        try:
            out.append(parse_hostport(text))
        except SeashError:
            continue
    return out


async def browse(ex: Executor, args: Args) -> None:
    s = ex.session
    identity = s.identity()
    s.signing_key()
    found = await lookup(identity.public, s.settings.bootstrap, s.settings.timeout)
    ex.pool.observers = [*s.settings.bootstrap, *observers_of(found.peers_answered)]
    nodes: dict[Node, PublicKey | None] = {}
    for advert in found.candidates:
        nodes.setdefault(ex.pool.learn(advert), advert.node_key)
    if not nodes:
        raise NoVesselsFound(f"the DHT knows no vessels for {identity.name} "
                             f"({identity.public.short()}); {len(found.peers_answered)} peers asked")
    ex.reporter.text(f"DHT: {len(found.candidates)} adverts on {len(nodes)} nodes "
                     f"({found.elapsed:.2f} s)")
    for line in paused_notes(found.candidates):
        ex.reporter.text(line)
    await _contact(ex, "browse", list(nodes.items()))


def paused_notes(adverts: Sequence[Advert]) -> list[str]:
    """One line per node whose adverts say its donor paused its vessels (pure): seen before
    any node is asked; the node's own answer (``list``) is what counts."""
    by_node: dict[tuple[str, str], list[str]] = {}
    for advert in adverts:
        if advert.paused is not None and not advert.withdrawn:
            by_node.setdefault((advert.address, advert.paused), []).append(advert.vessel)
    return [f"{address}: {', '.join(sorted(set(names)))} paused by the donor ({reason})"
            for (address, reason), names in sorted(by_node.items())]


async def contact(ex: Executor, args: Args) -> None:
    host, port, vessel = parse_contact(args.need("address"))
    await _contact(ex, "contact", [((host, port), None)], only=vessel)


def node_info_op() -> NodeWide:
    """A fan-out op: one GetVessels per node, each job's vessel picked from it."""
    async def fetch(client: NodeClient) -> NodeInfo:
        return await client.get_vessels()
    return NodeWide(fetch, vessel_of)


def vessel_of(info: NodeInfo, job: Job) -> VesselInfo:
    """The job's vessel in a node's GetVessels answer (``NoSuchVessel`` if it has none)."""
    for vessel in info.vessels:
        if vessel.name == job.vessel:
            return vessel
    raise NoSuchVessel(job.vessel)


async def list_vessels(ex: Executor, args: Args, *, quiet: bool = False,
                       command: str = "list") -> None:
    s = ex.session
    me = s.identity().public

    base = node_info_op()
    notes: dict[int, str] = {}
    """Each answer's lease note, by the answer object (render gets only the value)."""
    now = time.time()

    def pick(info: NodeInfo, job: Job) -> VesselInfo:
        vessel = vessel_of(info, job)
        notes[id(vessel)] = lease_note(s.leases.get(job.address), now)
        return vessel

    op = NodeWide(base.fetch, pick)

    def render(v: VesselInfo) -> str:
        mark = "*" if v.owner == me else " "
        reason = f" ({v.exit_reason})" if v.exit_reason and v.status != "Started" else ""
        if v.paused and v.status == "Started":
            reason = f" (paused by its donor: {v.paused})"
        program = " ".join([v.program, *v.args]) if v.program else ""
        return "  ".join(part for part in (f"{mark} {v.name:<6} {v.status}{reason}", program,
                                            v.owner_info, notes.get(id(v), "")) if part)

    results = await ex.fan(command, op, render, quiet=quiet, paths=True)
    for result in results:
        if result.ok:
            s.info[int(result.target[1:])] = result.value


async def update(ex: Executor, args: Args) -> None:
    await list_vessels(ex, args, quiet=True, command="update")


async def show_targets(ex: Executor, args: Args) -> None:
    s = ex.session
    rows = []
    for n, ref in sorted(s.vessels.items()):
        info = s.info.get(n)
        rows.append([f"%{n}", ref.address, info.status if info else "?",
                     ex.pool.path_of(ref.node)])
    ex.reporter.table("targets", ["id", "vessel", "status", "path"], rows)


# ---- show hostname: reverse DNS of the node addresses ----

ReverseResolver = Callable[[str], Awaitable[str | None]]
"""``await resolve(address)`` -> the name the address has, or None (no name)."""
HOSTNAME_TIMEOUT = 3.0
"""Seconds one reverse lookup may take (a dead resolver must not hang the shell)."""
HOSTNAME_PARALLEL = 16


async def system_reverse(address: str) -> str | None:
    """The system resolver's name for ``address`` (``getnameinfo``, NI_NAMEREQD), or None."""
    try:
        name, _ = await trio.socket.getnameinfo((address, 0), socket.NI_NAMEREQD)
    except OSError:  # socket.gaierror: no name (or no resolver)
        return None
    return name


async def reverse_names(addresses: Sequence[str], resolve: ReverseResolver, *,
                        timeout: float = HOSTNAME_TIMEOUT,
                        parallel: int = HOSTNAME_PARALLEL) -> dict[str, str]:
    """What to show for each address: its name, or the address said so.

    Lookups run in parallel (at most ``parallel`` at once), each within ``timeout``; an
    address that is a name already is shown as it is.
    """
    shown: dict[str, str] = {}
    limiter = trio.CapacityLimiter(max(1, parallel))

    async def one(address: str) -> None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            shown[address] = f"{address} (a name already)"
            return
        async with limiter:
            with trio.move_on_after(timeout):
                name = await resolve(address)
                shown[address] = name if name else f"{address} (no name)"
                return
        shown[address] = f"{address} (no name: no answer within {timeout:g} s)"

    async with trio.open_nursery() as nursery:
        for address in dict.fromkeys(addresses):
            nursery.start_soon(one, address)
    return shown


async def show_hostname(ex: Executor, args: Args, *,
                        resolve: ReverseResolver = system_reverse) -> None:
    """``show hostname``: each target vessel's node address and its reverse-DNS name."""
    s = ex.session
    ids = s.resolve()
    names = await reverse_names([s.vessels[n].host for n in ids], resolve,
                                timeout=min(HOSTNAME_TIMEOUT, s.settings.timeout))
    ex.reporter.table("hostname", ["id", "node", "hostname"],
                      [[f"%{n}", f"{s.vessels[n].host}:{s.vessels[n].port}",
                        names[s.vessels[n].host]] for n in ids])
