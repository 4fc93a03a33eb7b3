"""``seattle-testbed up --wait``: wait until the testbed is *usable*, not merely started.

A testbed is ready when, seen from the researcher's host (the machine itself on loopback,
the researcher's namespace in a lab):

* every node's reachability is settled: a node meant to be public is a DHT server (a crawl
  from the researcher's host reaches it; where the testbed packs more public nodes into one
  /24 than a routing table keeps, its own word that its UDP port is public), a node behind
  NAT has decided its UDP port is private (so it stays out of honest routing tables,
  docs/nat.md);
* every vessel is usable: a lookup of the demo identity finds the node's adverts for all of
  its vessels, and a signed GetVessels over the advert's route (direct, or through the
  relays it names) lists them;

``judge`` decides from one round of observations (pure); ``wait_ready`` repeats rounds
until ``judge`` finds nothing missing or the time is up, and then names every node that
never got there, with the reason.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from installer.errors import TestbedError
from nodemanager import NodeManagerError
from nodemanager.nat.dial import Route, open_route_client
from nodemanager.proto.pool import listing_key
from overlay import Advert, OverlayError, lookup_once, open_client
from overlay.netgroup import DiversityLimits, group_of
from seattlecore import KeyPair, PublicKey, load_private
from testbed.lab import net as labnet

log = logging.getLogger(__name__)

WAIT_TIMEOUT = 120.0
ROUND_PAUSE = 0.25
CALL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSeen:
    """What one round saw of one node (by its node key) from the researcher's host."""

    adverts: int = 0
    """Adverts of the demo identity's vessels found in the DHT."""
    usable: int = 0
    """Of those vessels, how many a GetVessels over the advert's route listed."""
    udp: str = "unknown"
    """The node's own decision about its DHT port (GetNodeStatus ``reachability``)."""
    crawled: bool = False
    """The crawl from the researcher's host reached the node's DHT port."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """A node of the testbed as ``testbed.json`` describes it."""

    name: str
    key: str
    public: bool
    vessels: int
    crawlable: bool = True
    """A crawl can be expected to reach it: its /24 holds no more of the testbed's public
    nodes than a routing table keeps of one /24 (``DiversityLimits.per_table``). A lab on a
    fallback /24 packs every host into one; there a public node must say it serves."""


@dataclass(slots=True)
class Progress:
    """Nodes found ready so far (a node once ready is not asked again) and when."""

    ready: dict[str, float] = field(default_factory=dict)
    last: dict[str, NodeSeen] = field(default_factory=dict)


def missing(node: Expected, seen: NodeSeen | None) -> str | None:
    """Why ``node`` is not ready (None: it is). Pure."""
    if seen is None:
        return "no advert found in the DHT"
    why = []
    if seen.adverts < node.vessels:
        why.append(f"{seen.adverts} of {node.vessels} adverts found")
    if seen.usable < node.vessels:
        why.append(f"{seen.usable} of {node.vessels} vessels usable"
                   + (f" ({seen.error})" if seen.error else ""))
    if node.public and node.crawlable and not seen.crawled:
        why.append(f"not reached by a crawl (udp {seen.udp})")
    if node.public and not node.crawlable and seen.udp != "public":
        why.append(f"udp {seen.udp}, not yet a DHT server")
    if not node.public and seen.udp != "private":
        why.append(f"udp {seen.udp}, not yet decided private")
    return "; ".join(why) or None


def judge(nodes: Sequence[Expected], seen: Mapping[str, NodeSeen]) -> dict[str, str]:
    """Each node that is not ready, by name, with the reason. Pure."""
    out = {}
    for node in nodes:
        why = missing(node, seen.get(node.key))
        if why is not None:
            out[node.name] = why
    return out


def expected_nodes(data: Mapping[str, Any]) -> list[Expected]:
    """The testbed's nodes: name, node key (from each state directory), public or NATed."""
    out = []
    public = [n for n in data["nodes"] if n.get("nat", "none") == "none"]
    crowd = Counter(group_of(n["address"]) for n in public)
    for node in data["nodes"]:
        try:
            key = PublicKey.from_text((Path(node["state"]) / "node.publickey").read_text()).to_text()
        except (OSError, ValueError) as exc:
            raise TestbedError(f"{node['name']}: cannot read its node key: {exc}") from exc
        out.append(Expected(name=node["name"], key=key, public=node in public,
                            vessels=int(data.get("vessels_per_node", 1)),
                            crawlable=crowd[group_of(node["address"])] <= DiversityLimits().per_table))
    return out


def _bootstrap(data: Mapping[str, Any]) -> list[tuple[str, int]]:
    host, _, port = str(data["bootstrap"]).rpartition(":")
    return [(host, int(port))]


