"""The relay client of a node manager behind NAT (trio shell; pure choice in ``choose_relays``).

While the reachability board says the node's TCP port is private, ``RelayClient.run`` keeps
reservations with ``want`` relays in distinct /24s (relays named with ``--relay`` first, then
relays found in the DHT's relay directory), renews them at half their TTL, pings them, and
replaces a relay as soon as its control connection fails. Each change of the set goes to
``on_change`` (the node manager puts the addresses into its adverts).

For each ``incoming`` message the node opens a connection back to the relay, names the
token, and serves it exactly like an accepted connection: every request is verified, and
admission limits apply to the client address the relay claims (``source``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from nodemanager.nat.reachability import Reach, ReachabilityBoard
from nodemanager.nat.relaycore import prefix_of
from nodemanager.nat.relaywire import (
    CHALLENGE_BYTES,
    TOKEN_BYTES,
    FramedStream,
    RelayProtocolError,
    RelayRefusal,
    field_bytes,
    field_number,
    field_text,
    sign_reserve,
    want,
)
from overlay.advert import check_address
from overlay.errors import OverlayUsageError
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

Serve = Callable[[trio.abc.Stream, str], Awaitable[None]]
"""Serve one spliced connection, given the client address the relay claims."""
Finder = Callable[[], Awaitable[Sequence[str]]]
"""Relay addresses (``host:port``) found in the relay directory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayClientConfig:
    want: int = 2
    """Reservations to hold (relays in distinct /24s when there are enough)."""
    connect_timeout: float = 5.0
    ping_interval: float = 15.0
    """A relay that answers nothing for two of these is dead: replace it."""
    retry_after: float = 60.0
    """Seconds a relay that failed is not tried again."""
    check_interval: float = 10.0
    """Seconds between looks for a replacement while fewer than ``want`` are held."""
    max_spliced: int = 64
    """Relayed connections served at once through one relay."""
    directory_refresh: float = 120.0
    """Seconds a relay directory lookup is reused."""


@dataclass(slots=True)
class Held:
    """One reservation this node holds."""

    address: str
    relay: PublicKey
    expires: float
    since: float
    spliced: int = 0
    served: int = 0


def choose_relays(candidates: Sequence[str], held: Sequence[str], avoid: Sequence[str],
                  count: int) -> list[str]:
    """Up to ``count`` new relays: not held, not avoided, new /24s first (pure)."""
    used = {prefix_of(check_address(a)[0]) for a in held}
    fresh: list[str] = []
    later: list[str] = []
    for address in dict.fromkeys(candidates):
        if address in held or address in avoid:
            continue
        try:
            prefix = prefix_of(check_address(address)[0])
        except OverlayUsageError:
            continue
        (later if prefix in used else fresh).append(address)
        used.add(prefix)
    return (fresh + later)[:count]


