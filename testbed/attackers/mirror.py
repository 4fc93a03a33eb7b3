"""A hostile update holder, written from docs/updates.md ("Mirror protocol") alone.

It speaks the mirror wire directly (a 4-byte big-endian length and a msgpack map each way,
then raw bytes) and imports nothing from ``nodemanager``. It serves an honest repository
directory except where its plan says otherwise, per kind of file:

- ``root``: any ``metadata/N.root.json`` the honest repository lacks (the node's probe for
  the next root), ``timestamp``, ``metadata`` (the other metadata), ``record`` (the
  release record), ``wheel`` (``targets/wheels/...``).

Behaviours: ``Honest``, ``NotFound``, ``Stall`` (accepts, never answers), ``Drip`` (announces
the honest size, then one byte every ``every`` seconds), ``Forge`` (the honest size or more
of other bytes), ``ForgedRoot`` (a root N+1 that hands every role to the attacker's key,
signed by that key only), ``Replay`` (fixed bytes, e.g. an older signed timestamp).
Each attacker binds its own loopback address (127.a.b.c), so holders sit in different /24s.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import nacl.encoding
import nacl.signing
import trio

ROOT_PATH = re.compile(r"metadata/([0-9]+)\.root\.json")


@dataclass(frozen=True)
class Honest:
    pass


@dataclass(frozen=True)
class NotFound:
    pass


@dataclass(frozen=True)
class Stall:
    pass


@dataclass(frozen=True)
class Drip:
    every: float = 1.0


@dataclass(frozen=True)
class Forge:
    extra: int = 0


@dataclass(frozen=True)
class ForgedRoot:
    pass


@dataclass(frozen=True)
class Replay:
    data: bytes


Behaviour = Honest | NotFound | Stall | Drip | Forge | ForgedRoot | Replay


def _canonical(obj: Any) -> bytes:
    """securesystemslib's canonical JSON for the ``signed`` part (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def forged_root(honest_root: bytes, version: int, key: nacl.signing.SigningKey) -> bytes:
    """Root ``version`` that gives every role to ``key`` and is signed by it alone."""
    doc = json.loads(honest_root)
    signed = doc["signed"]
    public = key.verify_key.encode(nacl.encoding.HexEncoder).decode()
    keyid = os.urandom(32).hex()
    signed["version"] = version
    signed["keys"] = {keyid: {"keytype": "ed25519", "scheme": "ed25519",
                              "keyval": {"public": public}}}
    for role in signed["roles"].values():
        role["keyids"] = [keyid]
        role["threshold"] = 1
    signature = key.sign(_canonical(signed)).signature.hex()
    return json.dumps({"signatures": [{"keyid": keyid, "sig": signature}],
                       "signed": signed}).encode()


def kind_of(path: str, honest: Path) -> str:
    if ROOT_PATH.fullmatch(path) and not (honest / path).exists():
        return "root"
    if path == "metadata/timestamp.json":
        return "timestamp"
    if path.startswith("metadata/"):
        return "metadata"
    return "wheel" if path.startswith("targets/wheels/") else "record"


@dataclass
class UpdateAttacker:
    """One hostile holder; ``requests``, ``sent`` and ``dripped`` record what it did."""

    honest: Path
    plan: dict[str, Behaviour] = field(default_factory=dict)
    host: str = "127.0.0.1"
    requests: list[str] = field(default_factory=list)
    sent: int = 0
    dripped: int = 0
    port: int = 0
    key: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def start(self, nursery: trio.Nursery) -> UpdateAttacker:
        listeners = await nursery.start(partial(trio.serve_tcp, self.handle, 0, host=self.host))
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the node hung up on us

    async def _handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        path = str(msgpack.unpackb(data[4:4 + int.from_bytes(data[:4], "big")], raw=False)["get"])
        self.requests.append(path)
        behaviour = self.plan.get(kind_of(path, self.honest), Honest())
        body = self._honest(path)
        if isinstance(behaviour, Stall):
            await trio.sleep_forever()
        if isinstance(behaviour, NotFound):
            body = None
        elif isinstance(behaviour, Replay):
            body = behaviour.data
        elif isinstance(behaviour, ForgedRoot):
            match = ROOT_PATH.fullmatch(path)
            anchor = self._honest("metadata/1.root.json")
            if match is not None and anchor is not None:
                body = forged_root(anchor, int(match.group(1)), self.key)
        elif isinstance(behaviour, Forge):
            size = (len(body) if body is not None else 1000) + behaviour.extra
            body = os.urandom(size)
        if body is None:
            await self._send(stream, {"v": 1, "ok": False, "code": "not_found", "message": "no"})
            return
        await self._send(stream, {"v": 1, "ok": True, "size": len(body)})
        if isinstance(behaviour, Drip):
            for offset in range(len(body)):
                await stream.send_all(body[offset:offset + 1])
                self.sent += 1
                self.dripped += 1
                await trio.sleep(behaviour.every)
            return
        await stream.send_all(body)
        self.sent += len(body)

    def _honest(self, path: str) -> bytes | None:
        try:
            return (self.honest / path).read_bytes()
        except OSError:
            return None

    async def _send(self, stream: trio.SocketStream, head: dict[str, object]) -> None:
        body = msgpack.packb(head)
        await stream.send_all(len(body).to_bytes(4, "big") + body)


def spread_hosts(count: int, first: int = 60) -> list[str]:
    """``count`` loopback addresses, each in its own /24 (127.first.i.1)."""
    return [f"127.{first + i // 250}.{i % 250}.1" for i in range(count)]


def ten_liars(old_timestamp: bytes, every: float = 0.3) -> list[dict[str, Behaviour]]:
    """Ten ways to lie or stall (the first three: forged next roots, as in issue 26).

    ``old_timestamp``: a signed timestamp older than the current one (for the replayer)."""
    withhold: dict[str, Behaviour] = {k: NotFound() for k in
                                      ("root", "timestamp", "metadata", "record", "wheel")}
    return [
        {"root": ForgedRoot()},
        {"root": ForgedRoot(), "wheel": Drip(every)},
        {"root": ForgedRoot(), "timestamp": Drip(every)},
        {"timestamp": Forge()},
        {"timestamp": Replay(old_timestamp)},
        {"metadata": Forge()},
        {"wheel": Forge()},
        {"record": Drip(every)},
        {"timestamp": Stall()},
        withhold,
    ]
