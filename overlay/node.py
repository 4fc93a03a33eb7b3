"""The trio-facing DHT node: kademlia under trio_asyncio, with our timers and status.

``serve_dht`` (a trio service) and ``open_dht_node`` (an async context manager) start an
``AdServer`` on a trio_asyncio loop opened inside the caller's trio run. The loop gets a
logging-only exception handler at once, so a stray asyncio task exception (kademlia's own
``ensure_future`` calls) is logged instead of crashing ``trio.run`` (docs/kademlia-fixes.md K7).
Periodic work (bucket refresh and replication, the status file) runs in a nursery owned by
the node; leaving the context stops it and closes the socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from overlay.advert import REPLICA_KEYS, dht_keys_for, open_advert, verify_advert
from overlay.answers import Contact
from overlay.crawl import Search, find_nodes, find_records, walk, walk_contacts
from overlay.dht import AdProtocol, AdServer, ProtocolHooks
from overlay.errors import DhtUnavailable, InvalidAdvert, OverlayUsageError
from overlay.lookup import LookupParams
from overlay.netgroup import DiversityLimits
from overlay.nodeid import PUZZLE_BITS, NodeIdentity
from overlay.publishing import KeyReport, join, join_contacts, publish_key, refresh
from overlay.results import LookupResult, NodeStats, PublishResult
from overlay.routing import (
    PEERS_FILE,
    PEERS_MAX_BYTES,
    Remembered,
    after_join,
    decode_peers,
    encode_peers,
    join_seeds,
    remember,
)
from overlay.select import select_adverts
from overlay.status import STATUS_FILE, build_status
from overlay.store import AdvertStore, StoreLimits
from seattlecore import PublicKey, write_atomic

log = logging.getLogger(__name__)

IDENTITY_FILE = "dht-identity"
REMEMBER_CHECK = 5.0
"""Seconds between checks whether the routing table changed (then the peers file is saved)."""
PEERS_MAX_READ = PEERS_MAX_BYTES + 1
"""Bytes read of a peers file at most (one more than allowed: a larger file is refused)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    """Tunables of one DHT node. Defaults suit the real network; tests shorten the timers."""

    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[tuple[str, int], ...] = ()
    state_dir: Path | None = None
    ksize: int = 20
    """Routing-table bucket size."""
    replicas: int = 10
    """Nodes that store each replica key (so 3 x 10 per user); lookups converge on as many."""
    alpha: int = 1
    """Queries in flight per lookup path (so 3 in all, Kademlia's usual alpha)."""
    paths: int = 3
    """Disjoint lookup paths (S/Kademlia's d)."""
    lookup_timeout: float = 5.0
    """Total deadline of one lookup (all replica keys at once); partial results after it."""
    quorum: int = 2
    """A value lookup path stops once this many peers returned valid records."""
    replica_keys: int = REPLICA_KEYS
    """How many of a user's derived keys to publish under and look up (1 = no replication;
    for measuring what the defence costs)."""
    check_stores: bool = True
    """Read one replica key back from an independent path after each publish, a different
    replica each time (see ``publishing``)."""
    refresh_interval: float = 600.0
    """Refresh lonely buckets and re-store held records this often (kademlia used 3600 s)."""
    status_interval: float = 10.0
    rejoin_delays: tuple[float, float] = (1.0, 60.0)
    """While the routing table is empty, bootstrap again after the first delay, doubling up
    to the second (jittered): a peer that was busy or not yet up must not leave a node
    alone until the next refresh."""
    client_mode: bool = False
    """A short-lived client: no identity, no table upkeep, never a contact (``seattle-dht``)."""
    start_as_client: bool = False
    """A node with an identity that starts in client mode (its reachability is not known
    yet); ``DhtNode.set_client_mode`` switches it at run time."""
    remote_status: bool = False
    """Answer the status RPC from non-loopback addresses too."""
    limits: StoreLimits = field(default_factory=StoreLimits)
    diversity: DiversityLimits = field(default_factory=DiversityLimits)
    identity: NodeIdentity | None = None
    """The node's key, nonce and id; default: loaded from (or created in) ``state_dir``."""
    id_bits: int = PUZZLE_BITS
    """The id puzzle's difficulty; every node of one network must agree (tests lower it)."""
    dialback_sink: Callable[[bytes], None] | None = None
    """Called with the nonce of each ``dialback`` datagram that may count (a reachability
    prober's: docs/nat.md); without one, dial-backs are ignored."""
    remember_interval: float = 60.0
    """With a ``state_dir``: write the remembered peers (``routing.remember``) at least this
    often (and at start-up, on table changes and at stop); the next start joins through them
    beside ``bootstrap`` and tries this run's UDP port first (when ``port`` is 0)."""

    @property
    def params(self) -> LookupParams:
        """Node lookups (publish, refresh, join): every path converges on its k closest."""
        return LookupParams(k=self.replicas, alpha=self.alpha, paths=self.paths,
                            per_group=self.diversity.per_path)

    @property
    def value_params(self) -> LookupParams:
        """Record lookups: a path may stop at ``quorum`` holders with valid records."""
        return replace(self.params, quorum=self.quorum)


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