async def _ask_node(adverts: Sequence[Advert], demo: KeyPair) -> NodeSeen:
    """GetNodeStatus and GetVessels over the route of ``adverts`` (one node's)."""
    first = adverts[0]
    try:
        with trio.fail_after(2 * CALL_TIMEOUT):
            async with open_route_client(Route.from_advert(first), identity=demo,
                                         timeout=CALL_TIMEOUT) as client:
                status = await client.get_node_status()
                info = await client.get_vessels()
    except (NodeManagerError, OSError, trio.TooSlowError) as exc:
        return NodeSeen(adverts=len(adverts), error=str(exc) or type(exc).__name__)
    names = {v.name for v in info.vessels}
    reach = status.reachability or {}
    return NodeSeen(adverts=len(adverts), usable=sum(a.vessel in names for a in adverts),
                    udp=str(reach.get("udp", "unknown")))


async def _crawl(bootstrap: Sequence[tuple[str, int]], limit: int) -> set[str]:
    """``host:port`` of the DHT nodes a crawl from here reaches."""
    try:
        with trio.fail_after(10):
            async with open_client(bootstrap) as node:
                live, _ = await node.crawl(max_nodes=limit)
    except (OverlayError, OSError, trio.TooSlowError) as exc:
        log.debug("crawl failed: %s", exc)
        return set()
    return set(live)


def _dht_addresses(data: Mapping[str, Any], nodes: Sequence[Expected]) -> dict[str, set[str]]:
    """Node key -> the DHT addresses a crawl may list it at (its address, public address)."""
    out: dict[str, set[str]] = {}
    for node, expected in zip(data["nodes"], nodes, strict=True):
        hosts = {node.get("address"), node.get("public_address")} - {None}
        out[expected.key] = {f"{h}:{node['dht_port']}" for h in hosts}
    return out


def lookup_key(data: Mapping[str, Any], demo: KeyPair) -> PublicKey:
    """The key the testbed's vessels are advertised under: the demo identity's, or in a pool
    testbed (``up --pool``) the pool's listing key, where its free vessels are (docs/pool.md)."""
    pool = data.get("pool")
    if isinstance(pool, dict):
        return listing_key(PublicKey.from_text(pool["key"]))
    return demo.public


async def observe(data: Mapping[str, Any], nodes: Sequence[Expected], demo: KeyPair,
                  progress: Progress) -> dict[str, NodeSeen]:
    """One round from here: lookup, each not-yet-ready node over its route, and a crawl."""
    bootstrap = _bootstrap(data)
    try:
        found = await lookup_once(lookup_key(data, demo), bootstrap, timeout=10)
        adverts: Iterable[Advert] = found.candidates
    except OverlayError as exc:
        log.debug("lookup failed: %s", exc)
        adverts = []
    by_node: dict[str, list[Advert]] = {}
    for advert in adverts:
        by_node.setdefault(advert.node_key.to_text(), []).append(advert)
    seen = dict(progress.last)
    live: set[str] = set()
    want = {n.key for n in nodes if n.name not in progress.ready}

    async def one(key: str) -> None:
        seen[key] = await _ask_node(by_node[key], demo)

    async def crawl() -> None:
        live.update(await _crawl(bootstrap, 4 * len(nodes) + 16))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crawl)
        for key in want & set(by_node):
            nursery.start_soon(one, key)
    where = _dht_addresses(data, nodes)
    for key in want & set(seen):
        old = seen[key]
        seen[key] = NodeSeen(adverts=old.adverts, usable=old.usable, udp=old.udp,
                             error=old.error, crawled=bool(where.get(key, set()) & live))
    return seen


async def wait_ready(data: Mapping[str, Any], timeout: float = WAIT_TIMEOUT,
                     since: float | None = None) -> float:
    """Rounds of ``observe`` until every node is ready; the seconds it took (from ``since``,
    a ``time.time()``, default now). ``TestbedError`` naming the nodes that never were."""
    nodes = expected_nodes(data)
    demo = load_private(Path(data["demo"]["privatekey"]))
    start = time.time() if since is None else since
    progress = Progress()
    left = judge(nodes, {})
    with trio.move_on_after(timeout):
        while True:
            progress.last = await observe(data, nodes, demo, progress)
            left = judge(nodes, progress.last)
            for node in nodes:
                if node.name not in left:
                    progress.ready.setdefault(node.name, time.time() - start)
            if not left:
                return time.time() - start
            name, why = next(iter(left.items()))
            log.info("%.1f s: %d of %d nodes not ready yet (%s: %s)", time.time() - start,
                     len(left), len(nodes), name, why)
            await trio.sleep(ROUND_PAUSE)
    raise TestbedError(f"{len(left)} of {len(nodes)} nodes not usable within {timeout:.0f} s: "
                       + "; ".join(f"{name} ({why})" for name, why in left.items()))


def wait_usable(data: Mapping[str, Any], timeout: float = WAIT_TIMEOUT) -> float:
    """``wait_ready`` from the researcher's host (inside its namespace in a lab); seconds
    after the last node manager started."""
    since = data.get("last_started")
    since = float(since) if isinstance(since, int | float) else None
    lab = data.get("lab")
    if not isinstance(lab, dict):
        return trio.run(wait_ready, data, timeout, since)
    with labnet.inside(lab["researcher"]["namespace"]):
        return trio.run(wait_ready, data, timeout, since)
