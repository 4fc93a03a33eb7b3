"""In-process relays and relay clients on loopback for the relay tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from nodemanager.nat.reachability import Reach, ReachabilityBoard, pinned
from nodemanager.nat.relay import RelayServer
from nodemanager.nat.relayclient import RelayClient, RelayClientConfig
from nodemanager.nat.relaycore import RelayLimits
from seattlecore import KeyPair
from tests.support.polling import eventually


@dataclass
class Echo:
    """A stand-in node manager: echoes every byte, records the claimed sources."""

    sources: list[str] = field(default_factory=list)

    async def __call__(self, stream: trio.abc.Stream, source: str) -> None:
        self.sources.append(source)
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)


@asynccontextmanager
async def running_relay(limits: RelayLimits | None = None,
                        host: str = "127.0.0.1") -> AsyncIterator[tuple[RelayServer, str]]:
    relay = RelayServer(KeyPair.generate(), limits)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(relay.serve, host, 0)
        yield relay, f"{host}:{port}"
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def private_node(relays: Sequence[str], *, want: int = 1,
                       config: RelayClientConfig | None = None
                       ) -> AsyncIterator[tuple[RelayClient, Echo]]:
    """A relay client pinned private, holding reservations at ``relays``, serving ``Echo``."""
    echo = Echo()
    board = ReachabilityBoard(pinned(Reach.PRIVATE))
    client = RelayClient(KeyPair.generate(), echo, board, static=relays,
                         config=config or RelayClientConfig(want=want, retry_after=0.5,
                                                            check_interval=0.2))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        yield client, echo
        nursery.cancel_scope.cancel()


async def wait_held(client: RelayClient, count: int, timeout: float = 10.0) -> None:
    await eventually(lambda: len(client.held) >= count, timeout=timeout, interval=0.02)


async def echo_once(stream: trio.abc.Stream, data: bytes) -> bytes:
    await stream.send_all(data)
    got = b""
    with trio.fail_after(5):
        while len(got) < len(data):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            got += chunk
    return got
