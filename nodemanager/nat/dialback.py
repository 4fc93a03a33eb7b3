"""Both ends of the dial-back service at the DHT port (docs/protocol.md section 13).

Server: the observation service (``observe``) writes its line, then reads at most one
dial-back request line. It dials back only the connection's *source IP* (never an address
the requester names), at the port the requester names, within ``DialBudget`` limits, and
answers ``dialed``, ``failed`` or ``refused <why>``:

* TCP: it connects to ``<source ip>:<port>`` and sends one unsigned ``DialBack`` request
  carrying the nonce (the node manager's port checks and answers it like any public
  request), reads the answer frame, and closes;
* UDP: it sends the DHT ``dialback`` datagram with the nonce from a fresh socket, twice.

Requester (``request_dial_back``): connects to a peer's DHT port, reads the observation,
sends the request, reads the answer. Whether the nonce really arrived is the prober's
business: it believes nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from nodemanager.nat.autonat import (
    MAX_LINE,
    Answer,
    DialBudget,
    DialRequest,
    Kind,
    answer_line,
    parse_answer,
    parse_request,
)
from nodemanager.nat.observe import (
    SEND_TIMEOUT,
    connect_line_service,
    format_observation,
    read_line,
    read_observation,
)
from nodemanager.proto import messages as m
from nodemanager.proto.wire import HEADER, PUBLIC_FRAME_BYTES, frame, seal_request
from overlay.wire import dialback_datagram

log = logging.getLogger(__name__)

READ_TIMEOUT = 2.0
"""Seconds the server waits for a request line after writing the observation."""
DIAL_TIMEOUT = 2.0
"""Seconds the server gives a TCP dial-back (connect, send, first answer); a lost SYN is
resent after 1 s, so one loss still fits."""
UDP_REPEAT = 0.25
"""Seconds between the two copies of a UDP dial-back datagram."""


@dataclass(slots=True)
class DialBackServer:
    """The observation service's connection handler, with dial-backs (``serve_observer``)."""

    budget: DialBudget
    host: str | None = None
    """The address the service listens on, used as the source of UDP dial-backs."""
    dial_timeout: float = DIAL_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    connections: int = 0
    _freed: trio.Event = field(default_factory=trio.Event)

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                host, port = stream.socket.getpeername()[:2]
                with trio.move_on_after(SEND_TIMEOUT):
                    await stream.send_all(format_observation(host, port))
                if self.connections >= self.budget.limits.connections:
                    return  # too many readers: the observation only
                self.connections += 1
                try:
                    await self._serve_request(stream, host)
                finally:
                    self.connections -= 1
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.debug("observation connection ended: %s", exc)

    async def _serve_request(self, stream: trio.SocketStream, source: str) -> None:
        line, _ = await read_line(stream.receive_some, MAX_LINE, self.read_timeout)
        if not line:
            return  # an observation-only client
        try:
            request = parse_request(line)
        except ValueError as exc:
            await _send_answer(stream, answer_line(Answer.REFUSED, "bad"))
            log.debug("bad dial-back request from %s: %s", source, exc)
            return
        await self._slot(self.read_timeout)
        why = self.budget.take(source, time.monotonic())
        if why is not None:
            await _send_answer(stream, answer_line(Answer.REFUSED, why))
            return
        try:
            if request.kind is Kind.TCP:
                ok = await dial_tcp(source, request.port, request.nonce, self.dial_timeout)
            else:
                ok = await send_udp_once(source, request.port, request.nonce, self.host)
        finally:
            self.budget.done()
            self._freed.set()
            self._freed = trio.Event()
        await _send_answer(stream, answer_line(Answer.DIALED if ok else Answer.FAILED))
        if request.kind is Kind.UDP:  # the second copy, in case the first was lost
            await trio.sleep(UDP_REPEAT)
            await send_udp_once(source, request.port, request.nonce, self.host)

    async def _slot(self, patience: float) -> None:
        """Wait up to ``patience`` seconds for a free dial slot (a burst of newcomers then
        queues briefly instead of being refused); the budget still has the last word."""
        with trio.move_on_after(patience):
            while self.budget.in_flight >= self.budget.limits.concurrent:
                await self._freed.wait()


async def _send_answer(stream: trio.SocketStream, line: bytes) -> None:
    with trio.move_on_after(SEND_TIMEOUT):
        await stream.send_all(line)


async def dial_tcp(host: str, port: int, nonce: bytes, timeout: float) -> bool:
    """Connect to ``host:port``, send an unsigned DialBack with ``nonce``, wait for the answer
    frame; True if the connection was made (the answer's content does not matter)."""
    payload = seal_request(m.DialBack(token=nonce), identity=None, node=None,
                           nonce=os.urandom(16), timestamp=time.time())
    connected = False
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            log.debug("dial-back to %s:%d failed: %s", host, port, exc)
            return False
        connected = True
        async with stream:
            try:
                await stream.send_all(frame(payload))
                await _read_frame(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    return connected


async def _read_frame(stream: trio.SocketStream) -> None:
    """Read (and drop) one response frame, at most a public frame's size."""
    want = HEADER.size
    data = b""
    while len(data) < want:
        chunk = await stream.receive_some(want - len(data))
        if not chunk:
            return
        data += chunk
        if want == HEADER.size and len(data) == want:
            want += min(HEADER.unpack(data)[0], PUBLIC_FRAME_BYTES)


async def send_udp_once(host: str, port: int, nonce: bytes, local: str | None = None) -> bool:
    """Send the DHT ``dialback`` datagram to ``host:port`` once, from a fresh port; True
    unless the send failed locally."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        if local is not None and _same_family(local, family):
            await sock.bind((local, 0))
        try:
            await sock.sendto(dialback_datagram(nonce), (host, port))
        except OSError as exc:
            log.debug("UDP dial-back to %s:%d: %s", host, port, exc)
            return False
    return True


def _same_family(host: str, family: int) -> bool:
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return False
    return (version == 6) == (family == socket.AF_INET6) and not ipaddress.ip_address(host).is_unspecified


@dataclass(frozen=True, slots=True)
class DialBackReply:
    """What one server told us: the address it sees us at and its answer."""

    observed: str
    answer: Answer


async def request_dial_back(server: tuple[str, int], request: DialRequest, *, timeout: float,
                            local: str | None = None,
                            on_observed: Callable[[str], None] | None = None) -> DialBackReply:
    """Ask the dial-back service at ``server`` to dial us back; ``ConnectionFailed`` or
    ``BadResponse`` when it cannot be asked or answers nonsense."""
    async with connect_line_service(*server, timeout=timeout, local=local,
                                    what="dial-back") as stream:
        observed = (await read_observation(stream.receive_some))[0]
        if on_observed is not None:
            on_observed(observed)
        await stream.send_all(request.line())
        line, _ = await read_line(stream.receive_some, MAX_LINE)
    return DialBackReply(observed, parse_answer(line))

