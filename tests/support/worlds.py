"""Small worlds several test packages share: DHT node managers with two vessels of ``OWNER``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from sandbox import parse_resources
from seattlecore import KeyPair
from tests.support.daemons import init_node, node_manager

SMALL = parse_resources(
    "resource cpu 0.2\nresource memory 100000000\nresource diskused 2000000\n"
    "resource events 20\nresource filewrite 100000\nresource fileread 100000\n"
    "resource filesopened 10\nresource lograte 30000\nresource insockets 5\n"
    "resource outsockets 5\nresource messport 63100\nresource messport 63101\n"
    "resource connport 63100\nresource connport 63101\n"
)
"""The resources of every vessel in these worlds (ports 63100-63101)."""

OWNER = KeyPair.generate()
FRIEND = KeyPair.generate()


def init(state: Path) -> None:
    init_node(state, {"vessels": [{"owner": OWNER.public.to_text(), "resources": SMALL.to_text()}
                                  for _ in range(2)]})


@asynccontextmanager
async def daemon(state: Path, bootstrap: list[str],
                 host: str = "127.0.0.1") -> AsyncIterator[tuple[int, int, trio.Process]]:
    """Start a node manager with DHT on ``host``; yield (tcp port, dht port, process)."""
    async with node_manager(state, bootstrap=bootstrap, extra=["--listen", f"{host}:0"]) as nm:
        assert nm.dht_port is not None
        yield nm.port, nm.dht_port, nm.process


