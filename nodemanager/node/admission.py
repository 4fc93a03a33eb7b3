"""Admission control on the node manager's port (pure; callers pass ``now``).

Decides who gets a connection slot and when a request may run, so that no crowd of
unauthenticated peers can lock a vessel's owner and users out (docs/protocol.md §10).

Invariants:

1. A connection is *public* until a request on it, signed by a key that holds a right on
   some vessel of the node, has been carried out (signature, time window and nonce all
   checked); from then on it is *trusted* for the rest of its life.
2. Public connections never number more than ``max_connections - reserved_connections``
   in all, ``per_address`` from one source address or ``per_prefix`` from one network
   prefix (/24 for IPv4, /48 for IPv6 by default). All connections together never number
   more than ``max_connections``.
3. A newcomer (always public at first) that would break a limit of rule 2 evicts a public
   connection instead of being refused: the longest idle one of its own address, else of
   its own prefix, else of the prefix that holds the most public connections. A connection
   in the middle of a request is never evicted. Only when no public connection can go is
   the newcomer refused; trusted connections are never evicted by newcomers.
   Evicting costs the newcomer's prefix one token of its eviction bucket (given back when
   the newcomer becomes trusted); a prefix whose bucket is empty has its newcomers *shed*
   (closed at once) instead, so a crowd that reconnects as fast as it is evicted churns at
   a bounded rate while a newcomer from any other network still gets in.
4. Every request that is not privileged (rule 1's kind) takes one token from three buckets:
   its address's, its prefix's and the node-wide public one. A bucket may go into debt;
   the request then waits until the debt is paid, so waiters are served in arrival order.
   A waiting request that is given up (its connection closed or evicted) gets its tokens
   back, so the debt is bounded by the number of open connections.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from nodemanager.proto.wire import PUBLIC_FRAME_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class PortLimits:
    """Connection and request limits of the node's port (all configurable)."""

    max_connections: int = 1024
    """Connections of any kind at once."""
    reserved_connections: int = 128
    """Slots that only trusted connections (owners and users) may fill."""
    per_address: int = 64
    """Public connections from one source address."""
    per_prefix: int = 256
    """Public connections from one network prefix."""
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    address_rate: float = 50.0
    """Public requests per second from one address (sustained)..."""
    address_burst: float = 100.0
    """...and in a burst."""
    prefix_rate: float = 200.0
    prefix_burst: float = 400.0
    public_rate: float = 1000.0
    """Public requests per second from everyone together."""
    public_burst: float = 1000.0
    public_max_frame: int = PUBLIC_FRAME_BYTES
    """Largest frame a public connection may send (an 8 MiB upload needs a trusted one)."""
    evict_rate: float = 1.0
    """Evictions per second one prefix's newcomers may cause (sustained)..."""
    evict_burst: float = 8.0

    def __post_init__(self) -> None:
        counts = (self.max_connections, self.per_address, self.per_prefix,
                  self.public_max_frame)
        if min(counts) < 1 or not 0 <= self.reserved_connections < self.max_connections:
            raise ValueError("connection limits must be >= 1 and the reserve below the maximum")
        if not (0 <= self.ipv4_prefix <= 32 and 0 <= self.ipv6_prefix <= 128):
            raise ValueError("prefix lengths must be 0..32 (IPv4) and 0..128 (IPv6)")
        rates = (self.address_rate, self.prefix_rate, self.public_rate, self.evict_rate)
        bursts = (self.address_burst, self.prefix_burst, self.public_burst, self.evict_burst)
        if min(rates) <= 0 or min(bursts) < 1:
            raise ValueError("request rates must be > 0 and bursts >= 1")

    @property
    def public_slots(self) -> int:
        return self.max_connections - self.reserved_connections

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


def prefix_of(host: str, limits: PortLimits) -> tuple[str, str]:
    """``(address, prefix)`` in text form; IPv4-mapped IPv6 addresses count as IPv4.

    A host that is not an IP address (a test's memory stream) is its own prefix.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host, host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = limits.ipv4_prefix if address.version == 4 else limits.ipv6_prefix
    network = ipaddress.ip_network((address, bits), strict=False)
    return str(address), str(network)


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` may go into debt."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, now: float, amount: float = 1.0) -> float:
        """Take ``amount`` tokens; return the seconds until the debt (if any) is paid."""
        self.refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.burst


@dataclass(eq=False, slots=True, kw_only=True)
class Conn:
    """One admitted connection as admission control sees it."""

    id: int
    address: str
    prefix: str
    last_active: float
    trusted: bool = False
    busy: bool = False
    evicted: bool = False
    pending: bool = False
    """True while a request of this connection holds tokens it is still waiting on."""
    must_pay: bool = False
    """A request claimed rights (signed by a key with rights) and failed: the next pays."""
    evict_token: bool = False
    """Its admission cost its prefix an eviction token (given back if it becomes trusted)."""


@dataclass(frozen=True, slots=True)
class Opened:
    """The outcome of ``Admission.open``: the connection (None if refused) and evictions."""

    conn: Conn | None
    evicted: tuple[Conn, ...] = ()
    shed: bool = False
    """Refused because its prefix used up its evictions: close without an answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PortStats:
    """Counters for GetNodeStatus (current values and totals since start)."""

    connections: int
    trusted: int
    public_addresses: int
    """Source addresses that hold public connections."""
    public_prefixes: int
    waiting: int
    """Requests waiting for tokens (rule 4)."""
    accepted_total: int
    evicted_total: int
    refused_total: int
    """Newcomers answered Overloaded: every slot was trusted or busy."""
    shed_total: int
    """Newcomers closed at once: their prefix had used up its evictions (rule 3)."""
    delayed_total: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Group:
    """Public connections of one address or prefix, in admission order."""

    __slots__ = ("conns",)

    def __init__(self) -> None:
        self.conns: dict[int, Conn] = {}


