"""Peer addresses: parse, classify by scope, and group by network prefix (pure).

Diversity limits (routing table, lookup shortlists, store quotas) count peers per *group*:

* IPv4: the /24 (``"v4:203.0.113.0/24"``), loopback included, so a loopback testbed whose
  nodes each have their own ``127.x.y.1`` exercises exactly the rules the internet sees;
* IPv6: the /48 (``"v6:2001:db8:1::/48"``); IPv4-mapped IPv6 addresses count as IPv4;
* ``127.0.0.1`` and ``::1`` are exempt (group ``None``): a single-host setup where every node
  shares the one address. No remote peer can send from them, and a non-loopback peer may not
  introduce loopback contacts (``may_introduce``), so the exemption is local-only.

Scope rules for contacts that a peer hands us (``may_introduce``): a peer on a global address
may only introduce global addresses; a private-network peer may introduce private or global
ones; a loopback peer anything routable. Unspecified, multicast and reserved addresses are
never contacts. This keeps a hostile peer from steering us at our own LAN or host.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Literal

Scope = Literal["loopback", "private", "global"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

EXEMPT_HOSTS = frozenset({"127.0.0.1", "::1"})
MAX_HOST_CHARS = 45
_SCOPE_RANK: dict[Scope, int] = {"global": 0, "private": 1, "loopback": 2}


def parse_ip(host: object) -> IPAddress:
    """An IP literal (no names, no zone ids) -> address; raises ValueError otherwise."""
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST_CHARS:
        raise ValueError("host is not a short string")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def scope_of(ip: IPAddress) -> Scope:
    """Where ``ip`` is reachable from; raises ValueError for addresses that are never peers."""
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        raise ValueError(f"{ip} is not a unicast address")
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError("broadcast address")
    if ip.is_loopback:
        return "loopback"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "global"


@functools.lru_cache(maxsize=8192)
def host_scope(host: str) -> Scope:
    """``scope_of(parse_ip(host))`` (cached: peers' addresses repeat)."""
    return scope_of(parse_ip(host))


def may_introduce(introducer: Scope, contact: Scope) -> bool:
    """Whether a peer in scope ``introducer`` may hand us a contact in scope ``contact``."""
    return _SCOPE_RANK[contact] <= _SCOPE_RANK[introducer]


@functools.lru_cache(maxsize=8192)
def group_of(host: str) -> str | None:
    """The diversity group of an IP literal (see the module docstring); None if exempt."""
    ip = parse_ip(host)
    if str(ip) in EXEMPT_HOSTS:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return f"v4:{ipaddress.IPv4Network((int(ip) >> 8 << 8, 24))}"
    return f"v6:{ipaddress.IPv6Network((int(ip) >> 80 << 80, 48))}"


def source_group(host: str) -> str:
    """The group to charge a request from ``host`` to (store quotas): the exempt hosts and
    unparsable sources get a group of their own name, so quotas still apply to them."""
    try:
        group = group_of(host)
    except ValueError:
        return f"other:{host[:MAX_HOST_CHARS]}"
    return group if group is not None else f"host:{host}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DiversityLimits:
    """How many peers of one network group a node keeps in each place.

    After libp2p's routing-table diversity filter (2 per bucket, 3 per table per /16) and
    geth's caps per /24; our group is the /24 (IPv6 /48).
    """

    per_bucket: int = 2
    """Contacts of one group in one routing-table bucket."""
    per_table: int = 3
    """Contacts of one group in the whole routing table."""
    per_path: int = 2
    """Candidates of one group in one lookup path's shortlist."""