def load_identity(state_dir: Path | None, bits: int = PUZZLE_BITS) -> NodeIdentity:
    """The node identity kept in ``state_dir`` (created on first use; solving the id puzzle
    takes about 0.1 s); a fresh one when there is no state directory."""
    if state_dir is None:
        return NodeIdentity.generate(bits)
    path = state_dir / IDENTITY_FILE
    try:
        return NodeIdentity.from_bytes(bytes.fromhex(path.read_text().strip()), bits)
    except (OSError, ValueError):
        pass
    identity = NodeIdentity.generate(bits)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, identity.to_bytes().hex().encode() + b"\n", mode=0o600)
    return identity


class DhtNode:
    """A running DHT node; use it only inside its ``open_dht_node`` context."""

    def __init__(self, store: AdvertStore, config: DhtConfig, identity: NodeIdentity | None) -> None:
        """Not bound yet: ``open_dht_node`` calls ``_listen`` next."""
        hooks = ProtocolHooks(status=self.status, remote_status=config.remote_status,
                              dialback_sink=config.dialback_sink,
                              client_mode=config.client_mode or config.start_as_client)
        self._server = AdServer(store, identity=identity, ksize=config.ksize,
                                limits=config.diversity, bits=config.id_bits, hooks=hooks)
        self._store = store
        self.config = config
        self.started_at = time.time()
        self._lookups = 0
        self._publishes = 0
        self._remembered: list[Remembered] = []
        """Remembered peers not known to be gone (``routing.remember``); merged into each save."""
        self.remembered_port = 0
        """The UDP port the peers file named (0: none)."""
        self.port_moved = False
        """True if the remembered UDP port was taken, so this run has a new one."""

    async def _listen(self) -> None:
        wanted = self.config.port
        if wanted == 0 and self.remembered_port:
            try:
                await self._bind(self.remembered_port)
                return
            except OverlayUsageError as exc:
                self.port_moved = True
                log.warning("the DHT port of the last run is taken (%s); using a new one", exc)
        await self._bind(wanted)

    async def _bind(self, port: int) -> None:
        try:
            await trio_asyncio.aio_as_trio(self._server.listen)(port, self.config.host)
        except OSError as exc:
            raise OverlayUsageError(f"cannot bind {self.config.host}:{port}: {exc}") from exc

    def _stop(self) -> None:
        self._server.stop()

    @property
    def protocol(self) -> AdProtocol:
        proto: AdProtocol = self._server.protocol
        return proto

    @property
    def port(self) -> int:
        """The bound UDP port."""
        port: int = self._server.transport.get_extra_info("sockname")[1]
        return port

    @property
    def node_id(self) -> bytes:
        return self.protocol.own_id

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> int:
        """Join via ``addrs`` (IP literals); return how many answered."""
        answered: int = await trio_asyncio.aio_as_trio(join)(
            self.protocol, list(addrs), self.config.params, self.config.lookup_timeout)
        return answered

    # -- remembered peers (routing.py, remembered contacts) ------------------------------------
    def load_remembered(self) -> None:
        """Read the peers file of the state directory; a missing, corrupt or huge file (or
        a forged entry) is logged and ignored, never fatal."""
        path = self._peers_path()
        if path is None:
            return
        try:
            with path.open("rb") as handle:
                data = handle.read(PEERS_MAX_READ)
            found, dropped = decode_peers(data, bits=self.config.id_bits)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring the remembered DHT peers in %s: %s", path, exc)
            return
        if dropped:
            log.warning("ignored %d malformed or forged entries in %s", dropped, path)
        self._remembered = list(found.peers)
        self.remembered_port = found.port

    def join_seeds(self) -> list[tuple[str, int]]:
        """Where to join: the configured bootstrap peers and the remembered ones."""
        own = (self.config.host, self.port)
        return join_seeds(self.config.bootstrap, self._remembered, own)

    async def join(self, *, start: bool = False) -> int:
        """Join through ``join_seeds``; note which remembered peers answered (with ``start``,
        the first join, also which missed); return how many seeds answered. Retries while
        alone count no misses: a node offline for a while must not forget its peers."""
        addrs = self.join_seeds()
        if not addrs:
            return 0
        proven: list[Contact] = await trio_asyncio.aio_as_trio(join_contacts)(
            self.protocol, addrs, self.config.params, self.config.lookup_timeout)
        answered = {c.addr for c in proven}
        if self._remembered:
            back = sum(1 for r in self._remembered if r.contact.addr in answered)
            log.info("DHT join: %d of %d remembered peers answered", back, len(self._remembered))
            self._remembered = after_join(self._remembered, answered, time.time(), start=start)
        return len(proven)

    def _peers_path(self) -> Path | None:
        if self.config.state_dir is None or self.config.client_mode:
            return None
        return self.config.state_dir / PEERS_FILE

    def save_remembered(self) -> None:
        """Write the remembered peers (table contacts first) and our port, atomically;
        logs instead of raising (a full disk must not stop the node)."""
        path = self._peers_path()
        if path is None:
            return
        now = time.time()
        table = [(e.contact, e.added, e.seen) for _, e in self.protocol.router.entries()]
        self._remembered = remember(table, self._remembered, now)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, encode_peers(self._remembered, self.port, now), mode=0o600)
        except OSError as exc:
            log.warning("cannot write the remembered DHT peers: %s", exc)

    async def _remember(self) -> None:
        """Save the remembered peers now, then whenever the table's members changed (checked
        every ``REMEMBER_CHECK`` s: a node killed soon after it joined still remembers its
        peers), and at least every ``remember_interval``."""
        saved: frozenset[bytes] | None = None
        next_save = trio.current_time()
        while True:
            members = frozenset(c.node_id for c in self.protocol.router.contacts())
            if members != saved or trio.current_time() >= next_save:
                self.save_remembered()
                saved, next_save = members, trio.current_time() + self.config.remember_interval
            await trio.sleep(min(REMEMBER_CHECK, self.config.remember_interval))

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        """Store signed advert blobs under each of their users' replica keys, then read each
        key back from an independent path (``DhtConfig.check_stores``)."""
        start = trio.current_time()
        now = time.time()
        by_user: dict[bytes, list[bytes]] = {}
        for blob in adverts:
            ad = open_advert(blob, now=now)
            by_user.setdefault(ad.user_key.raw, []).append(blob)
        reports: list[KeyReport] = await trio_asyncio.aio_as_trio(self._publish_all)(by_user, now)
        self._publishes += 1
        return PublishResult(
            keys=len(by_user),
            peers=sum(r.peers for r in reports),
            stores_accepted=sum(r.accepted for r in reports),
            elapsed=trio.current_time() - start,
            dht_keys=len(reports),
            unconfirmed_keys=sum(1 for r in reports if r.confirmed == 0),
            complete=all(r.complete for r in reports),
        )

    async def _publish_all(self, by_user: dict[bytes, list[bytes]], now: float) -> list[KeyReport]:
        store = None if self.protocol.client_mode else self._store
        checked = self._publishes % self.config.replica_keys if self.config.check_stores else -1
        jobs = [
            publish_key(self.protocol, store, key, blobs, self.config.params,
                        self.config.lookup_timeout, now=now, check=i == checked)
            for user, blobs in by_user.items()
            for i, key in enumerate(self._keys(PublicKey(user)))
        ]
        return list(await asyncio.gather(*jobs))

    def _keys(self, user: PublicKey) -> tuple[bytes, ...]:
        return dht_keys_for(user)[: max(1, self.config.replica_keys)]

    @staticmethod
    def _validator(key: bytes, now: float) -> Callable[[bytes], bool]:
        """A cached ``verify_advert`` for records found under ``key``."""
        seen: dict[bytes, bool] = {}

        def valid(blob: bytes) -> bool:
            if blob not in seen:
                try:
                    verify_advert(blob, dht_key=key, now=now)
                    seen[blob] = True
                except InvalidAdvert:
                    seen[blob] = False
            return seen[blob]

        return valid

    async def lookup(self, user_key: PublicKey) -> LookupResult:
        """All live, verified adverts for ``user_key``: the local store plus every replica
        key's closest nodes, within ``lookup_timeout`` (``complete=False`` if cut short)."""
        start = trio.current_time()
        keys = self._keys(user_key)
        found: Search = await trio_asyncio.aio_as_trio(self._search)(keys)
        now = time.time()
        local = [("local", b) for key in keys for b in self._store.blobs(key, now)]
        sel = select_adverts(local + found.records, dht_key=keys[0], now=now)
        self._lookups += 1
        return LookupResult(
            candidates=sel.candidates,
            rejected=sel.rejected,
            peers_answered=tuple(sorted(found.answered)),
            holders=tuple(sorted(found.holders)),
            withdrawn=sel.withdrawn,
            elapsed=trio.current_time() - start,
            complete=found.complete,
            queries=found.queries,
        )

    async def _search(self, keys: Sequence[bytes]) -> Search:
        deadline = asyncio.get_running_loop().time() + self.config.lookup_timeout
        valid = self._validator(keys[0], time.time())
        parts = await asyncio.gather(*(
            find_records(self.protocol, k, self.config.value_params, deadline, valid=valid)
            for k in keys))
        total = Search()
        for part in parts:
            total.merge(part)
        return total

    @property
    def client_mode(self) -> bool:
        return bool(self.protocol.client_mode)

    async def set_client_mode(self, client: bool) -> None:
        """Switch between client mode (not a contact for anyone) and server mode. Becoming a
        server looks up our own id, so the peers near it check us and add us to their tables;
        becoming a client needs nothing: peers drop us when we stop answering."""
        proto = self.protocol
        if proto.identity is None or proto.client_mode == client:
            return
        proto.set_client_mode(client)
        log.info("DHT node now in %s mode", "client" if client else "server")
        if not client:
            await trio_asyncio.aio_as_trio(self._announce_self)()

    def sample_contacts(self, count: int) -> list[tuple[str, int]]:
        """Addresses of up to ``count`` random routing-table contacts."""
        return [c.addr for c in self.protocol.router.sample(count)]

    def contact_addresses(self) -> list[tuple[str, int]]:
        """Addresses of every routing-table contact."""
        return [c.addr for c in self.protocol.router.contacts()]

    async def find_contacts(self) -> list[tuple[str, int]]:
        """Addresses of live DHT nodes near a random id (one lookup path): peers to ask for
        things besides the routing table (e.g. reachability probes)."""
        found: Search = await trio_asyncio.aio_as_trio(self._find_random)()
        return [c.addr for c in found.closest]

    async def _find_random(self) -> Search:
        deadline = asyncio.get_running_loop().time() + self.config.lookup_timeout
        single = replace(self.config.params, paths=1)
        return await find_nodes(self.protocol, os.urandom(len(self.protocol.router.own_id)),
                                single, deadline)

    async def _announce_self(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.lookup_timeout
        await find_nodes(self.protocol, self.protocol.router.own_id, self.config.params, deadline)

    async def crawl(self, max_nodes: int = 10_000) -> tuple[list[str], list[str]]:
        """Walk the network from our contacts: (addresses that answered, that did not)."""
        result: tuple[list[str], list[str]] = await trio_asyncio.aio_as_trio(walk)(self.protocol, max_nodes)
        return result

    async def crawl_peers(self, max_nodes: int = 10_000) -> list[dict[str, Any]]:
        """The live nodes a walk from our contacts finds, as status peer rows (``id``,
        ``address``; ``bucket`` and ``last_seen`` are None: they are in no table of ours)."""
        live, _ = await trio_asyncio.aio_as_trio(walk_contacts)(self.protocol, max_nodes)
        return [{"id": c.node_id.hex(), "address": c.label, "bucket": None, "last_seen": None}
                for c in live]

    async def refresh(self) -> None:
        """Refresh routing buckets and replicate records held for a refresh interval."""
        await trio_asyncio.aio_as_trio(refresh)(
            self.protocol, self._store, self.config.params, idle=self.config.refresh_interval,
            wall_now=time.time(), budget=self.config.lookup_timeout)

    def statistics(self) -> NodeStats:
        proto = self.protocol
        st = self._store.stats(time.time())
        return NodeStats(
            **proto.counters.snapshot(),
            node_id=self.node_id.hex(),
            port=self.port,
            peers=len(proto.router),
            keys=st.keys,
            records=st.records,
            accepted=st.accepted,
            rejected=dict(st.rejected),
            lookups=self._lookups,
            publishes=self._publishes,
            uptime=time.time() - self.started_at,
            store_bytes=st.bytes,
            evicted=st.evicted,
        )

    def status(self) -> dict[str, Any]:
        """The JSON-able status document (status RPC and status file)."""
        now = time.time()
        return build_status(
            stats=self.statistics(),
            store=self._store.stats(now),
            router=self.protocol.router,
            host=self.config.host,
            now=now,
            mode="client" if self.protocol.client_mode else "server",
        )

    def write_status(self) -> None:
        if self.config.state_dir is None:
            return
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.status(), indent=1, sort_keys=True).encode()
        write_atomic(self.config.state_dir / STATUS_FILE, data)

    def save_status(self) -> None:
        """``write_status``, logging instead of raising: a full disk must not stop the node."""
        try:
            self.write_status()
        except OSError as exc:
            log.warning("cannot write the DHT status file: %s", exc)

    async def _rejoin(self) -> None:
        """Bootstrap again (with backoff) whenever the routing table is empty (through the
        configured and the remembered peers)."""
        first, most = self.config.rejoin_delays
        delay = first
        while True:
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            if len(self.protocol.router):
                delay = first
                continue
            try:
                answered = await self.join()
            except Exception:  # nothing from the network may end the node's upkeep
                log.exception("DHT re-bootstrap failed")
                answered = 0
            if answered:
                log.info("joined the DHT through %d bootstrap peers", answered)
                delay = first
            else:
                delay = min(delay * 2, most)

    async def _maintain(self) -> None:
        next_refresh = trio.current_time() + self.config.refresh_interval
        while True:
            self.save_status()
            await trio.sleep(min(self.config.status_interval, self.config.refresh_interval))
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + self.config.refresh_interval
                try:
                    await self.refresh()
                except Exception:  # nothing from the network may end the node's upkeep
                    log.exception("DHT refresh failed")


