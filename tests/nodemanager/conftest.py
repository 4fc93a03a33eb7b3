"""Fixtures: a node manager on a loopback port with an in-memory program runner (tests/support/nodes.py)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from nodemanager import NodeServer, ServerConfig
from nodemanager.nat.autonat import Kind
from nodemanager.nat.prober import DialBackInbox
from nodemanager.node.files import VesselStore
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node
from nodemanager.node.state import NodeState
from seattlecore import KeyPair, load_private
from tests.support.fakes import FakeRunner
from tests.support.nodes import Node, make_spec


@pytest.fixture
def keys() -> tuple[KeyPair, KeyPair, KeyPair]:
    return KeyPair.generate(), KeyPair.generate(), KeyPair.generate()


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(idle_timeout=5.0, frame_timeout=2.0, send_timeout=2.0)


@pytest.fixture
async def node(
    tmp_path: Path, nursery: trio.Nursery, keys: tuple[KeyPair, KeyPair, KeyPair],
    server_config: ServerConfig,
) -> AsyncIterator[Node]:
    owner, user, stranger = keys
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis re-runs this fixture
    init_node(tmp_path, make_spec(owner, user))
    runner = FakeRunner()
    state = NodeState(tmp_path / STATE_FILE)
    dial_backs = DialBackInbox()
    server = NodeServer(keys=load_private(tmp_path / f"{NODE_KEY_NAME}.privatekey"),
                        state=state, store=VesselStore(tmp_path), runner=runner,
                        config=server_config, dial_back_sink=dial_backs.sink(Kind.TCP))
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    yield Node(server=server, port=port, directory=tmp_path, runner=runner,
               owner=owner, user=user, stranger=stranger, dial_backs=dial_backs)
