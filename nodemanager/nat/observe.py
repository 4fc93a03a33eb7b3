"""Observed addresses: a node learns the address its peers see for it (like libp2p identify).

A node behind a NAT, or with several interfaces, cannot know from its own sockets which
address the rest of the network reaches it by. So every node manager with a DHT node also
answers on TCP at its DHT node's port number (TCP and UDP ports are separate spaces): on
each connection it writes one line and closes::

    seattle-observed 1 <ip> <port>\\n

where ``<ip> <port>`` is the connection's remote end as this node sees it. A client may then
ask to be dialled back (``dialback``: reachability tests); one that does not is never held
longer than the dial-back service's read timeout. At start a node asks each of
its bootstrap peers (their DHT address is all it knows of them), takes the address most of
them agree on, and advertises ``<observed ip>:<its node manager port>``; with no answer it
falls back to its listen address. ``--advertise-host`` skips the observation.

A NATed node thus advertises its router's public address, as identify-based systems do;
whether anything can reach it there is the NAT's business (the lab shows it cannot, yet).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from nodemanager.errors import BadResponse, ConnectionFailed

log = logging.getLogger(__name__)

MAGIC = b"seattle-observed"
VERSION = 1
MAX_LINE = 80
ASK_TIMEOUT = 2.0
SEND_TIMEOUT = 2.0


def format_observation(host: str, port: int) -> bytes:
    """The one line a node writes to a peer that connected from ``host:port`` (pure)."""
    return b"%s %d %s %d\n" % (MAGIC, VERSION, host.encode("ascii"), port)


def parse_observation(data: bytes) -> str:
    """The IP in an observation line; ``BadResponse`` if it is anything else (pure)."""
    return parse_observed_address(data)[0]


def parse_observed_address(data: bytes) -> tuple[str, int]:
    """The IP and port in an observation line; ``BadResponse`` otherwise (pure)."""
    if len(data) > MAX_LINE or not data.endswith(b"\n"):
        raise BadResponse("observation: not one short line")
    words = data[:-1].split(b" ")
    if len(words) != 4 or words[0] != MAGIC or words[1] != b"%d" % VERSION:
        raise BadResponse(f"observation: unexpected answer {data[:40]!r}")
    try:
        address = ipaddress.ip_address(words[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadResponse(f"observation: bad address {words[2][:40]!r}") from exc
    if not words[3].isdigit() or not 0 < int(words[3]) < 65536:
        raise BadResponse(f"observation: bad port {words[3][:10]!r}")
    return str(address), int(words[3])


def majority(addresses: Sequence[str]) -> str | None:
    """The address most observers agree on (the first seen wins a tie), or None (pure)."""
    if not addresses:
        return None
    counts = Counter(addresses)
    best = max(counts.values())
    return next(a for a in addresses if counts[a] == best)


async def _answer(stream: trio.SocketStream) -> None:
    async with stream:
        try:
            host, port = stream.socket.getpeername()[:2]
            with trio.move_on_after(SEND_TIMEOUT):
                await stream.send_all(format_observation(host, port))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.debug("observation not delivered: %s", exc)


async def serve_observer(host: str, port: int,
                         handler: Callable[[trio.SocketStream], Awaitable[None]] | None = None, *,
                         task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED) -> None:
    """Tell each TCP peer on ``host:port`` its address; ``started(port)``, or None if taken.

    ``handler`` replaces the plain answer (``dialback.DialBackServer.handle``: the
    observation, then an optional dial-back request)."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        log.warning("cannot serve observed addresses on TCP %s:%d: %s", host, port, exc)
        task_status.started(None)
        return
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler or _answer, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


Receive = Callable[[int], Awaitable[bytes]]
"""``receive_some`` of a stream, or ``recv`` of a socket."""


