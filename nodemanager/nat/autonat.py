"""Reachability decisions and the dial-back wire (pure: no I/O; ``now`` is passed in).

A node learns whether peers can open connections to it by asking a few peers to *dial it
back* at the address they see it at (like libp2p's AutoNAT v2). This module holds the parts
that need no sockets: the request and answer lines of the dial-back service
(docs/protocol.md §13), the confidence counter that turns dial-back outcomes into a
``Reach`` decision, the agreement rule for observed addresses, the choice of whom to ask,
and the server's rate limits. The I/O lives in ``dialback`` (both ends of the wire) and
``prober`` (the node's periodic probing).
"""

from __future__ import annotations

import enum
import ipaddress
import random
import re
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from nodemanager.errors import BadResponse
from nodemanager.nat.reachability import Reach
from overlay.ratelimit import RateLimiter

REQUEST_MAGIC = b"seattle-dialback"
VERSION = 1
MAX_LINE = 80
NONCE_BYTES = 16
WINDOW = 5
"""Outcomes kept per port (AutoNAT v2: the last 5)."""
CONFIDENCE = 2
"""A port is decided once |successes - failures| over the window reaches this."""
MIN_AGREE = 2
"""Observers that must agree before an observed address is believed."""

_NONCE_RE = re.compile(rb"[0-9a-f]{32}")


class Kind(enum.Enum):
    """Which of the node's ports a dial-back tests."""

    TCP = "tcp"
    """The node manager's request port (docs/protocol.md §1)."""
    UDP = "udp"
    """The DHT node's port."""


class Answer(enum.Enum):
    """What a dial-back server says it did (the requester believes only its own nonce)."""

    DIALED = "dialed"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class DialRequest:
    """``seattle-dialback 1 <kind> <port> <nonce hex>``: dial me back at ``port``."""

    kind: Kind
    port: int
    nonce: bytes

    def line(self) -> bytes:
        return b"%s %d %s %d %s\n" % (REQUEST_MAGIC, VERSION, self.kind.value.encode(),
                                      self.port, self.nonce.hex().encode())


