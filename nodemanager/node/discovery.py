"""The node manager's side of discovery: one DHT node plus the overlay ``Announcer``.

The daemon runs ``serve_discovery`` in its nursery. It starts a DHT node (bootstrapping from
the configured peers), announces the (vessel, key) pairs that ``NodeServer.advert_entries``
lists, and re-announces at once whenever the server's advert generation changes
(ChangeAdvertise, ChangeUsers, ChangeOwner, Split, Join, and the donor pausing or resuming
the vessels: ``advert_tags`` puts the pause reason into every advert that carries no pool
tag, docs/overlay.md "Donor tags").

Nothing the DHT does may end the daemon: the announcer logs and counts every failure of a
round (``Announcer.announce_now``), the DHT node's upkeep does the same, and every answer a
peer sends is validated before use (overlay.answers). Only cancellation stops these tasks.

On a clean stop (the daemon's nursery is cancelled: SIGTERM, SIGINT, uninstall) the node
withdraws its adverts before leaving: tombstones with a higher ``seq`` that expire when the
old records would have, published within ``WITHDRAW_GRACE`` seconds, so lookups drop the
node's vessels at once instead of after the advert TTL. A killed node's records age out.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from nodemanager.nat.autonat import dht_client_mode
from nodemanager.nat.reachability import ReachabilityBoard
from nodemanager.node.poolservice import DirectoryBridge
from nodemanager.node.server import NodeServer
from overlay import Announcer, DhtConfig, DhtNode, dht_loop, open_dht_node, parse_hostport
from overlay.advert import donor_tag
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

WITHDRAW_GRACE = 3.0
"""Seconds a stopping node spends publishing its withdrawals."""


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Where the DHT node listens, whom it bootstraps from, what address it advertises."""

    host: str
    port: int
    bootstrap: tuple[tuple[str, int], ...]
    advertised_address: str
    state_dir: Path | None = None
    resolve_address: Callable[[], Awaitable[str]] | None = None
    """If set, awaited once the DHT node runs; its answer replaces ``advertised_address``
    (the node manager asks peers which address they see it at: nodemanager/nat/observe.py)."""
    start_as_client: bool = False
    """Start the DHT node in client mode (reachability not known yet: docs/nat.md)."""
    dialback_sink: Callable[[bytes], None] | None = None
    """Where the DHT node's ``dialback`` nonces go (the reachability prober's inbox)."""


DhtService = Callable[[DhtNode], Awaitable[None]]
"""A task that needs the DHT node (e.g. the updater); it runs inside the DHT's loop."""


