"""End to end with the real sandbox supervisor: upload, start, log, stop."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nodemanager import NodeServer, ServerConfig, open_node_client
from nodemanager.node.files import VesselStore
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node
from nodemanager.node.state import NodeState
from sandbox import Supervisor
from seattlecore import KeyPair, load_private
from tests.support.files import traversable
from tests.support.nodes import make_spec, wait_log
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

PROGRAM = b"""
log('hello from', callargs[0])
while True:
    sleep(0.05)
"""


async def test_program_runs_in_the_sandbox(tmp_path: Path) -> None:
    owner, user = KeyPair.generate(), KeyPair.generate()
    traversable(tmp_path)
    init_node(tmp_path, make_spec(owner, user))
    with NodeState(tmp_path / STATE_FILE) as state:
        async with Supervisor.open() as supervisor, trio.open_nursery() as nursery:
            server = NodeServer(keys=load_private(tmp_path / f"{NODE_KEY_NAME}.privatekey"),
                                state=state, store=VesselStore(tmp_path), runner=supervisor,
                                config=ServerConfig())
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            async with open_node_client("127.0.0.1", port, identity=user) as nm:
                await nm.add_file("v1", "hello.py", PROGRAM)
                assert await nm.start_vessel("v1", "hello.py", ["world"]) == "Started"
                log = await wait_log(nm, "v1", b"hello from world")
                assert log.startswith(b"hello from world")
                assert (await nm.get_vessels()).vessels[0].status == "Started"
                assert await nm.stop_vessel("v1") == "Stopped"
                assert b"hello from world" in await nm.read_log("v1")
                assert server.state.vessels["v1"].status == "Stopped"
                # a program that ends by itself is recorded as Terminated
                await nm.add_file("v1", "short.py", b"log('bye')\n")
                await nm.start_vessel("v1", "short.py")
                async def ended() -> bool:
                    return (await nm.get_vessels()).vessels[0].status != "Started"

                await eventually(ended, timeout=20, interval=0.05)
                info = (await nm.get_vessels()).vessels[0]
                assert info.status == "Terminated", info
                assert b"bye" in await nm.read_log("v1")
                assert await nm.reset_vessel("v1") == "Fresh"
                assert await nm.read_log("v1") == b""
            nursery.cancel_scope.cancel()
