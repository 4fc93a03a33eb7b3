"""The trio-facing DHT node: kademlia under trio_asyncio, with our timers and status.

``serve_dht`` (a trio service) and ``open_dht_node`` (an async context manager) start an
``AdServer`` on a trio_asyncio loop opened inside the caller's trio run. The loop gets a
logging-only exception handler at once, so a stray asyncio task exception (kademlia's own
``ensure_future`` calls) is logged instead of crashing ``trio.run`` (docs/kademlia-fixes.md K7).
Periodic work (bucket refresh and replication, the status file) runs in a nursery owned by
the node; leaving the context stops it and closes the socket.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from overlay.advert import dht_key_for, open_advert
from overlay.dht import AdServer
from overlay.errors import DhtUnavailable, OverlayUsageError
from overlay.results import LookupResult, NodeStats, PublishResult
from overlay.select import select_adverts
from overlay.status import STATUS_FILE, build_status
from overlay.store import AdvertStore, StoreLimits
from seattlecore import PublicKey, write_atomic

log = logging.getLogger(__name__)

NODE_ID_FILE = "dht-node-id"


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    """Tunables of one DHT node. Defaults suit the real network; tests shorten the timers."""

    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[tuple[str, int], ...] = ()
    state_dir: Path | None = None
    ksize: int = 20
    alpha: int = 3
    refresh_interval: float = 600.0
    """Refresh lonely buckets and re-store held records this often (kademlia used 3600 s)."""
    status_interval: float = 10.0
    client_mode: bool = False
    remote_status: bool = False
    """Answer the status RPC from non-loopback addresses too."""
    limits: StoreLimits = field(default_factory=StoreLimits)


def _log_asyncio_exception(loop: Any, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.warning("asyncio: %s (%r)", context.get("message", "error"), exc)


@asynccontextmanager
async def dht_loop() -> AsyncIterator[None]:
    """Open a trio_asyncio loop with the logging-only exception handler.

    trio_asyncio wraps errors from the body in nursery exception groups; a lone ordinary
    exception (e.g. ``DhtUnavailable``) is unwrapped so callers can catch it plainly.
    """
    try:
        async with trio_asyncio.open_loop() as loop:
            loop.set_exception_handler(_log_asyncio_exception)
            yield
    except BaseExceptionGroup as group:
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The one ordinary exception inside nested single-member groups, if that is all there is."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, Exception) and not isinstance(exc, BaseExceptionGroup) else None


def _load_node_id(state_dir: Path | None) -> bytes | None:
    if state_dir is None:
        return None
    path = state_dir / NODE_ID_FILE
    try:
        raw = bytes.fromhex(path.read_text().strip())
        if len(raw) == 20:
            return raw
    except (OSError, ValueError):
        pass
    raw = os.urandom(20)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, raw.hex().encode() + b"\n")
    return raw


class DhtNode:
    """A running DHT node; use it only inside its ``open_dht_node`` context."""

    def __init__(self, server: AdServer, store: AdvertStore, config: DhtConfig) -> None:
        self._server = server
        self._store = store
        self.config = config
        self.started_at = time.time()
        self._lookups = 0
        self._publishes = 0
        self._server.protocol.status_provider = self.status
        self._server.protocol.remote_status = config.remote_status

    @property
    def port(self) -> int:
        """The bound UDP port."""
        port: int = self._server.transport.get_extra_info("sockname")[1]
        return port

    @property
    def node_id(self) -> bytes:
        return bytes(self._server.node.id)

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """Join via ``addrs`` (IP literals); return how many answered."""
        nodes = await trio_asyncio.aio_as_trio(self._server.ping_bootstrap)(list(addrs))
        return len(nodes)

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        """Store signed advert blobs under their users' keys (each blob verified first)."""
        start = trio.current_time()
        now = time.time()
        by_key: dict[bytes, list[bytes]] = {}
        for blob in adverts:
            ad = open_advert(blob, now=now)
            by_key.setdefault(dht_key_for(ad.user_key), []).append(blob)
        peers = accepted = 0
        for key, blobs in by_key.items():
            p, a = await trio_asyncio.aio_as_trio(self._server.publish_records)(key, blobs)
            peers, accepted = peers + p, accepted + a
        self._publishes += 1
        return PublishResult(
            keys=len(by_key),
            peers=peers,
            stores_accepted=accepted,
            elapsed=trio.current_time() - start,
        )

    async def lookup(self, user_key: PublicKey) -> LookupResult:
        """All live, verified adverts for ``user_key`` (local store plus the k closest peers)."""
        start = trio.current_time()
        key = dht_key_for(user_key)
        raw = await trio_asyncio.aio_as_trio(self._server.lookup_records)(key)
        sel = select_adverts(raw.records, dht_key=key, now=time.time())
        self._lookups += 1
        return LookupResult(
            candidates=sel.candidates,
            rejected=sel.rejected,
            peers_answered=tuple(raw.answered),
            holders=tuple(raw.holders),
            withdrawn=sel.withdrawn,
            elapsed=trio.current_time() - start,
        )

    async def crawl(self, max_nodes: int = 10_000) -> tuple[list[str], list[str]]:
        """Walk the network from our contacts: (addresses that answered, that did not)."""
        result: tuple[list[str], list[str]] = await trio_asyncio.aio_as_trio(self._server.walk)(max_nodes)
        return result

    async def refresh(self) -> None:
        """Refresh routing buckets and replicate records held for a refresh interval."""
        await trio_asyncio.aio_as_trio(self._server.refresh)(self.config.refresh_interval)

    def statistics(self) -> NodeStats:
        proto = self._server.protocol
        st = self._store.stats(time.time())
        return NodeStats(
            node_id=self.node_id.hex(),
            port=self.port,
            peers=len(proto.router.contacts()),
            keys=st.keys,
            records=st.records,
            accepted=st.accepted,
            rejected=dict(st.rejected),
            garbage_datagrams=proto.counters.garbage,
            rate_limited=proto.counters.rate_limited,
            rpc_timeouts=proto.counters.timeouts,
            requests=dict(proto.counters.requests),
            lookups=self._lookups,
            publishes=self._publishes,
            uptime=time.time() - self.started_at,
        )

    def status(self) -> dict[str, Any]:
        """The JSON-able status document (status RPC and status file)."""
        proto = self._server.protocol
        return build_status(
            stats=self.statistics(),
            store=self._store.stats(time.time()),
            buckets=proto.router.buckets,
            last_seen=proto.last_seen,
            host=self.config.host,
            now=time.time(),
            monotonic_now=time.monotonic(),
        )

    def write_status(self) -> None:
        if self.config.state_dir is None:
            return
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.status(), indent=1, sort_keys=True).encode()
        write_atomic(self.config.state_dir / STATUS_FILE, data)

    async def _maintain(self) -> None:
        next_refresh = trio.current_time() + self.config.refresh_interval
        while True:
            self.write_status()
            await trio.sleep(min(self.config.status_interval, self.config.refresh_interval))
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + self.config.refresh_interval
                await self.refresh()


