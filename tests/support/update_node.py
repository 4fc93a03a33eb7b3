"""An update service inside a real in-process node server, for the update tests.

``start_node`` gives a ``NodeServer`` on loopback whose ``GetNodeStatus`` carries the
``UpdateService``'s status, with holders found through a ``FakeDirectory``;
``holder_advert`` is a holder's advert on the update channel.
"""

from __future__ import annotations

import time
from pathlib import Path

import trio

from nodemanager import NodeServer
from nodemanager.node.files import VesselStore
from nodemanager.node.sources import UPDATES, StatusSources
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node
from nodemanager.node.state import NodeState
from nodemanager.updates.holders import FetchPolicy
from nodemanager.updates.updatecore import advert_name, channel_key
from nodemanager.updates.updater import RecordingRunner, UpdateConfig, UpdateService
from overlay import FakeDirectory, make_advert
from seattlecore import KeyPair, load_private
from tests.support.fakes import FakeRunner
from tests.support.nodes import make_spec


async def start_node(tmp_path: Path, nursery: trio.Nursery, anchor: bytes,
                     directory: FakeDirectory, policy: FetchPolicy | None = None,
                     ) -> tuple[NodeServer, UpdateService, list[bool], int]:
    owner, user = KeyPair.generate(), KeyPair.generate()
    init_node(tmp_path / "state", make_spec(owner, user))
    keys = load_private(tmp_path / "state" / f"{NODE_KEY_NAME}.privatekey")
    runner = RecordingRunner(FakeRunner())
    sources = StatusSources()
    server = NodeServer(keys=keys, state=NodeState(tmp_path / "state" / STATE_FILE),
                        store=VesselStore(tmp_path / "state"), runner=runner, status=sources)
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    updates = tmp_path / "prefix" / "updates"
    updates.mkdir(parents=True)
    (updates / "root.json").write_bytes(anchor)
    restarts: list[bool] = []
    config = UpdateConfig(updates=updates, interval=3600, need_dht=False,
                          policy=policy or FetchPolicy())
    service = UpdateService(config, server,
                            keys, lambda: restarts.append(True), node_port=port, runner=runner,
                            directory=directory)
    sources.provide(UPDATES, service.status_dict)
    await nursery.start(service.run)
    return server, service, restarts, port


def holder_advert(address: str, version: str, anchor: bytes) -> bytes:
    return make_advert(KeyPair.generate(), address=address, vessel=advert_name(version),
                       user_key=channel_key(anchor), seq=1, expires_at=time.time() + 600)


