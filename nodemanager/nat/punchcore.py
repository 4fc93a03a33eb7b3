"""Hole punching: the handshake messages, address rules and limits (pure; docs/protocol.md §14).

Over a connection that already joins the two sides (a relayed one), the side that opened
it (the *initiator*, a researcher's client) and the node (the *responder*) try to open a
direct TCP connection by a synchronised simultaneous open, as libp2p's DCUtR does:

1. each side binds a fresh socket to a local port P and learns the address its NAT maps P
   to by connecting from P to two observers (``observe.py``); two different external ports
   mean a symmetric NAT, which punching cannot cross, so that side offers no address;
2. the initiator sends ``connect`` (its candidate addresses, a nonce), the responder
   answers ``connect`` with its own; the initiator measures the round trip (RTT);
3. the initiator sends ``sync``, waits RTT/2 and connects from P to the responder's
   candidate, while the responder connects from its P on receiving ``sync``: both SYNs
   cross, and each NAT lets the other's SYN in as the reply to its own;
4. on the direct stream both write ``MAGIC || nonce`` and check the other's; then both say
   ``result`` over the relayed connection. Both ok: the session moves to the direct
   stream. Otherwise the initiator retries (at most ``MAX_ATTEMPTS``) or sends ``stop``,
   after which the relayed connection carries the ordinary protocol.

Nothing here is trusted more than the relay: the direct stream carries the same signed
requests. The rules that matter are which addresses a side agrees to dial
(``dial_target``: only the IP the connection is known to come from, never a low or
forbidden port) and how often (``PunchLimiter``), so that a hostile peer cannot use a node
to send connection attempts to third parties.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nodemanager.errors import BadResponse
from nodemanager.proto.wire import map_unpack_errors, pack, unpack

MAGIC = b"SPNC"
"""First bytes of a punch preamble; as a frame length (1.4 GB) never a valid request frame."""
VERSION = 1
NONCE_BYTES = 16
MAX_MESSAGE = 512
"""Largest message body (bytes after the 2-byte length)."""
MAX_ADDRS = 4
MAX_ATTEMPTS = 3
MIN_PORT = 1024
"""Ports below this are never dialled (services, not punch sockets)."""
REFUSED_RETRIES = 10
"""Connects per attempt answered by a reset before the attempt gives up (bounds the SYNs)."""
MAX_WAIT = 0.5
"""Longest RTT/2 the initiator waits after ``sync`` (a slow relay makes RTT meaningless)."""
LENGTH = struct.Struct(">H")

Addr = tuple[str, int]
Kind = Literal["connect", "sync", "result", "stop"]
Role = Literal["simultaneous", "listen", "connect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One handshake message; the fields a kind does not use keep their defaults."""

    kind: Kind
    addrs: tuple[Addr, ...] = ()
    nonce: bytes = b""
    why: str = ""
    public: bool = False
    """connect: the sender's offered address is its own (no NAT): it can accept there."""
    ready: bool = False
    """connect (responder): the responder takes part in this attempt."""
    ok: bool = False


def encode(message: Message) -> bytes:
    """``u16be(len(body)) || body``, body a msgpack map (pure)."""
    body: dict[str, Any] = {"t": message.kind}
    if message.kind == "connect":
        body.update(v=VERSION, addrs=[[h, p] for h, p in message.addrs], why=message.why,
                    public=message.public, ready=message.ready)
        if message.nonce:
            body["nonce"] = message.nonce
    elif message.kind == "result":
        body["ok"] = message.ok
    data = pack(body)
    if len(data) > MAX_MESSAGE:
        raise ValueError("punch message too long")
    return LENGTH.pack(len(data)) + data


def decode(data: bytes) -> Message:
    """A message body (without its length) -> ``Message``; ``BadResponse`` if malformed."""
    if len(data) > MAX_MESSAGE:
        raise BadResponse("punch: message too long")
    with map_unpack_errors(BadResponse, "punch message"):
        body = unpack(data)
    if not isinstance(body, dict) or body.get("t") not in ("connect", "sync", "result", "stop"):
        raise BadResponse("punch: not a handshake message")
    kind: Kind = body["t"]
    if kind == "result":
        if not isinstance(body.get("ok"), bool):
            raise BadResponse("punch: result without a boolean ok")
        return Message(kind=kind, ok=body["ok"])
    if kind != "connect":
        return Message(kind=kind)
    if body.get("v") != VERSION:
        raise BadResponse(f"punch: unsupported version {str(body.get('v'))[:20]}")
    why, nonce = body.get("why", ""), body.get("nonce", b"")
    if not isinstance(why, str) or len(why) > 200 or not why.isprintable():
        raise BadResponse("punch: bad reason text")
    if not isinstance(nonce, bytes) or len(nonce) not in (0, NONCE_BYTES):
        raise BadResponse("punch: bad nonce")
    public, ready = body.get("public", False), body.get("ready", False)
    if not isinstance(public, bool) or not isinstance(ready, bool):
        raise BadResponse("punch: public and ready must be booleans")
    return Message(kind=kind, addrs=parse_addrs(body.get("addrs")), nonce=nonce, why=why,
                   public=public, ready=ready)


def parse_addrs(raw: object) -> tuple[Addr, ...]:
    """A list of ``[ip, port]`` pairs, checked (pure)."""
    if not isinstance(raw, list) or len(raw) > MAX_ADDRS:
        raise BadResponse(f"punch: addrs must be a list of at most {MAX_ADDRS}")
    out = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], int) or isinstance(item[1], bool)
                or not 0 < item[1] < 65536):
            raise BadResponse("punch: an address is not [ip, port]")
        try:
            host = str(ipaddress.IPv4Address(item[0]))
        except ValueError as exc:
            raise BadResponse(f"punch: bad address {item[0][:40]!r}") from exc
        out.append((host, item[1]))
    return tuple(out)


