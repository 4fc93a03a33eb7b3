"""The updater inside a real node server (in-process): discovery through the DHT seam,
status in the signed GetNodeStatus, programs restarted with their arguments, and a mirror
that survives hostile clients.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import msgpack
import pytest
import trio

from installer.release.tufrepo import add_release, init_repository
from nodemanager import NodeServer, open_node_client
from nodemanager.errors import MirrorError, UpdateError
from nodemanager.node.files import VesselStore
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node
from nodemanager.node.state import NodeState
from nodemanager.updates.mirror import Download, MirrorServer, check_path
from nodemanager.updates.updatecore import (
    Release,
    channel_key,
    decide,
    decode_release,
    is_newer,
    next_delay,
)
from nodemanager.updates.updater import UpdateConfig, UpdateService, running_version
from overlay import AdvertStore, FakeDirectory
from seattlecore import KeyPair, load_private
from tests.support.fakes import FakeRunner
from tests.support.nodes import make_spec
from tests.support.polling import eventually
from tests.support.update_node import holder_advert, start_node


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path, bytes]:
    root = init_repository(tmp_path / "repo", tmp_path / "root-keys", tmp_path / "keys")
    wheel = tmp_path / "demo-9-py3-none-any.whl"
    wheel.write_bytes(os.urandom(2000))
    import platform
    import sys
    add_release(tmp_path / "repo", tmp_path / "keys",
                Release(version="9", wheels=(wheel.name,), python=f"{sys.version_info.major}."
                        f"{sys.version_info.minor}", machine=platform.machine(), published=1.0),
                [wheel])
    return tmp_path / "repo", tmp_path / "keys", root.read_bytes()


async def test_holders_come_from_the_dht_and_status_tells_the_result(
        tmp_path: Path, repo: tuple[Path, Path, bytes]) -> None:
    repo_dir, _, anchor = repo
    directory = FakeDirectory(AdvertStore())
    async with trio.open_nursery() as nursery:
        holder = MirrorServer(repo_dir)
        holder_port = await nursery.start(holder.serve)
        _, service, restarts, port = await start_node(tmp_path, nursery, anchor, directory)
        # nobody holds anything yet: a clear failure, nothing staged
        assert await service.check_now() is None
        assert "no update source" in service.status.last_result
        await directory.publish([holder_advert(f"127.0.0.1:{holder_port}", "9", anchor)])
        result = await service.check_now()
        assert result is not None and result.decision == "install"
        assert holder.stats.files >= 4  # timestamp, snapshot, targets, record, wheel
        # staging needs a managed prefix; here it fails, and the node keeps running
        assert "staging 9 failed" in service.status.last_result and not restarts
        async with open_node_client("127.0.0.1", port) as client:
            status = await client.get_node_status()
        assert status.updates is not None
        assert status.updates["running"] == running_version()
        assert status.updates["latest_verified"] == "9"
        assert "staging 9 failed" in status.updates["last_result"]
        # the node now mirrors what it verified, and advertises that it does
        adverts = (await directory.lookup(channel_key(anchor))).candidates
        assert {a.vessel for a in adverts} == {"sw-9"} and len(adverts) == 2
        saved = json.loads((tmp_path / "prefix" / "updates" / "status.json").read_text())
        assert saved["latest_verified"] == "9"
        nursery.cancel_scope.cancel()


async def test_programs_are_restarted_with_their_arguments(
        tmp_path: Path, repo: tuple[Path, Path, bytes]) -> None:
    _, _, anchor = repo
    updates = tmp_path / "prefix" / "updates"
    updates.mkdir(parents=True)
    async with trio.open_nursery() as nursery:
        owner, user = KeyPair.generate(), KeyPair.generate()
        init_node(tmp_path / "state", make_spec(owner, user))
        state = NodeState(tmp_path / "state" / STATE_FILE)
        vessel = state.vessels["v1"]
        state.record_status("v1", "Started")  # the previous life ran a program here
        (updates / "resume.json").write_text(json.dumps(
            [{"vessel": "v1", "program": "tick.py", "args": ["a", "b c"]}]))
        fake = FakeRunner()
        server = NodeServer(keys=load_private(tmp_path / "state" / f"{NODE_KEY_NAME}.privatekey"),
                            state=state, store=VesselStore(tmp_path / "state"), runner=fake)
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        (server.store.directory("v1") / "tick.py").write_text("log('x')\n")
        (updates / "root.json").write_bytes(anchor)
        service = UpdateService(UpdateConfig(updates=updates, interval=3600, need_dht=False),
                                server, server.keys, lambda: None, node_port=port)
        await service.resume_programs()
        assert [(v, p, a) for v, p, a, _ in fake.started] == [("v1", "tick.py", ["a", "b c"])]
        assert fake.started[0][3] == vessel.resources
        assert state.vessels["v1"].status == "Started"
        assert not (updates / "resume.json").exists()
        nursery.cancel_scope.cancel()


def test_release_record_round_trips() -> None:
    """The release tooling writes what the updater reads (one definition of the record)."""
    release = Release(version="2.1", wheels=("a-1-py3-none-any.whl",), python="3.11",
                      machine="x86_64", published=1.5)
    assert decode_release(release.to_bytes()) == release
    with pytest.raises(UpdateError):
        decode_release(Release(version="2.x", wheels=release.wheels, python="3.11",
                               machine="x86_64").to_bytes())


def test_policy_rules() -> None:
    assert is_newer("2", "0.1.0") and is_newer("0.10", "0.9") and not is_newer("1.0", "1")
    release = decode_release(json.dumps({"format": "seattle-release-v1", "version": "3",
                                         "wheels": ["a-1-py3-none-any.whl"], "python": "3.11",
                                         "machine": "x86_64"}).encode())
    facts = {"python": "3.11", "machine": "x86_64"}
    assert decide(release, running="2", bad=frozenset(), **facts) == "install"
    assert decide(release, running="3", bad=frozenset(), **facts) == "current"
    assert decide(release, running="4", bad=frozenset(), **facts) == "older"
    assert decide(release, running="2", bad=frozenset({"3"}), **facts) == "bad"
    assert decide(release, running="2", bad=frozenset(), python="3.12", machine="x86_64") == "platform"
    delays = [next_delay(10, random.Random(i)) for i in range(200)]
    assert min(delays) >= 5 and max(delays) < 15 and len(set(delays)) == 200


@pytest.mark.parametrize("path", ["metadata/../../etc/passwd", "targets/../x", "/etc/passwd",
                                  "metadata/.hidden", "other/file", "metadata/a/b/c/d", ""])
def test_mirror_paths_stay_inside(path: str) -> None:
    with pytest.raises(MirrorError):
        check_path(path)


async def raw_exchange(port: int, data: bytes, *, read: bool = True) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        if not read:
            return b""
        out = b""
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                out += chunk
        return out


async def test_mirror_survives_hostile_clients(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "timestamp.json").write_bytes(b"{}")
    (tmp_path / "secret").write_text("not served")
    server = MirrorServer(tmp_path, request_timeout=0.5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        huge = (10**9).to_bytes(4, "big")
        traversal = msgpack.packb({"v": 1, "get": "metadata/../secret"})
        answers = [
            await raw_exchange(port, huge + b"xx"),
            await raw_exchange(port, (5).to_bytes(4, "big") + b"\xc1\xc1\xc1\xc1\xc1"),
            await raw_exchange(port, len(traversal).to_bytes(4, "big") + traversal),
            await raw_exchange(port, b"\x00\x00"),  # then silence: the request timeout ends it
        ]
        assert b"not served" not in b"".join(answers)
        assert b"bad_request" in answers[2]
        download = Download(("127.0.0.1", port), "metadata/timestamp.json")
        assert await download.open() == 2 and await download.chunk() == b"{}"
        await download.aclose()
        await eventually(lambda: server.stats.files == 1, timeout=5, interval=0.01)
        assert server.stats.refused == 3  # oversize frame, garbage, silence
        nursery.cancel_scope.cancel()
