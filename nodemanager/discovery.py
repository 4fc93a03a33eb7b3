"""The node manager's side of discovery: one DHT node plus the overlay ``Announcer``.

The daemon runs ``serve_discovery`` in its nursery. It starts a DHT node (bootstrapping from
the configured peers), announces the (vessel, key) pairs that ``NodeServer.advert_entries``
lists, and re-announces at once whenever the server's advert generation changes
(ChangeAdvertise, ChangeUsers, ChangeOwner, Split, Join). Cancelling it withdraws nothing
explicitly: a stopped node's records age out at their expiry (overlay.ADVERT_TTL).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from nodemanager.server import NodeServer
from overlay import Announcer, DhtConfig, DhtNode, dht_loop, open_dht_node, parse_hostport
from seattlecore import KeyPair

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Where the DHT node listens, whom it bootstraps from, what address it advertises."""

    host: str
    port: int
    bootstrap: tuple[tuple[str, int], ...]
    advertised_address: str
    state_dir: Path | None = None


DhtService = Callable[[DhtNode], Awaitable[None]]
"""A task that needs the DHT node (e.g. the updater); it runs inside the DHT's loop."""


async def serve_discovery(
    server: NodeServer,
    keys: KeyPair,
    config: DiscoveryConfig,
    *,
    services: Sequence[DhtService] = (),
    task_status: trio.TaskStatus[DhtNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the DHT node, the announcer and ``services`` until cancelled; ``started(dht_node)``."""
    dht_config = DhtConfig(host=config.host, port=config.port, bootstrap=config.bootstrap,
                           state_dir=config.state_dir)
    # The trio_asyncio loop is task-scoped: the announcer must run inside ``dht_loop``.
    async with dht_loop(), open_dht_node(dht_config) as node, trio.open_nursery() as nursery:
        announcer = Announcer(node, keys, config.advertised_address)
        announcer.update(server.advert_entries())
        await nursery.start(announcer.run)
        log.info("DHT node on %s:%d announcing %s", config.host, node.port,
                 config.advertised_address)
        task_status.started(node)
        for service in services:
            nursery.start_soon(service, node)
        await follow_changes(server, announcer)


async def follow_changes(server: NodeServer, announcer: Announcer) -> None:
    """Re-announce whenever the set of advertised (vessel, key) pairs may have changed."""
    seen = server.advert_generation
    while True:
        seen = await server.wait_advert_changed(seen)
        announcer.update(server.advert_entries())


def bootstrap_pairs(peers: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``["host:port", ...]`` to address pairs (already validated by the CLI)."""
    return tuple(parse_hostport(peer) for peer in peers)