async def read_line(receive: Receive, limit: int = MAX_LINE,
                    timeout: float = float("inf")) -> tuple[bytes, bytes]:
    """``(line, rest)``: the bytes up to and including the first newline, and what arrived
    after it in the same reads. At most ``limit + 1`` bytes are read; if the peer closes,
    the limit passes or ``timeout`` ends first, ``line`` is whatever came (no newline).
    A line protocol that carries more after the first line keeps ``rest``; one that does
    not rejects a non-empty ``rest`` (``read_observation``)."""
    data = b""
    with trio.move_on_after(timeout):
        while len(data) <= limit and b"\n" not in data:
            chunk = await receive(limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
    end = data.find(b"\n")
    return (data, b"") if end < 0 else (data[: end + 1], data[end + 1 :])


async def read_observation(receive: Receive) -> tuple[str, int]:
    """The observer's one line, parsed (``BadResponse`` if it is more, or anything else)."""
    line, rest = await read_line(receive)
    if rest:
        raise BadResponse("observation: bytes after the line")
    return parse_observed_address(line)


@asynccontextmanager
async def connect_line_service(host: str, port: int, *, timeout: float, local: str | None,
                               what: str) -> AsyncIterator[trio.SocketStream]:
    """A connection to the line service (observation, dial-back) at ``host:port`` for one
    exchange within ``timeout``; every failure, the deadline included, is ``ConnectionFailed``
    (named ``what``).

    ``local``: the address we listen on, when it is a specific one; connecting from it makes
    the observed address the one peers can reach us at (on a host with several addresses
    the kernel would otherwise pick its own source address).
    """
    with trio.move_on_after(timeout) as scope:
        try:
            stream = await trio.open_tcp_stream(host, port, local_address=local)
        except OSError as exc:
            raise ConnectionFailed(f"{what} from {host}:{port}: {exc}") from exc
        async with stream:
            try:
                yield stream
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ConnectionFailed(f"{what} from {host}:{port}: {exc}") from exc
    if scope.cancelled_caught:
        raise ConnectionFailed(f"{what} from {host}:{port}: no answer in {timeout:.0f} s")


async def ask_observed(host: str, port: int, timeout: float = ASK_TIMEOUT,
                       local: str | None = None) -> str:
    """Ask one peer which IP it sees us at; ``ConnectionFailed``/``BadResponse`` otherwise
    (``local``: see ``connect_line_service``)."""
    async with connect_line_service(host, port, timeout=timeout, local=local,
                                    what="observation") as stream:
        host_seen, _ = await read_observation(stream.receive_some)
    return host_seen


async def observe_host(peers: Sequence[tuple[str, int]], fallback: str,
                       timeout: float = ASK_TIMEOUT, local: str | None = None) -> str:
    """The IP most of ``peers`` see us at (asked at once), else ``fallback``."""
    seen: list[str] = []

    async def ask(host: str, port: int) -> None:
        try:
            seen.append(await ask_observed(host, port, timeout, local))
        except (ConnectionFailed, BadResponse) as exc:
            log.info("%s", exc)

    async with trio.open_nursery() as nursery:
        for host, port in peers:
            nursery.start_soon(ask, host, port)
    chosen = majority(seen)
    if chosen is None:
        log.info("no peer told us our address; advertising %s", fallback)
        return fallback
    log.info("peers see us at %s (%d of %d answered)", chosen, len(seen), len(peers))
    return chosen


def local_ip(listen_host: str, advertise_host: str | None, peers: Sequence[tuple[str, int]]) -> str:
    """The address of this machine a vessel's ``getmyip()`` reports (Seattle's: the local
    address of the interface that reaches the network).

    The advertised host if it is an address, else the listen address if it is a specific one,
    else the local end the kernel picks for a UDP socket connected to the first bootstrap peer
    (``connect`` on UDP sends nothing), else ``127.0.0.1``.
    """
    for candidate in (advertise_host, listen_host):
        try:
            if candidate and not ipaddress.ip_address(candidate).is_unspecified:
                return candidate
        except ValueError:  # a host name
            continue
    for host, port in peers[:1]:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, port))
                return str(probe.getsockname()[0])
        except OSError as exc:
            log.debug("no route towards %s:%d to learn the local address: %s", host, port, exc)
    return "127.0.0.1"