@dataclass(slots=True)
class _Wake:
    event: trio.Event = field(default_factory=trio.Event)

    def set(self) -> None:
        self.event.set()

    async def wait(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self.event.wait()
        self.event = trio.Event()


class RelayClient:
    """Keeps this node reachable through relays while it is private (see module doc)."""

    def __init__(self, keys: KeyPair, serve: Serve, board: ReachabilityBoard, *,
                 find: Finder | None = None, static: Sequence[str] = (),
                 on_change: Callable[[tuple[str, ...]], None] = lambda _: None,
                 config: RelayClientConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.serve = serve
        self.board = board
        self.find = find
        self.static = tuple(static)
        self.on_change = on_change
        self.config = config or RelayClientConfig()
        self.clock = clock
        self.held: dict[str, Held] = {}
        self.failed: dict[str, float] = {}
        self.replacements = 0
        self._wake = _Wake()
        self._directory_cache: list[str] = []
        self._fetched_at = float("-inf")

    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted(self.held))

    def status(self) -> dict[str, object]:
        """The ``relayed`` map of GetNodeStatus."""
        now = self.clock()
        return {"active": self.board.state.tcp is Reach.PRIVATE, "want": self.config.want,
                "replacements": self.replacements,
                "relays": [{"relay": h.address, "relay_key": h.relay.raw,
                            "expires_in": round(h.expires - now, 1), "spliced": h.spliced,
                            "served": h.served} for h in self.held.values()]}

    def _changed(self) -> None:
        self.on_change(self.addresses())
        self._wake.set()

    async def run(self, find: Finder | None = None) -> None:
        """Hold reservations whenever the board says private; until cancelled. ``find``: the
        relay directory, for a client made before the directory exists (the DHT's)."""
        if find is not None:
            self.find = find
        while True:
            seen = self.board.generation
            if self.board.state.tcp is Reach.PRIVATE:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._leave_when_public, seen, nursery.cancel_scope)
                    await self._maintain(nursery)
                self.held.clear()
                self._changed()
            else:
                await self.board.wait_changed(seen)

    async def _leave_when_public(self, seen: int, scope: trio.CancelScope) -> None:
        while self.board.state.tcp is Reach.PRIVATE:
            seen = await self.board.wait_changed(seen)
        scope.cancel()

    async def _maintain(self, nursery: trio.Nursery) -> None:
        trying: set[str] = set()
        while True:
            now = trio.current_time()
            self.failed = {a: t for a, t in self.failed.items() if t > now}
            missing = self.config.want - len(self.held) - len(trying)
            if missing > 0:
                for address in await self._choose([*self.held, *trying], missing):
                    trying.add(address)
                    nursery.start_soon(self._hold, address, trying)
            await self._wake.wait(self.config.check_interval)

    async def _choose(self, busy: list[str], count: int) -> list[str]:
        """New relays to try: static ones and the cached directory, refreshed when stale
        (``directory_refresh``) or when it offers nothing and was read a while ago."""
        age = trio.current_time() - self._fetched_at
        choice = choose_relays([*self.static, *self._directory_cache], busy, list(self.failed),
                               count)
        if age > self.config.directory_refresh or (not choice and age > self.config.check_interval):
            self._directory_cache = list(await self._directory())
            self._fetched_at = trio.current_time()
            choice = choose_relays([*self.static, *self._directory_cache], busy,
                                   list(self.failed), count)
        return choice

    async def _directory(self) -> Sequence[str]:
        if self.find is None:
            return ()
        try:
            with trio.move_on_after(30):
                return await self.find()
        except Exception as exc:  # a DHT problem must not end the relay client
            log.warning("relay directory lookup failed: %r", exc)
        return ()

    async def _hold(self, address: str, trying: set[str]) -> None:
        """Reserve at ``address`` and keep the reservation until it fails or is cancelled."""
        try:
            await self._reserve_and_serve(address, trying)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, RelayProtocolError, RelayRefusal, OverlayUsageError) as exc:
            log.info("relay %s: %s", address, exc)
        except Exception:
            log.exception("relay %s failed", address)
        finally:
            trying.discard(address)
            self.failed[address] = trio.current_time() + self.config.retry_after
            if self.held.pop(address, None) is not None:
                self.replacements += 1
            self._changed()

    async def _reserve_and_serve(self, address: str, trying: set[str]) -> None:
        host, port = check_address(address)
        with trio.fail_after(self.config.connect_timeout):
            framed = FramedStream(await trio.open_tcp_stream(host, port))
        async with framed.stream:
            with trio.fail_after(self.config.connect_timeout):
                hello = want(await framed.receive(), "hello")
                relay = PublicKey(field_bytes(hello, "relay", 32))
                challenge = field_bytes(hello, "challenge", CHALLENGE_BYTES)
                await framed.send(sign_reserve(self.keys, relay, challenge, self.clock()))
                reserved = want(await framed.receive(), "reserved")
            held = Held(address=address, relay=relay, expires=self._expiry(reserved),
                        since=self.clock())
            trying.discard(address)
            self.held[address] = held
            self._changed()
            log.info("holding a reservation at relay %s (%s)", address, relay.short())
            async with trio.open_nursery() as nursery:
                state = {"challenge": field_bytes(reserved, "challenge", CHALLENGE_BYTES),
                         "ttl": self._ttl(reserved)}
                nursery.start_soon(self._keepalive, framed, relay, state)
                await self._read_control(framed, held, state, nursery)

    @staticmethod
    def _ttl(reserved: Mapping[str, Any]) -> float:
        ttl = field_number(reserved, "ttl")
        if not ttl > 0:
            raise RelayProtocolError("reserved needs a positive ttl")
        return ttl

    @staticmethod
    def _expiry(reserved: Mapping[str, Any]) -> float:
        return field_number(reserved, "expires")

    async def _keepalive(self, framed: FramedStream, relay: PublicKey, state: dict[str, Any]) -> None:
        """Ping every ``ping_interval``; renew at half the reservation's TTL."""
        renew_at = trio.current_time() + state["ttl"] / 2
        while True:
            await trio.sleep(self.config.ping_interval)
            if trio.current_time() >= renew_at:
                await framed.send(sign_reserve(self.keys, relay, state["challenge"], self.clock()))
                renew_at = trio.current_time() + state["ttl"] / 2
            else:
                await framed.send({"t": "ping"})

    async def _read_control(self, framed: FramedStream, held: Held, state: dict[str, Any],
                            nursery: trio.Nursery) -> None:
        limiter = trio.CapacityLimiter(self.config.max_spliced)
        while True:
            with trio.fail_after(2 * self.config.ping_interval + self.config.connect_timeout):
                msg = want_any(await framed.receive())
            if msg["t"] == "incoming":
                token = field_bytes(msg, "token", TOKEN_BYTES)
                source = field_text(msg, "source")
                try:
                    limiter.acquire_on_behalf_of_nowait(token)
                except trio.WouldBlock:
                    log.warning("relay %s: %d relayed connections already; ignoring one",
                                held.address, self.config.max_spliced)
                    continue
                nursery.start_soon(self._splice, held, token, source, limiter)
            elif msg["t"] == "reserved":
                held.expires = self._expiry(msg)
                state["challenge"] = field_bytes(msg, "challenge", CHALLENGE_BYTES)
            elif msg["t"] != "pong":
                raise RelayProtocolError(f"unexpected {str(msg['t'])[:32]!r} from the relay")

    async def _splice(self, held: Held, token: bytes, source: str,
                      limiter: trio.CapacityLimiter) -> None:
        """Open the node's side of a circuit and serve it like an accepted connection."""
        held.spliced += 1
        try:
            host, port = check_address(held.address)
            with trio.fail_after(self.config.connect_timeout):
                framed = FramedStream(await trio.open_tcp_stream(host, port))
            async with framed.stream:
                with trio.fail_after(self.config.connect_timeout):
                    want(await framed.receive(), "hello")
                    await framed.send({"t": "accept", "token": token})
                held.served += 1
                await self.serve(framed.raw(), source.rpartition(":")[0] or source)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, OverlayUsageError,
                RelayProtocolError, RelayRefusal) as exc:
            log.info("relayed connection via %s failed: %r", held.address, exc)
        finally:
            held.spliced -= 1
            limiter.release_on_behalf_of(token)


def want_any(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` unless it is an ``error`` from the relay (raised as RelayRefusal)."""
    if msg["t"] == "error":
        want(msg, "error-free")
    return msg