async def serve_discovery(
    server: NodeServer,
    keys: KeyPair,
    config: DiscoveryConfig,
    *,
    services: Sequence[DhtService] = (),
    board: ReachabilityBoard | None = None,
    task_status: trio.TaskStatus[DhtNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the DHT node, the announcer and ``services`` until cancelled; ``started(dht_node)``.
    With ``board``, re-announce whenever the node's reachability changes."""
    dht_config = DhtConfig(host=config.host, port=config.port, bootstrap=config.bootstrap,
                           state_dir=config.state_dir, start_as_client=config.start_as_client,
                           dialback_sink=config.dialback_sink)
    # The trio_asyncio loop is task-scoped: the announcer must run inside ``dht_loop``.
    async with dht_loop(), open_dht_node(dht_config) as node, trio.open_nursery() as nursery:
        task_status.started(node)
        address = config.advertised_address
        if config.resolve_address is not None:
            address = await config.resolve_address()
        announcer = Announcer(node, keys, address)
        announcer.update(server.advert_entries(), relays=server.relays, tags=advert_tags(server))
        if server.pool is not None:  # the pool counts leases through the DHT (docs/pool.md)
            bridge = DirectoryBridge()
            nursery.start_soon(bridge.serve, node)
            server.pool.attach(bridge, address, announcer.next_seq)
        await nursery.start(announcer.run)
        log.info("DHT node on %s:%d announcing %s", config.host, node.port, address)
        for service in services:
            nursery.start_soon(service, node)
        if board is not None:
            nursery.start_soon(reannounce_on_change, board, announcer, server.reannounce)
        nursery.start_soon(reannounce_on_growth, node, announcer)
        try:
            await follow_changes(server, announcer)
        finally:
            if server.pool is not None:
                server.pool.attach(None)
            nursery.cancel_scope.cancel()
            await withdraw(announcer)


def advert_tags(server: NodeServer) -> dict[tuple[str, PublicKey], bytes]:
    """Each advertised pair's tag: the pool's where it has one, else the donor's pause reason
    while the donor has paused the node (no tag while it runs)."""
    tags: dict[tuple[str, PublicKey], bytes] = {}
    if server.donor_paused is not None:
        tag = donor_tag(server.donor_paused)
        tags = dict.fromkeys(server.advert_entries(), tag)
    tags.update(server.advert_tags())
    return tags


async def withdraw(announcer: Announcer) -> None:
    """Publish the withdrawals of every advert, even while being cancelled (bounded)."""
    with trio.CancelScope(shield=True), trio.move_on_after(WITHDRAW_GRACE) as scope:
        result = await announcer.withdraw_all()
        if result is not None:
            log.info("withdrew adverts under %d user keys (%d stores accepted)",
                     result.keys, result.stores_accepted)
    if scope.cancelled_caught:
        log.warning("withdrawing adverts took over %.0f s; the rest will age out", WITHDRAW_GRACE)


async def follow_changes(server: NodeServer, announcer: Announcer) -> None:
    """Re-announce whenever the set of advertised (vessel, key) pairs may have changed."""
    seen = server.advert_generation
    while True:
        seen = await server.wait_advert_changed(seen)
        announcer.update(server.advert_entries(), relays=server.relays, tags=advert_tags(server))


async def follow_reachability(board: ReachabilityBoard, node: DhtNode, can_probe: bool) -> None:
    """Keep the DHT node in client mode exactly while ``dht_client_mode`` says so."""
    while True:
        seen = board.generation
        try:
            await node.set_client_mode(dht_client_mode(board.state.udp, can_probe))
        except Exception:  # nothing from the network may end this task
            log.exception("switching the DHT mode failed")
        await board.wait_changed(seen)


async def reannounce_on_change(board: ReachabilityBoard, announcer: Announcer,
                               refresh: Callable[[], None] | None = None) -> None:
    """Publish again whenever the reachability board changes: adverts published while this
    node was a DHT client, or while few peers were servers yet (all start as clients until
    proven reachable), went to the few servers there were; now there are more. ``refresh``
    (the server's ``reannounce``) rebuilds the entries, whose pool tags name the reachability."""
    seen = board.generation
    decided = _decision(board)
    while True:
        seen = await board.wait_changed(seen)
        if _decision(board) != decided:  # not for a new reason line alone
            decided = _decision(board)
            announcer.wake()
            if refresh is not None:  # pool adverts carry the reachability (docs/pool.md)
                refresh()


GROWTH_CHECK_EVERY = 1.0


def table_grew(published_at: int, now: int) -> bool:
    """Has the routing table at least doubled since the last growth-triggered announce? (pure)"""
    return now >= 2 * max(published_at, 1)


async def reannounce_on_growth(node: DhtNode, announcer: Announcer) -> None:
    """Publish again each time the routing table has doubled. While a network starts (many
    nodes at once, servers appearing as peers prove them reachable), adverts published early
    went to the few servers there were, and the nodes closest to their keys change with every
    doubling; once the network is steady this never fires (a table doubles about log2 N times)."""
    size = len(node.contact_addresses())
    while True:
        await trio.sleep(GROWTH_CHECK_EVERY)
        now = len(node.contact_addresses())
        if table_grew(size, now):
            size = now
            announcer.wake()


def _decision(board: ReachabilityBoard) -> tuple[object, ...]:
    state = board.state
    return state.tcp, state.udp, state.observed


async def stop_on_signals(scope: trio.CancelScope) -> None:
    """Turn SIGTERM and SIGINT into a clean stop: cancel ``scope`` (the daemon's nursery)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("got %s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


def bootstrap_pairs(peers: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``["host:port", ...]`` to address pairs (already validated by the CLI)."""
    return tuple(parse_hostport(peer) for peer in peers)
