"""The real daemon process: CLI init, restart, kill -9 during uploads and splits."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
import trio

from nodemanager import ConnectionFailed, NodeClient, RequestError, open_node_client
from nodemanager.proto import messages
from sandbox import total
from tests.support.daemons import read_port
from tests.support.files import traversable
from tests.support.nodes import init_owned, lone_daemon
from tests.support.polling import eventually
from tests.support.worlds import OWNER

pytestmark = pytest.mark.slow

async def node_total(nm: NodeClient) -> object:
    info = await nm.get_vessels()
    tables = [await nm.get_vessel_resources(v.name) for v in info.vessels]
    raw = await nm.call(messages.GetOffcutResources())
    offcut = await nm.get_offcut_resources()
    return total([*tables, *[offcut] * raw["held"]]), sorted(v.name for v in info.vessels)


async def test_init_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "node"
    node_key = init_owned(state)
    async with lone_daemon(state) as process:
        async with open_node_client("127.0.0.1", read_port(state), identity=OWNER) as nm:
            info = await nm.get_vessels()
            assert info.node.to_text() == node_key
            assert [v.owner_info for v in info.vessels] == ["", "second"]
            await nm.add_file("v1", "keep.txt", b"kept")
        process.send_signal(signal.SIGTERM)
    async with lone_daemon(state), open_node_client("127.0.0.1", read_port(state), identity=OWNER) as nm:
        assert await nm.retrieve_file("v1", "keep.txt") == b"kept"
        assert (await nm.get_node_status()).vessels == 2
    assert (state / "nodemanager.log").read_text().count("listening") >= 2


async def test_kill_during_uploads(tmp_path: Path) -> None:
    rng = random.Random(7)
    state = tmp_path / "node"
    init_owned(state)
    acknowledged = 0
    size = 400_000
    for round_ in range(3):
        async with lone_daemon(state) as process:
            async def uploads() -> None:
                nonlocal acknowledged
                try:
                    async with open_node_client("127.0.0.1", read_port(state), identity=OWNER,
                                                timeout=5) as nm:
                        version = acknowledged
                        while True:
                            version += 1
                            await nm.add_file("v1", "data", bytes([version % 256]) * size)
                            acknowledged = version
                except (ConnectionFailed, OSError):
                    pass
            async with trio.open_nursery() as nursery:
                before = acknowledged
                nursery.start_soon(uploads)
                # a loaded machine may be slow to take the first one
                await eventually(lambda b=before: acknowledged != b, timeout=60, interval=0.01)
                await trio.sleep(rng.random() * 0.3)  # kill at a moment of the upload stream
                process.kill()
        async with lone_daemon(state), open_node_client("127.0.0.1", read_port(state), identity=OWNER) as nm:
            data = await nm.retrieve_file("v1", "data")
            assert len(data) == size and len(set(data)) == 1, "no torn upload"
            assert data[0] in {acknowledged % 256, (acknowledged + 1) % 256}, "nothing lost"
        assert list((state / "tmp").iterdir()) == []
        assert acknowledged > round_


async def test_kill_during_splits_and_joins(tmp_path: Path) -> None:
    rng = random.Random(8)
    state = tmp_path / "node"
    init_owned(state)
    async with lone_daemon(state), open_node_client("127.0.0.1", read_port(state), identity=OWNER) as nm:
        before, _ = await node_total(nm)
    piece = "resource cpu 0.01\nresource memory 1000000\nresource diskused 100000\n"
    for _ in range(3):
        async with lone_daemon(state) as process:
            async def churn() -> None:
                try:
                    async with open_node_client("127.0.0.1", read_port(state), identity=OWNER,
                                                timeout=5) as nm:
                        while True:
                            names = [v.name for v in (await nm.get_vessels()).vessels]
                            try:
                                if len(names) < 6:
                                    await nm.split_vessel(names[0], piece)
                                else:
                                    await nm.join_vessels(names[-2], names[-1])
                            except RequestError:
                                await nm.join_vessels(names[0], names[1])
                except (ConnectionFailed, OSError):
                    pass
            async with trio.open_nursery() as nursery:
                nursery.start_soon(churn)
                await trio.sleep(0.2 + rng.random() * 0.3)  # kill mid-churn
                process.kill()
        async with lone_daemon(state), open_node_client("127.0.0.1", read_port(state), identity=OWNER) as nm:
            after, names = await node_total(nm)
            assert after == before, "resources conserved across kill -9"
        assert sorted(p.name for p in (state / "vessels").iterdir()) == names


async def test_daemon_runs_programs_in_the_sandbox(tmp_path: Path) -> None:
    traversable(tmp_path)
    state = tmp_path / "node"
    init_owned(state)
    async with lone_daemon(state, sandbox=True), open_node_client(
        "127.0.0.1", read_port(state), identity=OWNER
    ) as nm:
        await nm.add_file("v2", "tick.py", b"log('tick', callargs[0])\nsleep(30)\n")
        assert await nm.start_vessel("v2", "tick.py", ["7"]) == "Started"
        async def ticked() -> bool:
            return b"tick 7" in await nm.read_log("v2")

        await eventually(ticked, timeout=20, interval=0.05)
        assert await nm.stop_vessel("v2") == "Stopped"
