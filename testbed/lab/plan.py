"""The network lab as a plan: namespaces, links, addresses, routes and NAT rules (pure).

A lab is a small internet on one machine. Every name below starts with ``sl-<id>-`` (the
lab id), so a lab's leftovers can always be found and removed::

    sl-<id>-net        the "internet": one bridge (br0), no address of its own
    sl-<id>-n003       node 3's host; public: eth0 on the bridge with a public address
    sl-<id>-n003gw     node 3's home router (NATed nodes only): wan0 on the bridge,
                       lan0 to the host; nftables masquerade + a home router's firewall
    sl-<id>-res        the researcher's host (behind its own router with --researcher-nat)

Invariants the plan keeps (and tests check):

- every link joins two lab namespaces: nothing is ever created in the root namespace;
- a lab host has routes to the lab ranges only (no default route out of a home: its
  default goes to its router, whose own routes end at the public range);
- the root namespace gets one blackhole route per lab range while the lab is up, so a
  command started outside the lab by mistake fails at once (``labnet`` adds them);
- every home uses the same private range, as real homes do, so the private address of a
  NATed host says nothing about where it is.

Addresses: the public range is by default 198.18.0.0/16 (half the benchmarking range,
never routed on the internet), where every public host gets a /24 of its own, as donors on
the internet sit in different networks (so per-prefix limits in the DHT see what they would
see there): host h is ``198.18.h.1``, the researcher h = 1, node i h = 10 + i. If that is in
use, TEST-NET-2 or TEST-NET-3 (a /24 each) holds every host (host h is ``.h``). Home range
(default 198.19.N.0/24): .1 the router's lan0, .2 the host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from installer.errors import TestbedError

NatKind = Literal["cone", "symmetric"]
NatChoice = Literal["cone", "symmetric", "mixed"]
Net = ipaddress.IPv4Network

PREFIX = "sl-"
LAB_ID = re.compile(r"^[0-9a-f]{6}$")
RESEARCHER = "researcher"
FIRST_NODE = 10
"""Node i's public address (or its router's) is public host number FIRST_NODE + i."""


def public_candidates() -> Iterator[Net]:
    """Ranges tried in turn for the lab's internet: 198.18.0.0/16, TEST-NET-2, TEST-NET-3."""
    yield Net("198.18.0.0/16")
    yield Net("198.51.100.0/24")
    yield Net("203.0.113.0/24")


def spread(net: Net) -> bool:
    """Whether ``net`` has room for a /24 per host (a /16 or larger)."""
    return net.prefixlen <= 16


def host_address(net: Net, host: int) -> str:
    """Public host number ``host``: alone in its own /24 when the range allows, else packed."""
    return str(net[host * 256 + 1] if spread(net) else net[host])


def capacity(net: Net) -> int:
    """How many nodes fit in a public range."""
    slots = net.num_addresses // 256 if spread(net) else net.num_addresses - 1
    return slots - FIRST_NODE


def home_candidates() -> Iterator[Net]:
    """Ranges tried in turn for the homes behind NAT routers: 198.19.0-255.0/24."""
    for n in range(256):
        yield Net(f"198.19.{n}.0/24")


@dataclass(frozen=True, slots=True, kw_only=True)
class Router:
    """A home router: wan0 on the internet, lan0 to its one host."""

    namespace: str
    kind: NatKind
    wan: str
    lan: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A lab host: one namespace, one address, maybe behind a router."""

    name: str
    namespace: str
    address: str
    """The host's own address (a home address for a NATed host)."""
    router: Router | None = None

    @property
    def public_address(self) -> str:
        """The address the internet sees: the host's own, or its router's WAN address."""
        return self.router.wan if self.router else self.address

    @property
    def nat(self) -> str:
        return self.router.kind if self.router else "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A veth pair: ``a_if`` in namespace ``a``, ``b_if`` in ``b``."""

    a: str
    a_if: str
    b: str
    b_if: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    namespace: str
    ifname: str
    address: str
    prefixlen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """``dst`` via ``gateway`` inside ``namespace`` (``dst`` None: the default route)."""

    namespace: str
    dst: str | None
    gateway: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LabPlan:
    """Everything ``labnet.apply_plan`` creates, and nothing else."""

    lab_id: str
    public_net: Net
    home_net: Net
    nodes: tuple[Host, ...]
    researcher: Host

    @property
    def internet(self) -> str:
        return namespace(self.lab_id, "net")

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (*self.nodes, self.researcher)

    @property
    def routers(self) -> tuple[Router, ...]:
        return tuple(h.router for h in self.hosts if h.router is not None)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace, the internet first."""
        return (self.internet, *(r.namespace for r in self.routers),
                *(h.namespace for h in self.hosts))

    @property
    def ranges(self) -> tuple[Net, ...]:
        """What the root namespace blackholes while the lab is up."""
        return (self.public_net, self.home_net)

    def links(self) -> list[Link]:
        out = []
        for index, host in enumerate(self.hosts):
            port = f"p{index}"  # the bridge side, in the internet namespace
            if host.router is None:
                out.append(Link(a=host.namespace, a_if="eth0", b=self.internet, b_if=port))
            else:
                out.append(Link(a=host.router.namespace, a_if="wan0", b=self.internet, b_if=port))
                out.append(Link(a=host.namespace, a_if="eth0", b=host.router.namespace, b_if="lan0"))
        return out

    def addresses(self) -> list[Address]:
        pub, home = self.public_net.prefixlen, self.home_net.prefixlen
        out = []
        for host in self.hosts:
            if host.router is None:
                out.append(Address(namespace=host.namespace, ifname="eth0", address=host.address,
                                   prefixlen=pub))
                continue
            router = host.router
            out += [Address(namespace=router.namespace, ifname="wan0", address=router.wan, prefixlen=pub),
                    Address(namespace=router.namespace, ifname="lan0", address=router.lan, prefixlen=home),
                    Address(namespace=host.namespace, ifname="eth0", address=host.address, prefixlen=home)]
        return out

    def routes(self) -> list[Route]:
        """A NATed host's default route goes to its router; nothing else needs one."""
        return [Route(namespace=h.namespace, dst=None, gateway=h.router.lan)
                for h in self.hosts if h.router is not None]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if name in (host.name, host.namespace):
                return host
        known = ", ".join(h.name for h in self.hosts[:5])
        raise TestbedError(f"no lab host {name!r} (hosts: {known}, ..., {RESEARCHER})")


