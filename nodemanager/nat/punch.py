"""Hole punching over a relayed connection: the trio shell of ``punchcore`` (docs/nat.md).

``initiate`` (the side that opened the relayed connection) and ``respond`` (the node) run
the handshake of ``punchcore`` on any trio ``Stream`` joining them. Each binds a fresh
socket to a local port (``SO_REUSEADDR``/``SO_REUSEPORT``, so the observation connections
and the punch can all use that port), asks two observers (the one-line service at a peer's
DHT port, ``observe.py``) what that port looks like from outside, and then opens a TCP
connection from that port at the same moment as the peer does (a simultaneous open). The
result is an ``Outcome``: a direct ``SocketStream`` to serve or use exactly like an
accepted or dialled connection, or None and the reason, in which case the relayed
connection is still good and carries the ordinary protocol.

``serve_relayed`` is the node's entry point for a relayed connection: a punch preamble
starts with ``punchcore.MAGIC``, anything else is handed on untouched.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import trio

from nodemanager.errors import BadResponse, ConnectionFailed
from nodemanager.nat import punchcore as pc
from nodemanager.nat.observe import read_observation
from nodemanager.nat.punchcore import Addr, Message

log = logging.getLogger(__name__)

REFUSED_PAUSE = 0.02
MAX_OBSERVERS = 4
"""Observers asked at once; the first two answers decide."""


class PunchBroken(ConnectionFailed):
    """The handshake broke off mid-way: the relayed connection is unusable, close it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PunchConfig:
    """Where to observe ourselves from, and the handshake's time bounds."""

    observers: Sequence[Addr] = ()
    """Public peers' observation services (host, DHT port); two detect a symmetric NAT."""
    local_host: str = "0.0.0.0"
    observe_timeout: float = 1.0
    attempt_timeout: float = 1.5
    """How long one simultaneous open may take (SYN retransmits come after 1 s)."""
    message_timeout: float = 5.0
    """How long the peer may take to answer a handshake message over the relay."""
    forbidden: tuple[range, ...] = ()
    """Ports never dialled besides those below ``punchcore.MIN_PORT``."""


@dataclass(slots=True, kw_only=True)
class Outcome:
    """How a punch ended: ``direct`` is the new connection (the caller owns it), or None."""

    direct: trio.SocketStream | None
    reason: str = ""
    attempts: int = 0
    rtt: float | None = None
    elapsed: float = 0.0
    mapping: Addr | None = None
    """Our own external address for the punch socket, when observers agreed on one."""
    role: pc.Role | None = None
    """What this side did in the last attempt (listen: the peer connected to us)."""

    @property
    def path(self) -> str:
        return "punched" if self.direct is not None else "relayed"



# ---- messages over the relayed stream ----