def _idlest(conns: Iterable[Conn]) -> Conn | None:
    candidates = [conn for conn in conns if not conn.busy]
    return min(candidates, key=lambda conn: conn.last_active, default=None)


@dataclass(slots=True)
class _Counters:
    public: int = 0
    trusted: int = 0
    waiting: int = 0
    accepted: int = 0
    evicted: int = 0
    refused: int = 0
    shed: int = 0
    delayed: int = 0


class Admission:
    """The connection table and request buckets of one node's port."""

    def __init__(self, limits: PortLimits, now: float = 0.0) -> None:
        self.limits = limits
        self._ids = itertools.count(1)
        self._conns: dict[int, Conn] = {}
        self._by_address: dict[str, _Group] = {}
        self._by_prefix: dict[str, _Group] = {}
        self._prefix_sizes: dict[int, dict[str, None]] = {}
        self._public = TokenBucket(limits.public_rate, limits.public_burst,
                                   limits.public_burst, now)
        self._address_buckets: dict[str, TokenBucket] = {}
        self._prefix_buckets: dict[str, TokenBucket] = {}
        self._evict_buckets: dict[str, TokenBucket] = {}
        self._prefixes: dict[str, tuple[str, str]] = {}
        self._counters = _Counters()

    # ---- connections ----

    def open(self, host: str, now: float) -> Opened:
        """Admit a new connection from ``host``, evicting public ones to make room (rule 3)."""
        address, prefix = self._prefix_of(host)
        rules = (
            (self._by_address, address, self.limits.per_address),
            (self._by_prefix, prefix, self.limits.per_prefix),
        )
        crowded = self._pool_full() or any(
            key in groups and len(groups[key].conns) >= limit for groups, key, limit in rules)
        bucket = self._evict_bucket(prefix, now)
        if crowded and bucket.take(now) > 0:
            bucket.tokens += 1.0
            self._counters.shed += 1
            return Opened(None, shed=True)
        evicted: list[Conn] = []
        for groups, key, limit in rules:
            while key in groups and len(groups[key].conns) >= limit:
                if not self._evict_from(groups[key].conns.values(), evicted):
                    return self._refuse(evicted)
        while self._pool_full():
            if not self._evict_from(self._largest_prefix(), evicted):
                return self._refuse(evicted)
        conn = Conn(id=next(self._ids), address=address, prefix=prefix, last_active=now,
                    evict_token=crowded)
        self._conns[conn.id] = conn
        self._add_public(conn)
        self._counters.accepted += 1
        return Opened(conn, tuple(evicted))

    @property
    def trusted_connections(self) -> int:
        return self._counters.trusted

    def _prefix_of(self, host: str) -> tuple[str, str]:
        """``prefix_of``, remembered (parsing addresses is a large part of admitting)."""
        found = self._prefixes.get(host)
        if found is None:
            if len(self._prefixes) >= 4 * self.limits.max_connections:
                self._prefixes.clear()
            found = self._prefixes[host] = prefix_of(host, self.limits)
        return found

    def close(self, conn: Conn) -> None:
        """Forget a connection that ended (idempotent; evicted ones are already gone)."""
        if self._conns.pop(conn.id, None) is None:
            return
        if conn.trusted:
            self._counters.trusted -= 1
        else:
            self._drop_public(conn)
        if conn.pending:  # the request waiting for tokens is given up: refund them
            for bucket in self._buckets(conn, self._public.stamp):
                bucket.tokens += 1.0
            self.paid(conn)

    def trust(self, conn: Conn) -> None:
        """Rule 1: the connection carried out a request signed by a key with rights."""
        if not conn.trusted and conn.id in self._conns:
            self._drop_public(conn)
            conn.trusted = True
            self._counters.trusted += 1
            if conn.evict_token:  # an owner or user: its network's budget is not spent
                self._evict_bucket(conn.prefix, self._public.stamp).tokens += 1.0

    def begin(self, conn: Conn) -> None:
        """A request is being carried out: the connection cannot be evicted meanwhile."""
        conn.busy = True

    def end(self, conn: Conn, now: float) -> None:
        conn.busy = False
        conn.last_active = now

    def _pool_full(self) -> bool:
        return len(self._conns) >= self.limits.max_connections or (
            self._counters.public >= self.limits.public_slots)

    def _largest_prefix(self) -> Iterable[Conn]:
        """Public connections of the prefix holding the most (fair eviction)."""
        for size in sorted(self._prefix_sizes, reverse=True):
            for key in self._prefix_sizes[size]:
                conns = self._by_prefix[key].conns.values()
                if any(not conn.busy for conn in conns):
                    return conns
        return ()

    def _evict_from(self, candidates: Iterable[Conn], evicted: list[Conn]) -> bool:
        victim = _idlest(candidates)
        if victim is None:
            return False
        self._evict(victim)
        evicted.append(victim)
        return True

    def _refuse(self, evicted: list[Conn]) -> Opened:
        self._counters.refused += 1
        return Opened(None, tuple(evicted))

    def _evict(self, conn: Conn) -> None:
        conn.evicted = True
        self._counters.evicted += 1
        self.close(conn)

    def _add_public(self, conn: Conn) -> None:
        self._counters.public += 1
        self._by_address.setdefault(conn.address, _Group()).conns[conn.id] = conn
        group = self._by_prefix.setdefault(conn.prefix, _Group())
        self._resize(conn.prefix, len(group.conns), len(group.conns) + 1)
        group.conns[conn.id] = conn

    def _drop_public(self, conn: Conn) -> None:
        self._counters.public -= 1
        self._resize(conn.prefix, len(self._by_prefix[conn.prefix].conns),
                     len(self._by_prefix[conn.prefix].conns) - 1)
        for groups, key in ((self._by_address, conn.address), (self._by_prefix, conn.prefix)):
            group = groups[key]
            del group.conns[conn.id]
            if not group.conns:
                del groups[key]

    def _resize(self, prefix: str, old: int, new: int) -> None:
        """Keep ``_prefix_sizes`` (size -> prefixes of that many public connections)."""
        if old:
            keys = self._prefix_sizes[old]
            del keys[prefix]
            if not keys:
                del self._prefix_sizes[old]
        if new:
            self._prefix_sizes.setdefault(new, {})[prefix] = None

    # ---- requests ----

    def charge(self, conn: Conn, now: float) -> float:
        """Rule 4: take a public request's tokens; return the seconds it must wait."""
        buckets = self._buckets(conn, now)
        wait = max(bucket.take(now) for bucket in buckets)
        if wait > 0:
            self._counters.delayed += 1
            self._counters.waiting += 1
            conn.pending = True
        return wait

    def paid(self, conn: Conn) -> None:
        """The wait that ``charge`` asked for is over."""
        if conn.pending:
            conn.pending = False
            self._counters.waiting -= 1

    def _buckets(self, conn: Conn, now: float) -> tuple[TokenBucket, ...]:
        limits = self.limits
        return (
            self._bucket(self._address_buckets, conn.address, limits.address_rate,
                         limits.address_burst, now),
            self._bucket(self._prefix_buckets, conn.prefix, limits.prefix_rate,
                         limits.prefix_burst, now),
            self._public,
        )

    def _evict_bucket(self, prefix: str, now: float) -> TokenBucket:
        limits = self.limits
        return self._bucket(self._evict_buckets, prefix, limits.evict_rate, limits.evict_burst,
                            now)

    def _bucket(self, buckets: dict[str, TokenBucket], key: str, rate: float, burst: float,
                now: float) -> TokenBucket:
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= 4 * self.limits.max_connections:
                self._prune(buckets, now)
            bucket = buckets[key] = TokenBucket(rate, burst, burst, now)
        return bucket

    def _prune(self, buckets: dict[str, TokenBucket], now: float) -> None:
        """Drop full buckets; if that is not enough, those of sources with no connection."""
        for key in [key for key, bucket in buckets.items() if bucket.full(now)]:
            del buckets[key]
        if len(buckets) >= 4 * self.limits.max_connections:
            live = {conn.address for conn in self._conns.values()}
            live |= {conn.prefix for conn in self._conns.values()}
            for key in [key for key in buckets if key not in live]:
                del buckets[key]

    # ---- reporting ----

    def statistics(self) -> PortStats:
        counters = self._counters
        return PortStats(
            connections=len(self._conns), trusted=counters.trusted,
            public_addresses=len(self._by_address), public_prefixes=len(self._by_prefix),
            waiting=counters.waiting, accepted_total=counters.accepted,
            evicted_total=counters.evicted, refused_total=counters.refused,
            shed_total=counters.shed,
            delayed_total=counters.delayed,
        )
