"""A full donor disk is a clear error response; nothing is lost and the node keeps serving."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from nodemanager import NodeServer, ServerConfig, open_node_client
from nodemanager.errors import HostStorageFull
from nodemanager.node.files import VesselStore
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node
from nodemanager.node.state import NodeState
from seattlecore import KeyPair, load_private
from tests.support.fakes import FakeRunner
from tests.support.nodes import make_spec
from tests.support.tmpfs import small_tmpfs

OWNER, USER = KeyPair.generate(), KeyPair.generate()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs to hold a whole node state directory."""
    with small_tmpfs(tmp_path / "disk", "2m") as mount:
        yield mount


@pytest.fixture
async def port(small_disk: Path, nursery: trio.Nursery) -> AsyncIterator[int]:
    init_node(small_disk, make_spec(OWNER, USER))
    server = NodeServer(keys=load_private(small_disk / f"{NODE_KEY_NAME}.privatekey"),
                        state=NodeState(small_disk / STATE_FILE), store=VesselStore(small_disk),
                        runner=FakeRunner(), config=ServerConfig())
    yield await nursery.start(server.serve, "127.0.0.1", 0)


def fill(disk: Path, leave: int) -> None:
    """Take all but ``leave`` bytes of the disk with a filler file."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


async def test_upload_to_a_full_disk(small_disk: Path, port: int) -> None:
    async with open_node_client("127.0.0.1", port, identity=OWNER) as nm:
        await nm.add_file("v1", "keep.txt", b"old content")
        fill(small_disk, leave=64 * 1024)
        with pytest.raises(HostStorageFull, match="disk is full"):
            await nm.add_file("v1", "keep.txt", b"n" * 500_000)
        assert await nm.retrieve_file("v1", "keep.txt") == b"old content"
        assert list((small_disk / "tmp").iterdir()) == []  # no partial upload left behind
        assert "keep.txt" in await nm.list_files("v1")
