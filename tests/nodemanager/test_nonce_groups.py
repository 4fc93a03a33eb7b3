"""Group commit of read-only requests' nonces (nodemanager/node/nonces.py): concurrent
requests share one transaction, and a nonce is still accepted at most once, also when the
same signed frame arrives on many connections at the same moment."""

from __future__ import annotations

import trio

from tests.support import attacker
from tests.support.nodes import Node

CONNECTIONS = 12


async def ask_all(node: Node, frames: list[bytes]) -> list[str | None]:
    """Send each frame on a connection of its own, all at once; the error codes."""
    streams = [await attacker.connect(node.port) for _ in frames]
    codes: list[str | None] = [None] * len(frames)
    ready = trio.Event()

    async def one(index: int) -> None:
        await ready.wait()
        codes[index] = attacker.error_code(await attacker.ask(streams[index], frames[index]))

    async with trio.open_nursery() as nursery:
        for index in range(len(frames)):
            nursery.start_soon(one, index)
        await trio.sleep(0.05)
        ready.set()
    for stream in streams:
        await stream.aclose()
    return codes


def list_files(node: Node) -> tuple[bytes, bytes]:
    return attacker.signed_body("ListFilesInVessel", {"vessel": "v1"}, node.user.seed,
                                node.server.node.raw)


async def test_concurrent_requests_share_transactions_and_all_nonces_persist(node: Node) -> None:
    before, groups = node.server.state.nonce_count(), node.server._nonces.groups
    for _ in range(5):
        frames = [list_files(node)[0] for _ in range(CONNECTIONS)]
        assert await ask_all(node, frames) == [None] * CONNECTIONS
    assert node.server.state.nonce_count() - before == 5 * CONNECTIONS
    assert node.server._nonces.groups - groups < 5 * CONNECTIONS  # some were grouped


async def test_one_frame_replayed_on_many_connections_at_once_is_accepted_once(
        node: Node) -> None:
    frame, nonce = list_files(node)
    codes = await ask_all(node, [frame] * CONNECTIONS)
    assert codes.count(None) == 1
    assert codes.count("ReplayedNonce") == CONNECTIONS - 1
    async with await attacker.connect(node.port) as stream:  # and later too
        assert attacker.error_code(await attacker.ask(stream, frame)) == "ReplayedNonce"
