"""Attacks on updates, through the real updater: ngclient over real mirrors on loopback.

The attacker is a mirror written for these tests (``HostileMirror``): it speaks the mirror
protocol, serves the honest repository except for the files it tampers with, and can stream
without end or stall. Each attack is run twice: alone (the node must refuse, keep its
verified state and keep serving it) and next to an honest mirror (the node must exclude the
attacker and still get the release).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import msgpack
import pytest
import trio
from tuf.api.metadata import Metadata, Root

from installer.release.tufrepo import NaclSigner, Repository, add_release, init_repository
from nodemanager.errors import UpdateError
from nodemanager.updates.holders import FetchPolicy
from nodemanager.updates.mirror import Download, MirrorServer, MirrorStore
from nodemanager.updates.tufclient import CheckContext, CheckResult, PeerSource, Source, run_check
from nodemanager.updates.updatecore import Release
from seattlecore import KeyPair
from tests.support.net import closed_port
from tests.support.polling import eventually

ENDLESS = object()
HANG = object()
Behaviour = bytes | object


@dataclass
class World:
    repo: Path
    keys: Path
    anchor: bytes
    node: Path

    def context(self, running: str = "1") -> CheckContext:
        return CheckContext(tuf_dir=self.node / "tuf", store=MirrorStore(self.node / "mirror"),
                            anchor=self.anchor, running=running, python="3.11", machine="x86_64")

    def meta(self, name: str) -> bytes:
        return (self.repo / "metadata" / name).read_bytes()

    def target_name(self, target: str) -> str:
        """The served path of a target of the newest targets metadata."""
        info = Repository(self.repo).latest("targets").signed.targets[target]
        directory, _, base = target.rpartition("/")
        return f"targets/{directory}/{info.hashes['sha256']}.{base}"


def publish(world: World, version: str, now: datetime | None = None) -> None:
    wheel = world.repo.parent / f"demo-{version}-py3-none-any.whl"
    wheel.write_bytes(os.urandom(3000))
    add_release(world.repo, world.keys, Release(version=version, wheels=(wheel.name,), python="3.11",
                                                machine="x86_64", published=1.0), [wheel], now=now)


@pytest.fixture
def world(tmp_path: Path) -> World:
    root = init_repository(tmp_path / "repo", tmp_path / "root-keys", tmp_path / "keys")
    w = World(repo=tmp_path / "repo", keys=tmp_path / "keys", anchor=root.read_bytes(),
              node=tmp_path / "node")
    publish(w, "1")
    return w


class HostileMirror:
    """A mirror that serves the honest repository, except for ``overrides``."""

    def __init__(self, honest: Path, overrides: dict[str, Behaviour]) -> None:
        self.honest = honest
        self.overrides = overrides
        self.requests: list[str] = []
        self.sent = 0
        self.closed_on_us = False

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed_on_us = True  # the node hung up: what a bounded reader does

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                data += chunk
            path = msgpack.unpackb(data[4:], raw=False)["get"]
            self.requests.append(path)
            behaviour = self.overrides.get(path)
            if behaviour is HANG:
                await trio.sleep_forever()
            if behaviour is ENDLESS:
                await self._send({"v": 1, "ok": True, "size": 60 * 1024 * 1024}, stream)
                with trio.move_on_after(30):
                    while True:
                        await stream.send_all(b"A" * 65536)
                        self.sent += 65536
                return
            body = behaviour if isinstance(behaviour, bytes) else self._honest(path)
            if body is None:
                await self._send({"v": 1, "ok": False, "code": "not_found", "message": "no"}, stream)
                return
            await self._send({"v": 1, "ok": True, "size": len(body)}, stream)
            await stream.send_all(body)

    def _honest(self, path: str) -> bytes | None:
        try:
            return (self.honest / path).read_bytes()
        except OSError:
            return None

    async def _send(self, head: dict[str, object], stream: trio.SocketStream) -> None:
        body = msgpack.packb(head)
        await stream.send_all(len(body).to_bytes(4, "big") + body)


async def serve(nursery: trio.Nursery, handler: Callable[[trio.SocketStream], object]) -> tuple[str, int]:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))  # type: ignore[arg-type]
    return ("127.0.0.1", listeners[0].socket.getsockname()[1])


async def check(ctx: CheckContext, sources: list[Source],
                policy: FetchPolicy | None = None) -> CheckResult:
    return await run_check(ctx, sources, policy=policy)


def trusted_timestamp(world: World) -> int:
    return int(json.loads((world.node / "tuf" / "timestamp.json").read_bytes())["signed"]["version"])


def resigned(data: bytes, signer: NaclSigner, edit: Callable[[Metadata[Root]], None]) -> bytes:
    md = Metadata.from_bytes(data)
    edit(md)
    md.signatures.clear()
    md.sign(signer)
    return md.to_bytes()


def tampered_targets(world: World) -> dict[str, Behaviour]:
    """targets metadata whose body changed (an extra target) under the original signature."""
    name = f"{Repository(world.repo).latest('targets').signed.version}.targets.json"
    raw = json.loads(world.meta(name))
    raw["signed"]["targets"]["evil.whl"] = {"length": 1, "hashes": {"sha256": "00" * 32}}
    return {f"metadata/{name}": json.dumps(raw).encode()}


def tampered_wheel(world: World) -> dict[str, Behaviour]:
    path = world.target_name("wheels/demo-2-py3-none-any.whl")
    data = bytearray((world.repo / path).read_bytes())
    data[100] ^= 0xFF
    return {path: bytes(data)}


def endless(path: str) -> Callable[[World], dict[str, Behaviour]]:
    return lambda world: {path: ENDLESS}


def foreign_root(world: World) -> dict[str, Behaviour]:
    """root v2 that rotates every role to the attacker's key, signed only by that key."""
    attacker = NaclSigner(KeyPair.generate())

    def rotate(md: Metadata[Root]) -> None:
        md.signed.version = 2
        for role in ("root", "targets", "snapshot", "timestamp"):
            for keyid in list(md.signed.roles[role].keyids):
                md.signed.revoke_key(keyid, role)
            md.signed.add_key(attacker.public_key, role)
    return {"metadata/2.root.json": resigned(world.meta("1.root.json"), attacker, rotate)}