def parse_request(data: bytes) -> DialRequest:
    """A dial-back request line; ``ValueError`` with a short reason for anything else."""
    if len(data) > MAX_LINE or not data.endswith(b"\n"):
        raise ValueError("not one short line")
    words = data[:-1].split(b" ")
    if len(words) != 5 or words[0] != REQUEST_MAGIC or words[1] != b"%d" % VERSION:
        raise ValueError("not a dial-back request")
    try:
        kind = Kind(words[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("unknown kind") from None
    if not words[3].isdigit() or len(words[3]) > 5 or not 0 < int(words[3]) < 65536:
        raise ValueError("bad port")
    if not _NONCE_RE.fullmatch(words[4]):
        raise ValueError("bad nonce")
    return DialRequest(kind, int(words[3]), bytes.fromhex(words[4].decode("ascii")))


def answer_line(answer: Answer, why: str = "") -> bytes:
    """The server's one answer line; ``why`` (one word) only with ``refused``."""
    text = f"{REQUEST_MAGIC.decode()} {VERSION} {answer.value}"
    if why:
        text += f" {why}"
    return text.encode("ascii") + b"\n"


def parse_answer(data: bytes) -> Answer:
    """The server's answer; ``BadResponse`` if it is anything else."""
    if len(data) > MAX_LINE or not data.endswith(b"\n"):
        raise BadResponse("dial-back: not one short answer line")
    words = data[:-1].split(b" ")
    if len(words) not in (3, 4) or words[0] != REQUEST_MAGIC or words[1] != b"%d" % VERSION:
        raise BadResponse(f"dial-back: unexpected answer {data[:40]!r}")
    try:
        return Answer(words[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadResponse(f"dial-back: unknown answer {words[2][:20]!r}") from None


# -- the requester's decision -------------------------------------------------------------

@dataclass(slots=True)
class Confidence:
    """The last ``WINDOW`` dial-back outcomes of one port and the decision they support."""

    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    decided: Reach = Reach.UNKNOWN

    def add(self, success: bool) -> Reach:
        """Record one outcome; return the (possibly changed) decision."""
        self.outcomes.append(success)
        ok = sum(self.outcomes)
        margin = ok - (len(self.outcomes) - ok)
        if margin >= CONFIDENCE:
            self.decided = Reach.PUBLIC
        elif -margin >= CONFIDENCE:
            self.decided = Reach.PRIVATE
        return self.decided

    @property
    def tally(self) -> tuple[int, int]:
        """(successes, failures) in the window."""
        ok = sum(self.outcomes)
        return ok, len(self.outcomes) - ok


def agreed_address(observations: Iterable[tuple[str, str]], min_agree: int = MIN_AGREE) -> str | None:
    """The address that at least ``min_agree`` *distinct* observers report and that more
    than half of them report; None otherwise. ``observations``: (observer, address) pairs,
    the latest per observer counts."""
    latest = dict(observations)
    if not latest:
        return None
    counts = Counter(latest.values())
    address, votes = counts.most_common(1)[0]
    if votes >= min_agree and 2 * votes > len(latest):
        return address
    return None


def prefix_of(host: str) -> str:
    """The /24 (IPv6: /48) a host is in; the host itself if it is not an IP literal."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def choose_servers(candidates: Sequence[tuple[str, int]], count: int, *,
                   exclude: Iterable[tuple[str, int]] = (),
                   recent: Sequence[tuple[str, int]] = ()) -> list[tuple[str, int]]:
    """Up to ``count`` peers to ask, one per /24 first, those not asked ``recent``ly first.

    ``candidates`` keep their order otherwise (bootstrap peers, then DHT contacts).
    """
    skip = set(exclude)
    pool = list(dict.fromkeys(c for c in candidates if c not in skip))
    asked = set(recent)
    pool.sort(key=lambda c: c in asked)  # stable: fresh ones first
    chosen: list[tuple[str, int]] = []
    prefixes: set[str] = set()
    for peer in pool:
        if len(chosen) < count and prefix_of(peer[0]) not in prefixes:
            chosen.append(peer)
            prefixes.add(prefix_of(peer[0]))
    for peer in pool:
        if len(chosen) < count and peer not in chosen:
            chosen.append(peer)
    return chosen


def probe_order(contacts: Sequence[tuple[str, int]], bootstrap: Sequence[tuple[str, int]],
                rng: random.Random) -> list[tuple[str, int]]:
    """Whom to ask, best first: DHT contacts in random order, the bootstrap peers last.

    Many nodes that start at once from one bootstrap peer thus spread their dial-backs
    over every server they can find instead of all queueing at that peer (which they ask
    only when too few others are known)."""
    boot = set(bootstrap)
    others = [c for c in dict.fromkeys(contacts) if c not in boot]
    rng.shuffle(others)
    return [*others, *bootstrap]


def plan_round(ranked: Sequence[tuple[str, int]], per_round: int,
               need: int) -> tuple[list[tuple[str, int]], dict[Kind, list[tuple[str, int]]]]:
    """Whom a round asks first (per port), and who stands in for a peer that refuses.

    The first ``per_round`` of ``ranked``; when fewer than ``need`` peers are known at all,
    the first one is asked ``need`` times (a node with one peer decides from that peer,
    in one round rather than ``need``)."""
    first = list(ranked[:per_round])
    if first and len(ranked) < need:
        first = [first[0]] * need
    rest = list(ranked[per_round:])
    return first, {kind: list(rest) for kind in Kind}


# -- the server's limits ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How much dialling a dial-back server does for others (AutoNAT v2's throttles)."""

    per_source: float = 12.0
    """Dial-backs per minute for one source address."""
    total: float = 600.0
    """Dial-backs per minute for everyone together (each is one small connection or two
    small datagrams, to the requester's own address)."""
    burst: float = 120.0
    """Dial-backs for everyone together at once, before ``total`` paces them (a network
    that starts all at once asks its first peers for about four each)."""
    concurrent: int = 8
    """Dial-backs in progress at once."""
    connections: int = 64
    """Connections to the service read at once (more are answered the observation only)."""
    max_sources: int = 4096
    """Source addresses tracked by the per-source limit (memory bound)."""


class DialBudget:
    """Token buckets for ``ServerLimits`` (pure; ``now`` in seconds)."""

    def __init__(self, limits: ServerLimits = ServerLimits()) -> None:
        self.limits = limits
        self._per_source = RateLimiter(limits.per_source / 60.0, limits.per_source,
                                       max_sources=limits.max_sources)
        self._total = RateLimiter(limits.total / 60.0, limits.burst, max_sources=1)
        self.in_flight = 0
        self.refused = 0
        self.dialed = 0

    def take(self, source: str, now: float) -> str | None:
        """Claim one dial-back for ``source``; None if allowed, else the refusal word."""
        why = None
        if self.in_flight >= self.limits.concurrent:
            why = "busy"
        elif not self._per_source.allow(source, now):
            why = "rate"
        elif not self._total.allow("*", now):
            why = "busy"
        if why is None:
            self.in_flight += 1
            self.dialed += 1
        else:
            self.refused += 1
        return why

    def done(self) -> None:
        self.in_flight -= 1


# -- what the node shows and does ---------------------------------------------------------

def explain(tcp: Confidence, udp: Confidence, observed: str | None, asked: int) -> str:
    """The one-line reason shown in status."""
    if asked == 0 and not tcp.outcomes and not udp.outcomes:
        return "no peer to ask yet"
    (t_ok, t_bad), (u_ok, u_bad) = tcp.tally, udp.tally
    text = (f"dial-backs reached us: tcp {t_ok} of {t_ok + t_bad}, udp {u_ok} of {u_ok + u_bad}"
            f" (last {WINDOW}; decided at a margin of {CONFIDENCE})")
    if observed is None:
        text += f"; fewer than {MIN_AGREE} peers agree on our address"
    return text


def dht_client_mode(udp: Reach, can_probe: bool) -> bool:
    """Should the DHT node run in client mode? Yes while its UDP port is private, and while
    it is unknown but can be tested (libp2p's auto mode: a contact only once proven
    reachable). A node with nobody to ask (the first node of a network) serves."""
    if udp is Reach.UNKNOWN:
        return can_probe
    return udp is Reach.PRIVATE
