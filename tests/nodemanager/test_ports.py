"""Stable ports (nodemanager/node/ports.py, NodeState.ports): a daemon listens where its last
run listened; a taken port is replaced and reported; a damaged record is ignored."""

from __future__ import annotations

import socket
import sqlite3
from functools import partial
from pathlib import Path

import trio

from nodemanager.node.ports import start_on_port
from nodemanager.node.state import NodeState
from tests.support.net import ip

HOST = ip("127.0.0.1")


async def serve(host: str, port: int, *,
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, port, host=host))
        task_status.started(listeners[0].socket.getsockname()[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def test_remembered_port_is_used_when_free_and_replaced_when_taken() -> None:
    remembered = free_port()
    async with trio.open_nursery() as nursery:
        assert await start_on_port(nursery, serve, HOST, 0, remembered, "test") == (remembered, False)
        # taken now (by the first): the second gets another port and says it moved
        bound, moved = await start_on_port(nursery, serve, HOST, 0, remembered, "test")
        assert moved and bound not in (0, remembered)
        # an explicit port wins over the remembered one
        explicit = free_port()
        assert await start_on_port(nursery, serve, HOST, explicit, remembered, "test") == (explicit, False)
        assert (await start_on_port(nursery, serve, HOST, 0, None, "test"))[1] is False
        nursery.cancel_scope.cancel()


def test_ports_are_kept_in_the_state_and_bad_records_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with NodeState(path) as state:
        state.set_port("tcp", 4321)
        state.set_port("relay", 4322)
    with NodeState(path) as state:
        assert state.ports == {"tcp": 4321, "relay": 4322}
    for junk in ("not json", "[1, 2]", '{"tcp": "x", "relay": 70000, "dht": 5}'):
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'ports'", (junk,))
        with NodeState(path) as state:
            assert state.ports == ({"dht": 5} if "dht" in junk else {})
