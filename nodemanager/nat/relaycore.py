"""A relay's limits and bookkeeping (pure: every method takes ``now``).

A node behind NAT holds a *reservation* at a relay: a live control connection plus an
expiry. Clients ask the relay to *connect* them to a node key; the relay splices the client
to a fresh connection the node opens back to it (a *circuit*). The table here decides who
may reserve and who may open circuits; the I/O shell (``relay.py``) moves the bytes.

Invariants:
  * at most ``max_reservations`` reservations, ``reservations_per_ip`` per source address and
    ``reservations_per_prefix`` per /24 (IPv4) or /48 (IPv6); a refused reservation never
    disturbs existing ones. A node reserving again (renewal, or a new control connection)
    keeps its slot: the newest control connection wins.
  * a circuit exists only for a node with a live (unexpired) reservation; at most
    ``circuits_per_reservation`` per node and ``max_circuits`` in all.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from seattlecore import PublicKey

MiB = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayLimits:
    """Every limit of the relay service (``--relay-limit NAME=VALUE``)."""

    max_reservations: int = 128
    reservations_per_ip: int = 8
    reservations_per_prefix: int = 16
    reservation_ttl: float = 3600.0
    """Seconds a reservation lives without renewal (the node renews at half of it)."""
    circuits_per_reservation: int = 16
    max_circuits: int = 256
    circuit_bytes: int = 256 * MiB
    """Bytes (both directions) one relayed connection may carry before it is closed."""
    circuit_rate: int = 4 * MiB
    """Bytes per second one relayed connection may carry (each direction)."""
    reservation_bytes: int = 1024 * MiB
    """Bytes all relayed connections of one reservation may carry in all, renewals
    included; then its circuits are closed and new ones refused (``DataLimit``)."""
    circuit_idle: float = 120.0
    """Seconds a relayed connection may carry nothing before it is closed."""
    accept_timeout: float = 10.0
    """Seconds the node has to open its side of a circuit."""
    handshake_timeout: float = 10.0
    """Seconds a new connection has to send its first message."""
    max_handshakes: int = 256
    """Connections that have not yet sent their first message, at once (the oldest of them
    is dropped for a newcomer)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"relay limit {f.name} must be > 0")

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def parse_limit(text: str) -> tuple[str, int | float]:
    """``NAME=VALUE`` for one field of ``RelayLimits``; ValueError saying what is wrong."""
    name, sep, value = text.partition("=")
    default = getattr(RelayLimits(), name, None) if sep else None
    if default is None:
        names = ", ".join(f.name for f in dataclasses.fields(RelayLimits))
        raise ValueError(f"expected NAME=VALUE with NAME one of: {names}")
    try:
        return name, type(default)(value)
    except ValueError:
        raise ValueError(f"{name} needs a number, got {value!r}") from None


class RelayRefused(Exception):
    """A reservation or circuit the limits do not allow; ``code`` goes on the wire."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def prefix_of(address: str) -> str:
    """The network prefix counted for per-prefix limits (/24 IPv4, /48 IPv6)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass(slots=True)
class Reservation:
    """One node's reservation: who, from where, until when, by which control connection."""

    node: PublicKey
    source: str
    expires: float
    control: int
    """Id of the control connection that holds it (the newest wins)."""
    circuits: int = 0
    created: float = 0.0
    carried: int = 0
    """Bytes its relayed connections carried (``reservation_bytes`` caps it)."""


@dataclass(slots=True)
class RelayCounters:
    reservations_made: int = 0
    renewals: int = 0
    refused_reservations: int = 0
    circuits_opened: int = 0
    refused_circuits: int = 0
    circuits_closed_bytes: int = 0
    circuits_closed_budget: int = 0
    circuits_closed_idle: int = 0
    bytes_relayed: int = 0
    bad_frames: int = 0
    evicted_handshakes: int = 0


