"""The relay service of a public node manager (trio shell over ``relaycore``).

One TCP port, three kinds of connection, told apart by their first message
(docs/protocol.md §14):

* ``reserve`` — a node behind NAT proves its key and keeps this connection open as its
  *control* connection; the relay sends ``incoming`` on it for each waiting client.
* ``connect`` — a client asks for a node key; if the node holds a reservation, the relay
  asks it (``incoming`` + a random token) to open a connection back, then splices the two.
* ``accept`` — the node's connection back, naming the token.

The relay never interprets the spliced bytes: node manager requests and responses are signed
end to end, so a relay can only drop or delay them. Nothing a peer sends ends the service:
each connection's errors are caught, logged and counted here.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from nodemanager.nat.relaycore import RelayLimits, RelayRefused, RelayTable, Reservation
from nodemanager.nat.relaywire import (
    TOKEN_BYTES,
    FramedStream,
    RawStream,
    RelayProtocolError,
    check_reserve,
    error_message,
    field_bytes,
    new_challenge,
)
from nodemanager.proto.auth import TIME_WINDOW
from nodemanager.proto.listener import serve_tcp
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

CONTROL_QUEUE = 64
"""``incoming`` messages waiting to be written to one control connection."""
CHUNK = 65536
BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def peer_of(stream: trio.abc.Stream) -> tuple[str, int]:
    sock = getattr(stream, "socket", None)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("local", 0)
    except OSError:
        return "unknown", 0
    return str(host), int(port)


@dataclass(slots=True)
class _Control:
    id: int
    scope: trio.CancelScope
    outbox: trio.MemorySendChannel[dict[str, Any]]


@dataclass(slots=True)
class _Pending:
    node: PublicKey
    arrived: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)
    stream: trio.abc.Stream | None = None


class RelayServer:
    """Reservations and circuits of one relay; ``serve`` runs it on a TCP port."""

    def __init__(self, keys: KeyPair, limits: RelayLimits | None = None, *,
                 clock: Callable[[], float] = time.time, window: float = TIME_WINDOW) -> None:
        self.keys = keys
        self.table = RelayTable(limits or RelayLimits())
        self.clock = clock
        self.window = window
        self.port: int | None = None
        self._ids = itertools.count(1)
        self._controls: dict[bytes, _Control] = {}
        self._pending: dict[bytes, _Pending] = {}
        self._handshaking: dict[int, trio.CancelScope] = {}

    @property
    def limits(self) -> RelayLimits:
        return self.table.limits

    def status(self) -> dict[str, object]:
        """The ``relay`` map of GetNodeStatus."""
        return {"enabled": True, "port": self.port, **self.table.status(self.clock())}

    async def serve(self, host: str, port: int = 0, *,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``host:port`` until cancelled; ``task_status.started(bound_port)``."""
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(serve_tcp, self.handle, host, port)
            log.info("relay listening on %s:%d", host, self.port)
            task_status.started(self.port)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection; never raises (a bad peer costs only its own connection)."""
        try:
            async with stream:
                await self._dispatch(FramedStream(stream))
        except Exception as exc:
            if expected(exc):
                log.debug("relay connection ended: %r", exc)
            else:
                log.exception("relay connection failed")

    async def _dispatch(self, framed: FramedStream) -> None:
        msg, challenge = await self._handshake(framed)
        if msg is None:
            return
        kind = msg["t"]
        try:
            if kind == "reserve":
                await self._control(framed, msg, challenge)
            elif kind == "connect":
                await self._connect(framed, msg)
            elif kind == "accept":
                await self._accept(framed, msg)
            else:
                raise RelayProtocolError(f"unknown relay message {kind[:32]!r}")
        except RelayProtocolError as exc:
            self.table.counters.bad_frames += 1
            await self._refuse(framed, "BadFrame", str(exc))
        except RelayRefused as exc:
            await self._refuse(framed, exc.code, str(exc))

    async def _handshake(self, framed: FramedStream) -> tuple[dict[str, Any] | None, bytes]:
        """Greet, then read the first message within ``handshake_timeout``.

        At ``max_handshakes`` the oldest silent newcomer is dropped (not the new one), so a
        flood of silent connections cannot keep a real client from greeting the relay.
        """
        table, limits = self.table, self.limits
        if len(self._handshaking) >= limits.max_handshakes:
            oldest = next(iter(self._handshaking))
            self._handshaking.pop(oldest).cancel()
            table.counters.evicted_handshakes += 1
        challenge = new_challenge()
        ticket = next(self._ids)
        with trio.CancelScope() as scope:
            self._handshaking[ticket] = scope
            table.handshakes = len(self._handshaking)
            try:
                with trio.fail_after(limits.handshake_timeout):
                    await framed.send({"t": "hello", "v": 1, "relay": self.keys.public.raw,
                                       "challenge": challenge})
                    return await framed.receive(), challenge
            except RelayProtocolError as exc:
                table.counters.bad_frames += 1
                await self._refuse(framed, "BadFrame", str(exc))
            finally:
                self._handshaking.pop(ticket, None)
                table.handshakes = len(self._handshaking)
        return None, challenge

    async def _refuse(self, framed: FramedStream, code: str, message: str) -> None:
        with trio.move_on_after(1.0):
            try:
                await framed.send(error_message(code, message))
            except BROKEN:
                pass

    # ---- reservations ----

    async def _control(self, framed: FramedStream, msg: dict[str, Any], challenge: bytes) -> None:
        proof = check_reserve(msg, relay=self.keys.public, challenge=challenge,
                              now=self.clock(), window=self.window)
        control_id = next(self._ids)
        source = peer_of(framed.stream)[0]
        held = self.table.reserve(proof.node, source, control_id, self.clock())
        outbox, inbox = trio.open_memory_channel[dict[str, Any]](CONTROL_QUEUE)
        with trio.CancelScope() as scope:
            old = self._controls.get(proof.node.raw)
            if old is not None:
                old.scope.cancel()  # the newest control connection wins
            self._controls[proof.node.raw] = _Control(control_id, scope, outbox)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_control, framed, inbox)
                    await self._read_control(framed, held, outbox, control_id)
                    nursery.cancel_scope.cancel()
            finally:
                self.table.release(proof.node, control_id)
                current = self._controls.get(proof.node.raw)
                if current is not None and current.id == control_id:
                    del self._controls[proof.node.raw]
        log.info("reservation of %s ended", proof.node.short())

    @staticmethod
    async def _write_control(framed: FramedStream,
                             inbox: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async for message in inbox:
            await framed.send(message)

    def _reserved(self, held: Reservation, challenge: bytes) -> dict[str, Any]:
        return {"t": "reserved", "expires": held.expires, "ttl": self.limits.reservation_ttl,
                "challenge": challenge, "limits": self.limits.as_dict()}

    async def _read_control(self, framed: FramedStream, held: Reservation,
                            outbox: trio.MemorySendChannel[dict[str, Any]], control_id: int) -> None:
        """Renewals and pings from the node, until it leaves or the reservation expires."""
        challenge = new_challenge()
        await outbox.send(self._reserved(held, challenge))
        while True:
            with trio.move_on_after(max(0.0, held.expires - self.clock())):
                msg = await framed.receive()
                if msg["t"] == "reserve":
                    proof = check_reserve(msg, relay=self.keys.public, challenge=challenge,
                                          now=self.clock(), window=self.window)
                    if proof.node != held.node:
                        raise RelayProtocolError("a control connection renews only its own node")
                    held = self.table.reserve(held.node, held.source, control_id, self.clock())
                    challenge = new_challenge()
                    await outbox.send(self._reserved(held, challenge))
                elif msg["t"] == "ping":
                    await outbox.send({"t": "pong"})
                else:
                    raise RelayProtocolError(f"unexpected {msg['t'][:32]!r} on a control connection")
                continue
            return  # expired without renewal

    # ---- circuits ----

    async def _connect(self, framed: FramedStream, msg: dict[str, Any]) -> None:
        node = PublicKey(field_bytes(msg, "node", 32))
        held = self.table.open_circuit(node, self.clock())
        token = os.urandom(TOKEN_BYTES)
        pending = _Pending(node)
        try:
            control = self._controls.get(node.raw)
            if control is None:
                raise RelayRefused("NoReservation", f"node {node.short()} holds no reservation here")
            host, port = peer_of(framed.stream)
            try:
                control.outbox.send_nowait({"t": "incoming", "token": token,
                                            "source": f"{host}:{port}"})
            except trio.WouldBlock:
                raise RelayRefused("Overloaded", "too many clients waiting for this node") from None
            self._pending[token] = pending
            with trio.move_on_after(self.limits.accept_timeout):
                await pending.arrived.wait()
            if pending.stream is None:
                raise RelayRefused("NodeTimeout", f"node {node.short()} did not answer in "
                                   f"{self.limits.accept_timeout:g} s")
            await framed.send({"t": "connected", "node": node.raw})
            await self._splice(framed.raw(), pending.stream, held)
        finally:
            self._pending.pop(token, None)
            pending.done.set()
            self.table.close_circuit(held)

    async def _accept(self, framed: FramedStream, msg: dict[str, Any]) -> None:
        token = field_bytes(msg, "token", TOKEN_BYTES)
        pending = self._pending.pop(token, None)
        if pending is None:
            raise RelayRefused("UnknownToken", "no client is waiting for this token")
        pending.stream = framed.raw()
        pending.arrived.set()
        await pending.done.wait()

    async def _splice(self, client: RawStream, node: trio.abc.Stream, held: Reservation) -> None:
        """Copy bytes both ways until either side closes, a cap or the idle timeout."""
        limits, counters = self.limits, self.table.counters
        carried = [0]
        cut: list[str] = []  # why the circuit was cut; both directions may hit a cap at once
        with trio.CancelScope() as idle:
            idle.deadline = trio.current_time() + limits.circuit_idle

            async def pump(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
                start, sent = trio.current_time(), 0
                while True:
                    data = await src.receive_some(CHUNK)
                    if not data:
                        return
                    carried[0] += len(data)
                    held.carried += len(data)
                    counters.bytes_relayed += len(data)
                    if held.carried > limits.reservation_bytes:
                        cut.append("budget")
                        return
                    if carried[0] > limits.circuit_bytes:
                        cut.append("bytes")
                        return
                    await dst.send_all(data)
                    idle.deadline = trio.current_time() + limits.circuit_idle
                    sent += len(data)
                    ahead = sent / limits.circuit_rate - (trio.current_time() - start)
                    if ahead > 0:
                        await trio.sleep(ahead)

            async with trio.open_nursery() as nursery:
                for src, dst in ((client, node), (node, client)):
                    nursery.start_soon(_then_cancel, pump, src, dst, nursery.cancel_scope)
        if idle.cancelled_caught:
            counters.circuits_closed_idle += 1
        elif cut and cut[0] == "budget":
            counters.circuits_closed_budget += 1
            log.info("closed a relayed connection: its reservation carried %d bytes",
                     limits.reservation_bytes)
        elif cut:
            counters.circuits_closed_bytes += 1
            log.info("closed a relayed connection at its %d-byte cap", limits.circuit_bytes)


async def _then_cancel(pump: Callable[[trio.abc.Stream, trio.abc.Stream], Any],
                       src: trio.abc.Stream, dst: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """Run one direction; when it ends (EOF, cap, error) the whole circuit ends."""
    try:
        await pump(src, dst)
    except BROKEN:
        pass
    finally:
        scope.cancel()


def expected(exc: BaseException) -> bool:
    """A peer closing, misbehaving or timing out (also inside an exception group)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(expected(e) for e in exc.exceptions)
    return isinstance(exc, (*BROKEN, RelayProtocolError, RelayRefused, trio.TooSlowError))