def namespace(lab_id: str, role: str) -> str:
    return f"{PREFIX}{lab_id}-{role}"


def lab_of(ns_name: str) -> str | None:
    """The lab id in a namespace name made by a lab, else None."""
    match = re.match(rf"^{PREFIX}([0-9a-f]{{6}})-", ns_name)
    return match.group(1) if match else None


def nat_kinds(nodes: int, fraction: float, choice: NatChoice) -> list[NatKind | None]:
    """Which nodes sit behind which NAT: ``round(fraction * nodes)`` of them, spread evenly.

    Node 0 (the DHT bootstrap peer) is always public, so at most ``nodes - 1`` are NATed.
    ``mixed`` alternates cone and symmetric.
    """
    if not 0.0 <= fraction <= 1.0:
        raise TestbedError(f"--nat is a fraction from 0 to 1, got {fraction}")
    count = min(round(fraction * nodes), nodes - 1)
    kinds: list[NatKind | None] = [None] * nodes
    for rank in range(count):
        index = 1 + (rank * (nodes - 1)) // count  # evenly over nodes 1..N-1
        kinds[index] = choice if choice != "mixed" else ("cone", "symmetric")[rank % 2]
    return kinds


def plan_lab(lab_id: str, nodes: int, public_net: Net, home_net: Net, *,
             nat: float = 0.0, nat_kind: NatChoice = "cone",
             researcher_nat: bool = False) -> LabPlan:
    """The lab for ``nodes`` node hosts plus the researcher's host."""
    if not LAB_ID.match(lab_id):
        raise TestbedError(f"bad lab id {lab_id!r}")
    room = capacity(public_net)
    if nodes < 1 or nodes > room:
        raise TestbedError(f"a lab on {public_net} holds 1 to {room} nodes, not {nodes}")
    if home_net.num_addresses < 4:
        raise TestbedError(f"home range {home_net} is too small")
    kinds = nat_kinds(nodes, nat, nat_kind)
    hosts = tuple(_host(lab_id, f"n{i:03d}", host_address(public_net, FIRST_NODE + i), home_net, kind)
                  for i, kind in enumerate(kinds))
    researcher = _host(lab_id, RESEARCHER, host_address(public_net, 1), home_net,
                       "cone" if researcher_nat else None)
    return LabPlan(lab_id=lab_id, public_net=public_net, home_net=home_net, nodes=hosts,
                   researcher=researcher)


def _host(lab_id: str, name: str, public: str, home: Net, kind: NatKind | None) -> Host:
    role = "res" if name == RESEARCHER else name
    ns = namespace(lab_id, role)
    if kind is None:
        return Host(name=name, namespace=ns, address=public)
    router = Router(namespace=namespace(lab_id, f"{role}gw"), kind=kind, wan=public,
                    lan=str(home[1]))
    return Host(name=name, namespace=ns, address=str(home[2]), router=router)


def overlaps(wanted: Iterable[Net], used: Iterable[Net]) -> list[tuple[Net, Net]]:
    """Pairs (wanted range, range in use) that overlap (pure; 0.0.0.0/0 never counts)."""
    used = [u for u in used if u.prefixlen > 0]
    return [(w, u) for w in wanted for u in used if w.overlaps(u)]


def first_free(candidates: Iterable[Net], used: Iterable[Net]) -> Net:
    used = list(used)
    for net in candidates:
        if not overlaps([net], used):
            return net
    raise TestbedError("every candidate lab range is in use on this machine; pass --lab-net")


def parse_net(text: str) -> Net:
    try:
        net = Net(text.strip(), strict=True)
    except ValueError as exc:
        raise TestbedError(f"bad lab range {text!r}: {exc}") from exc
    if net.prefixlen > 29:
        raise TestbedError(f"lab range {net} is too small (at most /29)")
    return net


NAT_RULES = """\
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade{random}
    }}
}}
table inet filter {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" drop
    }}
}}
"""


def nat_ruleset(kind: NatKind) -> str:
    """A home router's nftables ruleset (``nft -f``).

    Both kinds masquerade what leaves wan0 and drop unsolicited inbound traffic silently
    (forward: only replies and lan0->wan0 pass; input: only replies on wan0), so inbound
    connections to the host time out, as behind a home router. ``cone``: plain masquerade,
    which keeps the source port while it is free (endpoint-independent mapping); a drop-all
    firewall is what makes simultaneous-open races behave. ``symmetric``: ``masquerade
    random``, a fresh random port per destination.
    """
    return NAT_RULES.format(random=" random" if kind == "symmetric" else "")