def dial_target(addrs: Sequence[Addr], expect_ip: str | None,
                forbidden: Iterable[range] = ()) -> tuple[Addr | None, str]:
    """The one address of ``addrs`` this side may dial, or None and why (pure).

    Only an address at ``expect_ip`` (the IP the relayed connection is known to come from:
    the relay reports the client's source, a client knows the node's advertised address),
    only unicast, never a port below ``MIN_PORT`` or in ``forbidden``.
    """
    if not addrs:
        return None, "the peer offered no address"
    reasons = []
    for host, port in addrs:
        ip = ipaddress.IPv4Address(host)
        if expect_ip is not None and host != expect_ip:
            reasons.append(f"{host} is not the peer's address {expect_ip}")
        elif ip.is_multicast or ip.is_unspecified or (ip.is_loopback and expect_ip is None):
            reasons.append(f"{host} is not a unicast address")
        elif port < MIN_PORT or any(port in r for r in forbidden):
            reasons.append(f"port {port} may not be dialled")
        else:
            return (host, port), ""
    return None, "; ".join(reasons)


@dataclass(frozen=True, slots=True)
class Mapping:
    """What observers saw of our punch socket: an address to offer, or why not."""

    addr: Addr | None
    why: str
    public: bool = False
    """Observers saw our own local address and port: no NAT, we can accept there."""


def classify(local_port: int, seen: Sequence[Addr], local: Sequence[Addr] = ()) -> Mapping:
    """Decide from the observations of one local port whether punching can work (pure).

    ``local``: our own end of each observation connection, in the same order. Two observers
    that agree: that address (a cone NAT, or no NAT: public when it is our own address).
    Different ports: a symmetric NAT (each destination gets its own mapping, so the peer's
    SYN would hit a port that is not ours). One observer: its answer, unconfirmed.
    """
    if not seen:
        return Mapping(None, "no observer answered, so our external address is unknown")
    ips, ports = {ip for ip, _ in seen}, {port for _, port in seen}
    if len(ips) > 1:
        return Mapping(None, f"observers disagree on our address ({', '.join(sorted(ips))})")
    if len(ports) > 1:
        listed = ", ".join(str(p) for p in sorted(ports))
        return Mapping(None, f"symmetric NAT: local port {local_port} seen as ports {listed} "
                             "by different observers")
    public = len(local) == len(seen) and all(a == b for a, b in zip(seen, local, strict=True))
    return Mapping(seen[0], "", public)


@dataclass(frozen=True, slots=True)
class Offer:
    """One side's part in an attempt: the address it can be reached at, if any."""

    addr: Addr | None
    public: bool = False


def choose_role(initiator: Offer, responder: Offer, *, as_initiator: bool) -> Role | None:
    """What this side does in an attempt; both sides compute it from the same two offers.

    A public side (its address is its own) listens and the other connects to it, which
    works whatever the other's NAT does (connection reversal). Otherwise both connect at
    once (simultaneous open), which needs an address from each. None: no direct path.
    """
    if responder.public and responder.addr:
        return "connect" if as_initiator else "listen"
    if initiator.public and initiator.addr:
        return "listen" if as_initiator else "connect"
    if initiator.addr and responder.addr:
        return "simultaneous"
    return None


def sync_delay(rtt: float) -> float:
    """How long the initiator waits after sending ``sync`` before it dials (pure)."""
    return min(max(rtt, 0.0) / 2, MAX_WAIT)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


@dataclass(slots=True, kw_only=True)
class PunchLimiter:
    """Bounds on the punches a node makes for peers (pure; callers pass ``now``).

    At most ``concurrent`` punches at once, and per peer IP a token bucket of ``burst``
    attempts refilled at ``per_minute``; every attempt costs a token. With at most
    ``REFUSED_RETRIES`` connects per attempt, one IP can draw at most a few hundred SYNs a
    minute from a node, all to that IP (a researcher opening a session per seash command
    stays far below the bucket).
    """

    concurrent: int = 8
    per_minute: float = 30.0
    burst: float = 10.0
    max_peers: int = 4096
    active: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def acquire(self, peer: str, now: float) -> str | None:
        """Take a slot for one punch (one attempt) with ``peer``; None, or why not."""
        if self.active >= self.concurrent:
            return f"{self.active} punches already running"
        bucket = self._refill(peer, now)
        if bucket.tokens < 1.0:
            return f"peer {peer} is over its punch rate ({self.per_minute:g}/min)"
        bucket.tokens -= 1.0
        self.active += 1
        return None

    def charge(self, peer: str, now: float) -> bool:
        """One more attempt within a held slot; False when the peer's tokens are gone."""
        bucket = self._refill(peer, now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)

    def _refill(self, peer: str, now: float) -> _Bucket:
        bucket = self._buckets.get(peer)
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                self._forget_full(now)
            bucket = self._buckets[peer] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.per_minute / 60)
        bucket.stamp = now
        return bucket

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing worth remembering)."""
        refill = 60 * self.burst / self.per_minute
        for peer in [p for p, b in self._buckets.items() if now - b.stamp >= refill]:
            del self._buckets[peer]
        if len(self._buckets) >= self.max_peers:
            self._buckets.pop(next(iter(self._buckets)))