async def read_exact(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    """Exactly ``size`` bytes (never more: what follows belongs to the next protocol)."""
    data = b""
    while len(data) < size:
        try:
            chunk = await stream.receive_some(size - len(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PunchBroken(f"punch: connection lost ({exc})") from exc
        if not chunk:
            raise PunchBroken("punch: connection closed during the handshake")
        data += chunk
    return data


async def receive(stream: trio.abc.ReceiveStream, timeout: float,
                  *kinds: pc.Kind) -> Message:
    """The next handshake message, which must be of one of ``kinds``."""
    with trio.move_on_after(timeout):
        (length,) = pc.LENGTH.unpack(await read_exact(stream, pc.LENGTH.size))
        if length > pc.MAX_MESSAGE:
            raise PunchBroken(f"punch: message of {length} bytes")
        try:
            message = pc.decode(await read_exact(stream, length))
        except BadResponse as exc:
            raise PunchBroken(str(exc)) from exc
        if message.kind not in kinds:
            raise PunchBroken(f"punch: got {message.kind}, expected {' or '.join(kinds)}")
        return message
    raise PunchBroken(f"punch: no {' or '.join(kinds)} within {timeout:g} s")


async def send(stream: trio.abc.SendStream, message: Message) -> None:
    try:
        await stream.send_all(pc.encode(message))
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise PunchBroken(f"punch: connection lost ({exc})") from exc


# ---- the punch socket ----

async def punch_socket(host: str, port: int) -> trio.socket.SocketType:
    """A TCP socket bound to ``host:port`` that shares the port with its siblings."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_from(host: str, port: int, target: Addr,
                       timeout: float) -> trio.SocketStream | None:
    """Connect from ``host:port`` to ``target`` within ``timeout``; None if it fails.

    A refusal (the peer's SYN is not out yet, so its kernel answered ours with a reset) is
    retried every ``REFUSED_PAUSE``, at most ``punchcore.REFUSED_RETRIES`` times.
    """
    with trio.move_on_after(timeout):
        for _ in range(pc.REFUSED_RETRIES):
            try:
                sock = await punch_socket(host, port)
            except OSError as exc:
                log.info("punch: cannot bind port %d again: %s", port, exc)
                return None
            try:
                await sock.connect(target)
                return trio.SocketStream(sock)
            except (ConnectionRefusedError, ConnectionResetError):
                sock.close()
                await trio.sleep(REFUSED_PAUSE)
            except OSError as exc:
                log.debug("punch connect to %s:%d: %s", *target, exc)
                sock.close()
                return None
            except BaseException:
                sock.close()
                raise
    return None


async def open_listener(host: str, port: int) -> trio.socket.SocketType | None:
    """A socket listening on our punch port (for a public side), or None if it cannot."""
    try:
        sock = await punch_socket(host, port)
    except OSError as exc:
        log.info("punch: cannot listen on port %d: %s", port, exc)
        return None
    sock.listen(4)
    return sock


async def accept_from(listener: trio.socket.SocketType, expect_ip: str | None,
                      timeout: float) -> trio.SocketStream | None:
    """The first connection from ``expect_ip`` within ``timeout`` (others are closed)."""
    with listener, trio.move_on_after(timeout):
        while True:
            sock, address = await listener.accept()
            if expect_ip is None or address[0] == expect_ip:
                return trio.SocketStream(sock)
            log.info("punch: closed a connection from %s (expected %s)", address[0], expect_ip)
            sock.close()
    return None


async def observe_from(sock: trio.socket.SocketType, observer: Addr,
                       timeout: float) -> tuple[Addr, Addr]:
    """(our address as ``observer`` sees ``sock``, our own end) for a bound ``sock``."""
    with trio.move_on_after(timeout):
        try:
            await sock.connect(observer)
            local: Addr = sock.getsockname()[:2]
            return await read_observation(sock.recv), local
        except OSError as exc:
            raise ConnectionFailed(f"observer {observer[0]}:{observer[1]}: {exc}") from exc
        finally:
            sock.close()
    raise ConnectionFailed(f"observer {observer[0]}:{observer[1]}: no answer")


async def observe_mapping(config: PunchConfig) -> tuple[int, pc.Mapping]:
    """Bind a fresh local port and ask the observers (at once) how it looks outside.

    Done as soon as two have answered: an observer that is itself behind a NAT (or gone)
    costs nothing unless fewer than two others answer within ``observe_timeout``.
    """
    first = await punch_socket(config.local_host, 0)
    port = first.getsockname()[1]
    observers = list(config.observers[:MAX_OBSERVERS])
    socks = [first] + [await punch_socket(config.local_host, port) for _ in observers[1:]]
    answers: list[tuple[Addr, Addr]] = []

    async def ask(sock: trio.socket.SocketType, observer: Addr, scope: trio.CancelScope) -> None:
        try:
            answers.append(await observe_from(sock, observer, config.observe_timeout))
        except (ConnectionFailed, BadResponse) as exc:
            log.info("punch: %s", exc)
        if len(answers) >= 2:
            scope.cancel()

    if not observers:
        first.close()
        return port, pc.classify(port, [])
    async with trio.open_nursery() as nursery:
        for sock, observer in zip(socks, observers, strict=True):
            nursery.start_soon(ask, sock, observer, nursery.cancel_scope)
    for sock in socks:
        sock.close()
    return port, pc.classify(port, [seen for seen, _ in answers], [local for _, local in answers])


async def confirm(direct: trio.SocketStream, nonce: bytes, timeout: float) -> bool:
    """Both ends write ``MAGIC || nonce`` and check the other's: the right peer, and alive."""
    expected = pc.MAGIC + nonce
    with trio.move_on_after(timeout):
        try:
            await direct.send_all(expected)
            return await read_exact(direct, len(expected)) == expected
        except (PunchBroken, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
    return False


@dataclass(slots=True, kw_only=True)
class Attempt:
    """One try at a direct connection, as both sides agreed on it."""

    role: pc.Role
    port: int
    target: Addr | None
    """Where to connect (connect, simultaneous) or whom to accept (listen: its IP)."""
    nonce: bytes
    delay: float = 0.0
    listener: trio.socket.SocketType | None = None

    def close(self) -> None:
        """Give up the attempt before it ran (its listening socket, if any, is closed)."""
        if self.listener is not None:
            self.listener.close()


async def try_direct(config: PunchConfig, attempt: Attempt,
                     expect_ip: str | None) -> trio.SocketStream | None:
    """Carry out ``attempt`` (after its delay) and confirm it; the stream or None."""
    await trio.sleep(attempt.delay)
    if attempt.role == "listen":
        if attempt.listener is None:
            return None
        direct = await accept_from(attempt.listener, expect_ip, config.attempt_timeout)
    elif attempt.target is not None:
        direct = await connect_from(config.local_host, attempt.port, attempt.target,
                                    config.attempt_timeout)
    else:
        return None
    if direct is None:
        return None
    if await confirm(direct, attempt.nonce, config.attempt_timeout):
        return direct
    await direct.aclose()
    return None


async def settle(relayed: trio.abc.Stream, direct: trio.SocketStream | None,
                 timeout: float) -> trio.SocketStream | None:
    """Exchange ``result`` over the relay: the direct stream if both ends got it, else None."""
    await send(relayed, Message(kind="result", ok=direct is not None))
    theirs = await receive(relayed, timeout, "result")
    if direct is not None and theirs.ok:
        return direct
    if direct is not None:
        await direct.aclose()
    return None


def offer_of(mapping: pc.Mapping) -> pc.Offer:
    return pc.Offer(mapping.addr, mapping.public and mapping.addr is not None)


def connect_message(mapping: pc.Mapping, nonce: bytes = b"", ready: bool = False,
                    why: str | None = None) -> Message:
    return Message(kind="connect", addrs=(mapping.addr,) if mapping.addr else (), nonce=nonce,
                   public=offer_of(mapping).public, ready=ready,
                   why=mapping.why if why is None else why)


# ---- the two roles ----

async def _run_attempt(relayed: trio.abc.Stream, config: PunchConfig, attempt: Attempt,
                       expect_ip: str | None) -> trio.SocketStream | None:
    """The initiator's part once the role is agreed: listen if ours, ``sync``, act, settle."""
    if attempt.role == "listen":
        attempt.listener = await open_listener(config.local_host, attempt.port)
    try:
        await send(relayed, Message(kind="sync"))
    except BaseException:
        attempt.close()
        raise
    direct = await try_direct(config, attempt, expect_ip)
    return await settle(relayed, direct, config.message_timeout)


async def initiate(relayed: trio.abc.Stream, config: PunchConfig,
                   expect_ip: str | None) -> Outcome:
    """Try to replace ``relayed`` by a direct connection to the peer at ``expect_ip``.

    Raises ``PunchBroken`` if the peer breaks the handshake (then ``relayed`` is unusable);
    otherwise the outcome's ``direct`` is the new connection, or None and ``relayed`` is
    ready for the ordinary protocol.
    """
    start = trio.current_time()
    try:
        await relayed.send_all(pc.MAGIC)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise PunchBroken(f"punch: connection lost ({exc})") from exc
    port, mapping = await observe_mapping(config)
    outcome = Outcome(direct=None, mapping=mapping.addr)
    nonce = os.urandom(pc.NONCE_BYTES)
    while outcome.attempts < pc.MAX_ATTEMPTS and outcome.direct is None:
        outcome.attempts += 1
        sent = trio.current_time()
        await send(relayed, connect_message(mapping, nonce))
        reply = await receive(relayed, config.message_timeout, "connect")
        outcome.rtt = trio.current_time() - sent
        target, why = pc.dial_target(reply.addrs, expect_ip, config.forbidden)
        theirs = pc.Offer(target, reply.public and target is not None)
        role = pc.choose_role(offer_of(mapping), theirs, as_initiator=True) if reply.ready else None
        if role is None:
            outcome.reason = (f"we cannot punch: {mapping.why}" if mapping.addr is None
                              else f"peer cannot punch: {reply.why or why}")
            break
        outcome.role = role
        attempt = Attempt(role=role, port=port, target=target, nonce=nonce,
                          delay=pc.sync_delay(outcome.rtt) if role == "simultaneous" else 0.0)
        outcome.direct = await _run_attempt(relayed, config, attempt, expect_ip)
        outcome.reason = "" if outcome.direct else f"no direct connection after {outcome.attempts} attempt(s)"
    if outcome.direct is None:
        await send(relayed, Message(kind="stop"))
    outcome.elapsed = trio.current_time() - start
    return outcome


@dataclass(slots=True, kw_only=True)
class Responder:
    """The node's side: one per node manager, shared by every relayed connection."""

    config: PunchConfig
    limiter: pc.PunchLimiter = field(default_factory=pc.PunchLimiter)
    punched: int = 0
    failed: int = 0
    refused: int = 0

    def set_observers(self, observers: tuple[Addr, ...]) -> None:
        """The observers our punch sockets ask from now on."""
        self.config = replace(self.config, observers=observers)

    async def respond(self, relayed: trio.abc.Stream, peer_ip: str | None) -> Outcome:
        """Answer a punch preamble (``MAGIC`` already read) from the peer at ``peer_ip``.

        The observation of our own punch socket starts at once, while the initiator makes
        its own, so that our ``connect`` answer is immediate and its RTT measure honest.
        """
        start = trio.current_time()
        refusal = self.limiter.acquire(peer_ip or "unknown", start)
        self.refused += refusal is not None
        observed = _Observation()
        broken: PunchBroken | None = None
        try:
            async with trio.open_nursery() as nursery:
                if refusal is None:
                    nursery.start_soon(observed.run, self.config)
                try:
                    outcome = await self._answer(relayed, peer_ip, refusal, observed)
                except PunchBroken as exc:
                    broken = exc
                nursery.cancel_scope.cancel()
        finally:
            if refusal is None:
                self.limiter.release()
        if broken is not None:
            raise broken
        self.punched += outcome.direct is not None
        self.failed += outcome.direct is None and refusal is None
        outcome.elapsed = trio.current_time() - start
        return outcome

    async def _answer(self, relayed: trio.abc.Stream, peer_ip: str | None,
                      refusal: str | None, observed: _Observation) -> Outcome:
        outcome = Outcome(direct=None, reason=refusal or "")
        while True:
            message = await receive(relayed, self.config.message_timeout, "connect", "stop")
            if message.kind == "stop":
                return outcome
            outcome.attempts += 1
            if outcome.attempts > pc.MAX_ATTEMPTS:
                raise PunchBroken(f"punch: more than {pc.MAX_ATTEMPTS} attempts")
            attempt, why = await self._plan(message, peer_ip, refusal, observed, outcome)
            if attempt is None:
                await send(relayed, Message(kind="connect", why=why))
                outcome.reason = why
                continue
            try:
                await send(relayed, connect_message(observed.mapping, ready=True))
                await receive(relayed, self.config.message_timeout, "sync")
            except BaseException:
                attempt.close()
                raise
            outcome.role = attempt.role
            direct = await try_direct(self.config, attempt, peer_ip)
            outcome.direct = await settle(relayed, direct, self.config.message_timeout)
            outcome.reason = "" if outcome.direct else "no direct connection"
            if outcome.direct is not None:
                return outcome

    async def _plan(self, message: Message, peer_ip: str | None, refusal: str | None,
                    observed: _Observation, outcome: Outcome) -> tuple[Attempt | None, str]:
        """This side's part in the attempt ``message`` proposes, or None and why not."""
        if refusal is None and outcome.attempts > 1 and not self.limiter.charge(
                peer_ip or "unknown", trio.current_time()):
            refusal = "peer is over its punch rate"
        if refusal is not None:
            return None, refusal
        if not message.nonce:
            return None, "no nonce offered"
        target, why = pc.dial_target(message.addrs, peer_ip, self.config.forbidden)
        await observed.done.wait()
        outcome.mapping = observed.mapping.addr
        theirs = pc.Offer(target, message.public and target is not None)
        role = pc.choose_role(theirs, offer_of(observed.mapping), as_initiator=False)
        if role is None:
            return None, observed.mapping.why or why
        listener = await open_listener(self.config.local_host, observed.port) if role == "listen" else None
        return Attempt(role=role, port=observed.port, target=target, nonce=message.nonce,
                       listener=listener), ""


@dataclass(slots=True)
class _Observation:
    """Our punch port and its mapping, found in the background."""

    done: trio.Event = field(default_factory=trio.Event)
    port: int = 0
    mapping: pc.Mapping = field(default_factory=lambda: pc.Mapping(None, "not observed"))

    async def run(self, config: PunchConfig) -> None:
        try:
            self.port, self.mapping = await observe_mapping(config)
        finally:
            self.done.set()


# ---- the node's entry point for relayed connections ----

class Prefixed(trio.abc.Stream):
    """A stream with bytes already read from it put back in front."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner, self.prefix = inner, prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.prefix:
            size = len(self.prefix) if max_bytes is None else max_bytes
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


Handler = Callable[[trio.abc.Stream, bool], Awaitable[None]]
"""Serves one session: ``(stream, punched)``; punched: a direct stream, its peer is real."""


async def serve_relayed(relayed: trio.abc.Stream, handler: Handler, responder: Responder,
                        peer_ip: str | None, first_timeout: float = 30.0) -> str:
    """Serve one relayed connection: punch first if asked, then ``handler`` on the result.

    Returns the path the session took: ``punched`` or ``relayed``.
    """
    head = b""
    with trio.move_on_after(first_timeout):
        while len(head) < len(pc.MAGIC):
            chunk = await relayed.receive_some(len(pc.MAGIC) - len(head))
            if not chunk:
                break
            head += chunk
    if head != pc.MAGIC:
        await handler(Prefixed(relayed, head), False)
        return "relayed"
    try:
        outcome = await responder.respond(relayed, peer_ip)
    except PunchBroken as exc:
        log.info("punch with %s broke off: %s", peer_ip, exc)
        await relayed.aclose()
        return "relayed"
    if outcome.direct is None:
        log.info("punch with %s failed (%s); staying relayed", peer_ip, outcome.reason)
        await handler(relayed, False)
        return "relayed"
    log.info("punched a direct connection with %s in %.2f s", peer_ip, outcome.elapsed)
    await relayed.aclose()
    await handler(outcome.direct, True)
    return "punched"