ATTACKS: dict[str, Callable[[World], dict[str, Behaviour]]] = {
    "tampered target": tampered_wheel,
    "tampered metadata": tampered_targets,
    "root signed by a non-root key": foreign_root,
    "endless timestamp": endless("metadata/timestamp.json"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_attack_alone_is_refused_and_the_node_keeps_its_state(world: World, name: str) -> None:
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        first = await check(world.context(), [honest])  # the node verified release 1
        assert first.release is not None and first.release.version == "1"
        before = trusted_timestamp(world)
        publish(world, "2")
        attacker = HostileMirror(world.repo, ATTACKS[name](world))
        hostile = PeerSource(await serve(nursery, attacker.handle))
        with pytest.raises(UpdateError):
            await check(world.context(), [hostile])
        assert attacker.requests, "the attack was never reached"
        if name == "endless timestamp":
            assert attacker.sent < 2 * 1024 * 1024  # ngclient stopped reading at its cap
            # and the connection was closed on the attacker
            await eventually(lambda: attacker.closed_on_us, timeout=10, interval=0.05)
        # still on release 1's metadata, and still serving it to peers
        assert trusted_timestamp(world) in (before, before + 1)
        mirror = MirrorServer(world.node / "mirror")
        served = Download(await serve(nursery, mirror.handle), "metadata/timestamp.json")
        size = await served.open()
        data = b""
        while chunk := await served.chunk():
            data += chunk
        await served.aclose()
        assert size == len(data) and json.loads(data)["signed"]["_type"] == "timestamp"
        assert not list((world.node / "mirror" / "targets").rglob("*demo-2*"))
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_attacker_next_to_an_honest_peer_is_excluded(world: World, name: str) -> None:
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        await check(world.context(), [honest])
        publish(world, "2")
        overrides = ATTACKS[name](world)
        attacker = HostileMirror(world.repo, overrides)
        hostile = PeerSource(await serve(nursery, attacker.handle))
        # no hedging here: the attacker is asked first and alone, whatever the load
        result = await check(world.context(), [hostile, honest], FetchPolicy(hedge_after=60))
        assert result.release is not None and result.release.version == "2"
        assert result.decision == "install"
        # dropped, unless the honest holder (having won the timestamp race, so asked first
        # for later files) served everything before the attacker was asked for its lie
        assert (result.excluded == (hostile.name,)
                or (result.excluded == () and not set(overrides) & set(attacker.requests)))
        nursery.cancel_scope.cancel()


async def test_replayed_old_timestamp_and_snapshot_are_refused(world: World) -> None:
    old_timestamp = world.meta("timestamp.json")
    old_snapshot = world.meta("2.snapshot.json")
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        publish(world, "2")
        await check(world.context(), [honest])
        assert trusted_timestamp(world) == 3
        replay_ts = PeerSource(await serve(nursery, HostileMirror(
            world.repo, {"metadata/timestamp.json": old_timestamp}).handle))
        with pytest.raises(UpdateError, match="timestamp version 2 is older than the trusted 3"):
            await check(world.context(), [replay_ts])
        publish(world, "3")  # timestamp 4 names snapshot 4: the attacker replays snapshot 2
        replay_snap = PeerSource(await serve(nursery, HostileMirror(
            world.repo, {"metadata/4.snapshot.json": old_snapshot}).handle))
        with pytest.raises(UpdateError, match=r"4\.snapshot\.json: holds snapshot version 2"):
            await check(world.context(), [replay_snap])
        result = await check(world.context(), [honest])
        assert result.release is not None and result.release.version == "3"
        nursery.cancel_scope.cancel()


async def test_expired_timestamp_is_refused(world: World) -> None:
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        await check(world.context(), [honest])
        past = datetime.now(UTC) - timedelta(days=3)
        publish(world, "2", now=past)  # every role signed, but expired a day ago
        with pytest.raises(UpdateError, match="Expired"):
            await check(world.context(), [honest])
        assert not list((world.node / "mirror" / "targets").rglob("*demo-2*"))
        nursery.cancel_scope.cancel()


async def test_hung_mirror_times_out_and_the_next_one_is_used(world: World) -> None:
    publish(world, "2")
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        hang = HostileMirror(world.repo, {"metadata/timestamp.json": HANG})
        stuck = PeerSource(await serve(nursery, hang.handle))
        start = trio.current_time()
        result = await check(world.context(), [stuck, honest], FetchPolicy(base_timeout=0.5))
        assert result.release is not None and result.release.version == "2"
        assert "metadata/timestamp.json" in hang.requests  # asked, timed out, moved on
        assert trio.current_time() - start < 10
        nursery.cancel_scope.cancel()


async def test_no_holder_is_a_clear_failure(world: World, tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="no update source"):
        await check(world.context(), [])
    (tmp_path / "empty").mkdir()
    async with trio.open_nursery() as nursery:
        empty = PeerSource(await serve(nursery, MirrorServer(tmp_path / "empty").handle))
        with pytest.raises(UpdateError, match=r"no holder has metadata/timestamp\.json"):
            await check(world.context(), [empty])
        nursery.cancel_scope.cancel()


async def test_a_dead_peer_does_not_hide_the_others(world: World) -> None:
    """An unreachable holder must not turn the root probe's honest 404 into a failure."""
    publish(world, "2")
    async with trio.open_nursery() as nursery:
        honest = PeerSource(await serve(nursery, MirrorServer(world.repo).handle))
        dead = PeerSource(("127.0.0.1", closed_port()))
        result = await check(world.context(), [dead, honest])
        assert result.release is not None and result.release.version == "2"
        assert result.excluded == ()
        with pytest.raises(UpdateError, match=r"no holder delivered .*unreachable"):
            await check(world.context(), [dead])
        nursery.cancel_scope.cancel()


async def test_local_wheels_are_reused_only_when_their_hash_fits(world: World,
                                                                 tmp_path: Path) -> None:
    publish(world, "2")
    local = tmp_path / "local"
    local.mkdir()
    wheel = world.repo.parent / "demo-2-py3-none-any.whl"
    (local / wheel.name).write_bytes(wheel.read_bytes())
    path = world.target_name("wheels/demo-2-py3-none-any.whl")
    async with trio.open_nursery() as nursery:
        watched = HostileMirror(world.repo, {})  # honest, but it records what it was asked
        source = PeerSource(await serve(nursery, watched.handle))
        ctx = world.context()
        reuse = CheckContext(tuf_dir=ctx.tuf_dir, store=ctx.store, anchor=ctx.anchor,
                             running="1", python="3.11", machine="x86_64", local_wheels=local)
        result = await check(reuse, [source])
        assert result.wheels and path not in watched.requests  # taken from the local copy
        for kept in result.wheels:
            kept.unlink()
        (local / wheel.name).write_bytes(b"not the release's wheel")
        result = await check(reuse, [source])
        assert path in watched.requests  # a local file with another hash is not used
        assert result.wheels[0].read_bytes() == wheel.read_bytes()
        nursery.cancel_scope.cancel()
