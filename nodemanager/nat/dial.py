"""How any client reaches a node manager: directly, or through one of its relays (trio).

A ``Route`` is what an advert says about a node: its address, its key and (behind NAT) the
relays that hold a reservation for it. ``dial`` connects directly when the route has no
relays; otherwise it asks each relay in turn (``connect`` by node key, docs/protocol.md §14)
and only then tries the advertised address. It returns the stream and the path it took;
``open_route_client`` wraps it in a ``NodeClient``.

The relay only splices bytes: the caller speaks the node manager protocol over the stream
unchanged, and every response is still verified against the node key.

Seam for direct upgrades (hole punching): ``dial(..., upgrade=hook)`` calls
``hook(dialed, route)`` once a relayed stream is up; the hook returns a direct ``Dialed``
to use instead, or the relayed one (it must not raise for a failed upgrade).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from nodemanager.errors import ConnectionFailed
from nodemanager.nat.relaywire import FramedStream, RelayProtocolError, RelayRefusal, want
from nodemanager.proto.client import DEFAULT_TIMEOUT, NodeClient
from overlay.advert import Advert, check_address
from overlay.errors import OverlayUsageError
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

RELAY_ATTEMPT = 5.0
"""Seconds one relay may take to splice us to the node before the next one is tried."""
DIRECT = "direct"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a node can be reached: its address, key and relays (from its advert)."""

    host: str
    port: int
    node_key: PublicKey | None = None
    relays: tuple[str, ...] = ()

    @classmethod
    def from_advert(cls, advert: Advert) -> Route:
        host, port = check_address(advert.address)
        return cls(host, port, advert.node_key, advert.relays)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Dialed:
    """A connected stream and the path it takes: ``direct`` or ``relay HOST:PORT``."""

    stream: trio.abc.Stream
    path: str

    @property
    def relay(self) -> str | None:
        return self.path.split(" ", 1)[1] if self.path.startswith("relay ") else None


Upgrade = Callable[[Dialed, Route], Awaitable[Dialed]]


async def dial(route: Route, *, timeout: float = 10.0, upgrade: Upgrade | None = None) -> Dialed:
    """Connect to the node of ``route``; ConnectionFailed (saying every path tried) if none works."""
    if not route.relays or route.node_key is None:
        return Dialed(await dial_direct(route.host, route.port, timeout), DIRECT)
    failures: list[str] = []
    with trio.move_on_after(timeout):
        for relay in route.relays:
            try:
                with trio.fail_after(min(RELAY_ATTEMPT, timeout)):
                    stream = await via_relay(relay, route.node_key)
            except (ConnectionFailed, trio.TooSlowError) as exc:
                failures.append(f"relay {relay}: {_reason(exc)}")
                continue
            dialed = Dialed(stream, f"relay {relay}")
            return dialed if upgrade is None else await upgrade(dialed, route)
        try:  # the advert's own address (e.g. a NAT with a forwarded port)
            return Dialed(await dial_direct(route.host, route.port, min(RELAY_ATTEMPT, timeout)),
                          DIRECT)
        except ConnectionFailed as exc:
            failures.append(f"direct: {exc}")
    raise ConnectionFailed(f"cannot reach node {route.address}: " + ("; ".join(failures)
                           or f"no path answered within {timeout:g} s"))


def _reason(exc: Exception) -> str:
    return "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)


async def dial_direct(host: str, port: int, timeout: float) -> trio.abc.Stream:
    """A TCP connection to ``host:port`` within ``timeout`` seconds."""
    try:
        with trio.fail_after(timeout):
            return await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        reason = "timed out" if isinstance(exc, trio.TooSlowError) else (exc.strerror or exc)
        raise ConnectionFailed(f"cannot connect to {host}:{port}: {reason}") from exc


async def via_relay(relay: str, node_key: PublicKey) -> trio.abc.Stream:
    """A stream spliced by ``relay`` to the node ``node_key`` (the caller bounds the time)."""
    try:
        host, port = check_address(relay)
    except OverlayUsageError as exc:
        raise ConnectionFailed(f"bad relay address {relay!r}") from exc
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ConnectionFailed(f"cannot connect: {exc.strerror or exc}") from exc
    framed = FramedStream(stream)
    try:
        want(await framed.receive(), "hello")
        await framed.send({"t": "connect", "node": node_key.raw})
        want(await framed.receive(), "connected")
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        if isinstance(exc, RelayRefusal):
            raise ConnectionFailed(f"refused: {exc}") from exc
        if isinstance(exc, RelayProtocolError | trio.BrokenResourceError | OSError):
            raise ConnectionFailed(f"relay failed: {exc}") from exc
        raise
    return framed.raw()


@asynccontextmanager
async def open_route_client(
    route: Route, *, identity: KeyPair | None = None, timeout: float = DEFAULT_TIMEOUT,
    upgrade: Upgrade | None = None,
) -> AsyncIterator[NodeClient]:
    """Reach the node of ``route`` (direct or via its relays) and talk to it."""
    dialed = await dial(route, timeout=timeout, upgrade=upgrade)
    client = NodeClient(dialed.stream, identity=identity, node_key=route.node_key,
                        timeout=timeout, path=dialed.path)
    try:
        yield client
    finally:
        await client.aclose()