@dataclass(slots=True)
class RelayTable:
    """Reservations and circuits of one relay (see module invariants)."""

    limits: RelayLimits = field(default_factory=RelayLimits)
    reservations: dict[bytes, Reservation] = field(default_factory=dict)
    circuits: int = 0
    handshakes: int = 0
    counters: RelayCounters = field(default_factory=RelayCounters)

    def expire(self, now: float) -> list[Reservation]:
        """Drop reservations past their expiry; return them (their control is closed)."""
        gone = [r for r in self.reservations.values() if r.expires <= now]
        for r in gone:
            del self.reservations[r.node.raw]
        return gone

    def reserve(self, node: PublicKey, source: str, control: int, now: float) -> Reservation:
        """Make or renew ``node``'s reservation; RelayRefused at the limits."""
        self.expire(now)
        held = self.reservations.get(node.raw)
        expires = now + self.limits.reservation_ttl
        if held is not None:
            held.expires, held.control, held.source = expires, control, source
            self.counters.renewals += 1
            return held
        self._check_room(source)
        made = Reservation(node=node, source=source, expires=expires, control=control,
                           created=now)
        self.reservations[node.raw] = made
        self.counters.reservations_made += 1
        return made

    def _check_room(self, source: str) -> None:
        limits = self.limits
        same_ip = sum(1 for r in self.reservations.values() if r.source == source)
        prefix = prefix_of(source)
        same_prefix = sum(1 for r in self.reservations.values() if prefix_of(r.source) == prefix)
        reason = None
        if len(self.reservations) >= limits.max_reservations:
            reason = f"relay holds its maximum of {limits.max_reservations} reservations"
        elif same_ip >= limits.reservations_per_ip:
            reason = f"{limits.reservations_per_ip} reservations from {source} already"
        elif same_prefix >= limits.reservations_per_prefix:
            reason = f"{limits.reservations_per_prefix} reservations from {prefix} already"
        if reason is not None:
            self.counters.refused_reservations += 1
            raise RelayRefused("ReservationLimit", reason)

    def release(self, node: PublicKey, control: int) -> None:
        """The control connection ``control`` ended: drop the reservation if it still held it."""
        held = self.reservations.get(node.raw)
        if held is not None and held.control == control:
            del self.reservations[node.raw]

    def open_circuit(self, node: PublicKey, now: float) -> Reservation:
        """Count a new circuit to ``node``; RelayRefused without a live reservation or room."""
        self.expire(now)
        held = self.reservations.get(node.raw)
        refusal = None
        if held is None:
            refusal = RelayRefused("NoReservation", f"node {node.short()} holds no reservation here")
        elif held.carried >= self.limits.reservation_bytes:
            refusal = RelayRefused("DataLimit", f"node {node.short()} used its reservation's "
                                   f"{self.limits.reservation_bytes} bytes")
        elif held.circuits >= self.limits.circuits_per_reservation:
            refusal = RelayRefused("CircuitLimit", f"node {node.short()} has its maximum of "
                                   f"{self.limits.circuits_per_reservation} relayed connections")
        elif self.circuits >= self.limits.max_circuits:
            refusal = RelayRefused("CircuitLimit", f"relay carries its maximum of "
                                   f"{self.limits.max_circuits} relayed connections")
        if refusal is not None:
            self.counters.refused_circuits += 1
            raise refusal
        assert held is not None
        held.circuits += 1
        self.circuits += 1
        self.counters.circuits_opened += 1
        return held

    def close_circuit(self, held: Reservation) -> None:
        held.circuits = max(0, held.circuits - 1)
        self.circuits = max(0, self.circuits - 1)

    def status(self, now: float) -> dict[str, object]:
        """The ``relay`` map of GetNodeStatus (docs/protocol.md §14)."""
        by_prefix = Counter(prefix_of(r.source) for r in self.reservations.values())
        return {
            "reservations": len(self.reservations), "circuits": self.circuits,
            "handshakes": self.handshakes, "prefixes": len(by_prefix),
            "limits": self.limits.as_dict(),
            "counters": dataclasses.asdict(self.counters),
            "oldest_reservation": max((now - r.created for r in self.reservations.values()),
                                      default=0.0),
        }
