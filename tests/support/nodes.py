"""Node managers for the daemon tests: in-process servers (``Node``) and lone daemon processes.

``Node`` is what the ``node`` fixture (tests/nodemanager/conftest.py) yields: a ``NodeServer``
on a loopback port with an in-memory program runner. ``init_owned`` and ``lone_daemon`` set up
and run a real ``seattle-nodemanager`` process whose DHT has no peer (control plane only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from nodemanager import NodeClient, NodeServer, open_node_client
from nodemanager.nat.prober import DialBackInbox
from nodemanager.node.model import Vessel
from nodemanager.node.spec import NodeSpec
from sandbox import DEFAULT_OFFCUT
from seattlecore import KeyPair
from tests.support.daemons import init_node, node_manager
from tests.support.fakes import FakeRunner
from tests.support.polling import eventually
from tests.support.worlds import OWNER, SMALL


@dataclass
class Node:
    server: NodeServer
    port: int
    directory: Path
    runner: FakeRunner
    owner: KeyPair
    user: KeyPair
    stranger: KeyPair
    dial_backs: DialBackInbox
    """Where the server's DialBack tokens go (give it to a ``Prober``)."""

    def client(self, identity: KeyPair | None = None,
               **kwargs: object) -> AbstractAsyncContextManager[NodeClient]:
        return open_node_client("127.0.0.1", self.port, identity=identity,
                                node_key=kwargs.pop("node_key", self.server.node),  # type: ignore[arg-type]
                                **kwargs)  # type: ignore[arg-type]


def make_spec(owner: KeyPair, user: KeyPair, count: int = 2) -> NodeSpec:
    vessels = tuple(
        Vessel(name=f"v{i}", owner=owner.public, users=(user.public,), resources=SMALL)
        for i in range(1, count + 1)
    )
    return NodeSpec(vessels=vessels, offcut=DEFAULT_OFFCUT)


def init_owned(state: Path) -> str:
    """Two vessels of ``OWNER`` (the second with owner information "second"); the node key."""
    return init_node(state, {"vessels": [
        {"owner": OWNER.public.to_text(), "resources": SMALL.to_text()},
        {"owner": OWNER.public.to_text(), "resources": SMALL.as_dict(), "owner_info": "second"}]})


@asynccontextmanager
async def lone_daemon(state: Path, sandbox: bool = False,
                      extra: Sequence[str] = ()) -> AsyncIterator[trio.Process]:
    """The daemon on ``state``, its DHT bootstrapping from a port nobody answers on."""
    async with node_manager(state, bootstrap=["127.0.0.1:9999"], sandbox=sandbox,
                            wait_dht=False, extra=extra) as nm:
        yield nm.process


async def wait_log(nm: NodeClient, vessel: str, needle: bytes, timeout: float = 30) -> bytes:
    """The vessel's log once it holds ``needle``."""
    async def logged() -> bytes | None:
        log = await nm.read_log(vessel)
        return log if needle in log else None

    return await eventually(logged, timeout=timeout, interval=0.05, what=f"{needle!r} in {vessel}'s log")


async def wait_stopped(nm: NodeClient, vessel: str, timeout: float = 30) -> str:
    """The vessel's status once its program has ended (a log line can come before the exit)."""
    async def stopped() -> str | None:
        (status,) = [v.status for v in (await nm.get_vessels()).vessels if v.name == vessel]
        return None if status == "Started" else status

    return await eventually(stopped, timeout=timeout, interval=0.05, what=f"{vessel} stopped")
