"""A hostile DHT peer, written for the tests from docs/overlay.md's wire section alone.

It speaks the rpcudp framing directly (``kind || msg_id(20) || msgpack``) over a trio UDP
socket, derives its own key-bound ids with the puzzle, signs ``hello`` challenges with PyNaCl,
and answers every other request through a pluggable ``Behaviour``. It imports nothing from
``overlay``: if the docs and the code disagree, these tests fail. Benchmarks reuse it.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import nacl.signing
import trio

ID_DOMAIN = b"seattle-dht-id-v1\x00"
HELLO_DOMAIN = b"seattle-dht-hello-v1"
NO_REPLY = object()
"""A behaviour's answer meaning: stay silent."""


def _solves(digest: bytes, bits: int) -> bool:
    return int.from_bytes(digest[20:], "big") >> (96 - bits) == 0


@dataclass(frozen=True)
class Ident:
    """An id that solves the puzzle, with its signing key."""

    key: nacl.signing.SigningKey
    nonce: bytes
    node_id: bytes

    @property
    def pk(self) -> bytes:
        return bytes(self.key.verify_key)

    def contact(self, host: str, port: int) -> list[Any]:
        return [self.node_id, host, port, self.pk, self.nonce]

    def hello(self, challenge: bytes) -> dict[str, bytes]:
        body = challenge + self.node_id
        signed = self.key.sign(HELLO_DOMAIN + struct.pack(">Q", len(body)) + body)
        return {"id": self.node_id, "pk": self.pk, "nonce": self.nonce, "sig": signed.signature}


def make_ident(bits: int, *, near: bytes | None = None, within: int | None = None,
               rng: random.Random | None = None) -> Ident:
    """Grind a puzzle-valid id, optionally with ``id XOR near < within`` (a targeted Sybil);
    with ``rng``, the same id every run."""
    key = nacl.signing.SigningKey(rng.randbytes(32)) if rng else nacl.signing.SigningKey.generate()
    base = hashlib.blake2b(ID_DOMAIN + bytes(key.verify_key), digest_size=32)
    goal = int.from_bytes(near, "big") if near is not None else 0
    while True:
        nonce = rng.randbytes(8) if rng else os.urandom(8)
        h = base.copy()
        h.update(nonce)
        digest = h.digest()
        if not _solves(digest, bits):
            continue
        if within is None or int.from_bytes(digest[:20], "big") ^ goal < within:
            return Ident(key, nonce, digest[:20])


@dataclass
class Request:
    name: str
    args: list[Any]
    source: tuple[str, int]


Behaviour = Callable[["HostilePeer", Request], Any]


def answer_hello(peer: HostilePeer, req: Request) -> Any:
    """The one honest answer a hostile peer gives: prove its id, so it gets into tables."""
    if req.name == "hello" and len(req.args) == 2 and isinstance(req.args[1], bytes):
        return peer.ident.hello(req.args[1])
    return None


@dataclass
class HostilePeer:
    """One UDP endpoint with one id; ``behaviour`` answers everything but ``hello``."""

    host: str
    ident: Ident
    behaviour: Behaviour
    delay: float = 0.0
    port: int = 0
    received: int = 0
    _sock: Any = None
    _waiting: dict[bytes, trio.MemorySendChannel[Any]] = field(default_factory=dict)

    @property
    def contact(self) -> list[Any]:
        return self.ident.contact(self.host, self.port)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind((self.host, self.port))
            self._sock, self.port = sock, sock.getsockname()[1]
            task_status.started(self.port)
            async with trio.open_nursery() as nursery:
                while True:
                    data, addr = await sock.recvfrom(65536)
                    self.received += 1
                    self._dispatch(data, addr, nursery)

    def _dispatch(self, data: bytes, addr: tuple[str, int], nursery: trio.Nursery) -> None:
        if len(data) < 22:
            return
        try:
            payload = msgpack.unpackb(data[21:], raw=False, strict_map_key=False)
        except Exception:
            return
        if data[:1] == b"\x01":
            channel = self._waiting.pop(data[1:21], None)
            if channel is not None:
                channel.send_nowait(payload)
            return
        if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], list)):
            return
        req = Request(str(payload[0]), payload[1], addr)
        answer = answer_hello(self, req) if req.name == "hello" else self.behaviour(self, req)
        if answer is not NO_REPLY:
            nursery.start_soon(self._reply, data[1:21], answer, addr)

    async def _reply(self, msg_id: bytes, answer: Any, addr: tuple[str, int]) -> None:
        if isinstance(answer, Delayed):
            await trio.sleep(answer.seconds)
            answer = answer.value
        elif self.delay:
            await trio.sleep(self.delay)
        try:
            packed = answer if isinstance(answer, RawReply) else msgpack.packb(answer, use_bin_type=True)
            await self._sock.sendto(b"\x01" + msg_id + bytes(packed), addr)
        except (OSError, ValueError, TypeError):
            pass

    async def request(self, addr: tuple[str, int], name: str, *args: Any, timeout: float = 1.0) -> Any:
        """Send a request from this peer's socket; the answer, or None after ``timeout``."""
        msg_id = os.urandom(20)
        send, receive = trio.open_memory_channel[Any](1)
        self._waiting[msg_id] = send
        await self.send_raw(addr, b"\x00" + msg_id + msgpack.packb([name, list(args)], use_bin_type=True))
        with trio.move_on_after(timeout):
            return await receive.receive()
        self._waiting.pop(msg_id, None)
        return None

    async def send_raw(self, addr: tuple[str, int], data: bytes) -> None:
        try:
            await self._sock.sendto(data, addr)
        except OSError:
            pass

    async def join(self, addr: tuple[str, int]) -> bool:
        """Make the node at ``addr`` notice us (it then checks our id with a hello)."""
        return await self.request(addr, "ping", self.ident.node_id) is not None


