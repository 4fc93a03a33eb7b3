"""Group commit of read-only requests' nonces (nodemanager/node/nonces.py): concurrent
requests on trusted connections share one transaction, and a nonce is still accepted at
most once, also when the same signed frame arrives on many connections at the same moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tests.support import attacker
from tests.support.nodes import Node

CONNECTIONS = 12


def list_files(node: Node) -> bytes:
    return attacker.signed_body("ListFilesInVessel", {"vessel": "v1"}, node.user.seed,
                                node.server.node.raw)[0]


@asynccontextmanager
async def trusted_streams(node: Node) -> AsyncIterator[list[trio.SocketStream]]:
    """CONNECTIONS connections, each trusted by one signed request of the vessels' user."""
    streams = [await attacker.connect(node.port) for _ in range(CONNECTIONS)]
    try:
        for stream in streams:
            assert (await attacker.ask(stream, list_files(node)))["ok"]
        yield streams
    finally:
        for stream in streams:
            await stream.aclose()


async def ask_all(streams: list[trio.SocketStream], frames: list[bytes]) -> list[str | None]:
    """Send frame i on stream i, all at once; the error codes."""
    codes: list[str | None] = [None] * len(frames)

    async def one(index: int) -> None:
        codes[index] = attacker.error_code(await attacker.ask(streams[index], frames[index]))

    async with trio.open_nursery() as nursery:
        for index in range(len(frames)):
            nursery.start_soon(one, index)
    return codes


async def test_concurrent_requests_share_transactions_and_all_nonces_persist(node: Node) -> None:
    async with trusted_streams(node) as streams:
        before, groups = node.server.state.nonce_count(), node.server._nonces.groups
        for _ in range(5):
            frames = [list_files(node) for _ in streams]
            assert await ask_all(streams, frames) == [None] * CONNECTIONS
        assert node.server.state.nonce_count() - before == 5 * CONNECTIONS
        assert node.server._nonces.groups - groups < 5 * CONNECTIONS  # some were grouped


async def test_one_frame_replayed_on_many_connections_at_once_is_accepted_once(
        node: Node) -> None:
    frame = list_files(node)
    async with trusted_streams(node) as streams:
        codes = await ask_all(streams, [frame] * CONNECTIONS)
        assert codes.count(None) == 1
        assert codes.count("ReplayedNonce") == CONNECTIONS - 1
        assert attacker.error_code(await attacker.ask(streams[0], frame)) == "ReplayedNonce"