@asynccontextmanager
async def open_dht_node(config: DhtConfig) -> AsyncIterator[DhtNode]:
    """Start a DHT node on the current trio_asyncio loop (see ``dht_loop``), yield it, stop it.

    Bootstraps from ``config.bootstrap`` (silently alone if none is given or none answers,
    unless ``client_mode``, where no answer raises DhtUnavailable).
    """
    store = AdvertStore(config.limits)
    identity = None
    if not config.client_mode:
        identity = config.identity or load_identity(config.state_dir, config.id_bits)
    node = DhtNode(store, config, identity)
    node.load_remembered()
    await node._listen()
    try:
        if node.join_seeds():
            answered = await node.join(start=True)
            if not answered and config.client_mode:
                raise DhtUnavailable("no bootstrap peer answered")
            if not answered:
                log.warning("no bootstrap or remembered peer answered; running alone for now")
        async with trio.open_nursery() as nursery:
            if not config.client_mode:
                nursery.start_soon(node._maintain)
                nursery.start_soon(node._rejoin)  # seeds may come later: table contacts
                nursery.start_soon(node._remember)
            yield node
            nursery.cancel_scope.cancel()
        if not config.client_mode:
            node.save_status()
    finally:
        node.save_remembered()  # also when cancelled (a SIGTERM): the next start rejoins
        node._stop()


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