class RawReply(bytes):
    """A behaviour's answer that is sent as these exact bytes (not msgpack-packed)."""


@dataclass(frozen=True)
class Delayed:
    """A behaviour's answer that is sent ``seconds`` late."""

    value: Any
    seconds: float


# ---- behaviours ------------------------------------------------------------------------------

def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value: ints, floats, strings, bytes, lists, maps, nil, bools."""
    kind = rng.randrange(9 if depth < 3 else 6)
    simple: list[Callable[[], Any]] = [
        lambda: rng.randrange(-(2**40), 2**40),
        lambda: rng.random() * 1e9,
        lambda: "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(12))),
        lambda: os.urandom(rng.choice([0, 1, 8, 16, 20, 32, 64, 300])),
        lambda: None,
        lambda: rng.random() < 0.5,
    ]
    if kind < len(simple):
        return simple[kind]()
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind == 7:
        return {str(random_value(rng, depth + 1))[:10]: random_value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(40))]


def malformed_contacts(rng: random.Random, peer: HostilePeer) -> list[Any]:
    """Contact lists that are wrong in one way each (the crash of issue 11, item 1, and more)."""
    good = peer.contact
    variants: list[Any] = [
        [1, 2],
        [good[0], good[1]],
        [good[0][:19], *good[1:]],
        [good[0], "not an ip", *good[2:]],
        [good[0], good[1], 70000, *good[3:]],
        [good[0], good[1], -1, *good[3:]],
        [good[0], good[1], "80", *good[3:]],
        [os.urandom(20), *good[1:]],
        [good[0], "0.0.0.0", *good[2:]],
        [good[0], "224.0.0.1", *good[2:]],
        [good[0], good[1], good[2], os.urandom(32), good[4]],
        [good[0], good[1], good[2], good[3]],
        None,
        "x" * 50,
        {"id": good[0]},
    ]
    return [rng.choice(variants) for _ in range(rng.randrange(1, 25))]


def fuzzing(seed: int) -> Behaviour:
    """Answer every request with random or malformed data (or not at all)."""
    rng = random.Random(seed)

    def behave(peer: HostilePeer, req: Request) -> Any:
        roll = rng.random()
        if roll < 0.05:
            return NO_REPLY
        if roll < 0.35:
            return malformed_contacts(rng, peer)
        if roll < 0.5:
            page = msgpack.packb([random_value(rng) for _ in range(rng.randrange(5))], use_bin_type=True)
            return {"value": rng.choice([page, os.urandom(40), 7]), "pages": rng.choice([1, 0, 9999, "2"]),
                    "more": rng.random() < 0.5, "nodes": malformed_contacts(rng, peer)}
        if roll < 0.6:
            return RawReply(os.urandom(rng.randrange(0, 300)))
        return random_value(rng)

    return behave


def contact_pool(bits: int, host_of: Callable[[int], str], count: int, *,
                 near: bytes | None = None, within: int | None = None) -> list[list[Any]]:
    """``count`` wire contacts with valid ids (optionally near a key) at the given hosts."""
    return [make_ident(bits, near=near, within=within).contact(host_of(i), 9 + i % 50000)
            for i in range(count)]


def answering_contacts(pools: dict[bytes, list[list[Any]]], per_answer: int = 20) -> Behaviour:
    """Answer find_node/find_value for a key with the next contacts from its pool (fresh
    ones each time, wrapping around); anything else with the peer's id."""
    cursor: dict[bytes, int] = {}

    def behave(peer: HostilePeer, req: Request) -> Any:
        if req.name in ("find_node", "find_value") and len(req.args) >= 2:
            key = req.args[1] if isinstance(req.args[1], bytes) else b""
            pool = pools.get(key) or next(iter(pools.values()))
            start = cursor.get(key, 0)
            cursor[key] = (start + per_answer) % len(pool)
            return [pool[(start + i) % len(pool)] for i in range(per_answer)]
        if req.name == "store":
            return True
        return peer.ident.node_id

    return behave


def slow_pages(page: bytes, pages: int = 20, delay: float = 0.9) -> Behaviour:
    """find_value: an instant first page announcing ``pages`` pages; every later page is
    answered ``delay`` seconds late (issue 11, item 3)."""

    def behave(peer: HostilePeer, req: Request) -> Any:
        if req.name == "find_value":
            return {"value": page, "pages": pages, "more": True, "nodes": [peer.contact]}
        if req.name == "find_ads_page":
            return Delayed({"value": page, "more": True}, delay)
        if req.name == "store":
            return True
        return [peer.contact]

    return behave


def store_and_drop(swarm: list[HostilePeer]) -> Behaviour:
    """A Sybil: accepts every STORE and keeps nothing; answers lookups with its fellow
    Sybils closest to the key, never with records."""

    def behave(peer: HostilePeer, req: Request) -> Any:
        if req.name == "store":
            return True
        if req.name in ("find_node", "find_value") and len(req.args) >= 2 and isinstance(req.args[1], bytes):
            goal = int.from_bytes(req.args[1], "big")
            ranked = sorted(swarm, key=lambda p: int.from_bytes(p.ident.node_id, "big") ^ goal)
            return [p.contact for p in ranked[:20]]
        return peer.ident.node_id

    return behave