@asynccontextmanager
async def open_dht_node(config: DhtConfig) -> AsyncIterator[DhtNode]:
    """Start a DHT node on the current trio_asyncio loop (see ``dht_loop``), yield it, stop it.

    Bootstraps from ``config.bootstrap`` (silently alone if none is given or none answers,
    unless ``client_mode``, where no answer raises DhtUnavailable).
    """
    store = AdvertStore(config.limits)
    server = AdServer(
        store,
        node_id=_load_node_id(config.state_dir),
        ksize=config.ksize,
        alpha=config.alpha,
        client_mode=config.client_mode,
    )
    try:
        await trio_asyncio.aio_as_trio(server.listen)(config.port, config.host)
    except OSError as exc:
        raise OverlayUsageError(f"cannot bind {config.host}:{config.port}: {exc}") from exc
    try:
        node = DhtNode(server, store, config)
        if config.bootstrap:
            answered = await node.bootstrap(config.bootstrap)
            if not answered and config.client_mode:
                raise DhtUnavailable("no bootstrap peer answered")
            if not answered:
                log.warning("no bootstrap peer answered; running alone for now")
        async with trio.open_nursery() as nursery:
            if not config.client_mode:
                nursery.start_soon(node._maintain)
            yield node
            nursery.cancel_scope.cancel()
        if not config.client_mode:
            node.write_status()
    finally:
        server.stop()


async def serve_dht(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    bootstrap: Sequence[tuple[str, int]] = (),
    state_dir: Path | None = None,
    config: DhtConfig | None = None,
    task_status: trio.TaskStatus[DhtNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a DHT node until cancelled; ``task_status.started(node)`` hands back the node.

    >>> async def main():                                       # doctest: +SKIP
    ...     async with trio.open_nursery() as nursery:
    ...         node = await nursery.start(serve_dht)
    ...         print(node.port)
    ...         nursery.cancel_scope.cancel()
    """
    if config is None:
        config = DhtConfig(host=host, port=port, bootstrap=tuple(bootstrap), state_dir=state_dir)
    async with dht_loop(), open_dht_node(config) as node:
        task_status.started(node)
        await trio.sleep_forever()
