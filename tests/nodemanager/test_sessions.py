"""Sessions (protocol revision 10, docs/protocol.md §18): one signed handshake, then MACs.

The hostile half speaks the wire through ``Wire``, written for these tests from §18 alone
(msgpack, PyNaCl's X25519 and hashlib's BLAKE2b; no project code): replayed, reordered and
forged frames, a session's keys on another connection, a replayed handshake, a session of
one key naming another, counters at and past their end. A man in the middle between the
project's client and a real node tries to strip the session offer. The other half drives
``NodeClient`` and ``Batcher`` on real loopback connections to a real node.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import nacl.bindings
import nacl.public
import nacl.signing
import pytest
import trio

from nodemanager import NodeClient, errors
from nodemanager.proto import messages as m
from nodemanager.proto.batch import Batcher
from nodemanager.proto.session import MAX_COUNTER, Channel, read_frame
from seattlecore import KeyPair
from tests.support import attacker
from tests.support.nodes import Node

U64 = struct.Struct(">Q")


def blake(data: bytes, key: bytes = b"") -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=32).digest()


class Wire:
    """One connection of the test's own session client (docs/protocol.md §18 only)."""

    opened: list[trio.SocketStream] = []
    """Every connection made by a Wire (closed after each test)."""

    def __init__(self, stream: trio.SocketStream, who: KeyPair, node: bytes) -> None:
        Wire.opened.append(stream)
        self.stream = stream
        self.who = who
        self.node = node
        self.to_node = b""
        self.to_client = b""
        self.counter = 0
        self.handshake = b""
        """The OpenSession frame as sent (to replay it)."""

    async def open(self) -> dict[str, Any]:
        """The signed handshake; derive the keys from the exact bodies. The answer body."""
        private = nacl.public.PrivateKey.generate()
        self.handshake, _ = attacker.signed_body(
            "OpenSession", {"eph": bytes(private.public_key)}, self.who.seed, self.node)
        await self.stream.send_all(self.handshake)
        payload = await attacker.read_frame(self.stream)
        response_bytes = msgpack.unpackb(payload, raw=False)[0]
        answer: dict[str, Any] = msgpack.unpackb(response_bytes, raw=False)
        if not answer["ok"]:
            return answer
        request_bytes = msgpack.unpackb(self.handshake[4:], raw=False)[0]
        shared = nacl.bindings.crypto_scalarmult(bytes(private), answer["result"]["eph"])
        transcript = blake(b"seattle-nm-session-v1" + U64.pack(len(request_bytes))
                           + request_bytes + U64.pack(len(response_bytes)) + response_bytes)
        self.to_node = blake(b"c2n" + transcript, shared)
        self.to_client = blake(b"n2c" + transcript, shared)
        return answer

    def frame(self, op: str, args: dict[str, Any] | None = None, *, counter: int | None = None,
              mangle: Callable[[bytes, bytes], tuple[bytes, bytes]] | None = None,
              **fields: Any) -> bytes:
        """A session frame with the next counter (or ``counter``); ``mangle(body, tag)``
        may change the bytes after the tag is computed."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        doc = attacker.body(op, args, node=self.node, requester=self.who.public.raw)
        doc.update(fields)
        body = attacker.pack(doc)
        tag = blake(U64.pack(counter % 2**64) + body, self.to_node)
        if mangle is not None:
            body, tag = mangle(body, tag)
        payload = attacker.pack([body, counter, tag])
        return struct.pack(">I", len(payload)) + payload

    async def ask(self, data: bytes) -> tuple[dict[str, Any], bool]:
        """Send a frame; (answer body, whether it came under the session's MAC)."""
        await self.stream.send_all(data)
        payload = await attacker.read_frame(self.stream)
        parts = msgpack.unpackb(payload, raw=False)
        body: dict[str, Any] = msgpack.unpackb(parts[0], raw=False)
        if len(parts) == 2:  # a signed (not MAC'd) answer: a refused session frame
            return body, False
        assert parts[2] == blake(U64.pack(parts[1]) + parts[0], self.to_client)
        return body, True

    async def refused(self, data: bytes) -> str:
        """Send a frame the node must refuse outside the session and hang up on."""
        answer, in_session = await self.ask(data)
        assert not in_session
        with pytest.raises(attacker.Closed):
            await attacker.read_frame(self.stream)
        return str(answer["error"]["code"])


@pytest.fixture(autouse=True)
async def close_wires() -> AsyncIterator[None]:
    yield
    while Wire.opened:
        await Wire.opened.pop().aclose()


async def wire(node: Node, who: KeyPair) -> Wire:
    session = Wire(await attacker.connect(node.port), who, node.server.node.raw)
    answer = await session.open()
    assert answer["ok"], answer
    return session


def add(vessel: str, name: str) -> tuple[str, dict[str, Any]]:
    return "AddFileToVessel", {"vessel": vessel, "filename": name, "data": b"x"}


async def files(node: Node, vessel: str) -> list[str]:
    async with node.client(node.owner, sessions=False) as nm:
        return await nm.list_files(vessel)


def nonces(node: Node) -> int:
    return int(node.server.state.query("SELECT count(*) FROM nonces")[0][0])


# ---- the wire, by an attacker ----

async def test_an_independent_client_runs_calls_under_the_session_without_signatures(
        node: Node) -> None:
    session = await wire(node, node.user)
    before = nonces(node)
    answer, mac = await session.ask(session.frame(*add("v1", "a.txt")))
    assert mac and answer["ok"], answer
    answer, mac = await session.ask(session.frame("ListFilesInVessel", {"vessel": "v1"}))
    assert mac and answer["result"] == {"files": ["a.txt"]}
    assert nonces(node) == before  # the counter, not SQLite, refuses replays
    assert node.server.admission.statistics().trusted == 1


async def test_a_replayed_frame_is_refused_the_connection_closed_and_nothing_done_twice(
        node: Node) -> None:
    session = await wire(node, node.user)
    first = session.frame(*add("v1", "a.txt"))
    assert (await session.ask(first))[0]["ok"]
    async with node.client(node.owner) as nm:
        await nm.delete_file("v1", "a.txt")
    assert await session.refused(first) == "BadSession"
    assert await files(node, "v1") == []


async def test_reordered_and_skipped_counters_are_refused(node: Node) -> None:
    session = await wire(node, node.user)
    one, two = session.frame(*add("v1", "one")), session.frame(*add("v1", "two"))
    assert await session.refused(two) == "BadSession"
    session = await wire(node, node.user)
    assert await session.refused(session.frame(*add("v1", "three"), counter=2)) == "BadSession"
    assert one and await files(node, "v1") == []


@pytest.mark.parametrize("mangle", [
    lambda body, tag: (body, bytes([tag[0] ^ 1]) + tag[1:]),           # a forged tag
    lambda body, tag: (body.replace(b"v1", b"v2"), tag),                # a changed body
    lambda body, tag: (body, bytes(32)),                                # an empty tag
], ids=["tag", "body", "zeros"])
async def test_forged_macs_are_refused_and_change_nothing(
        node: Node, mangle: Callable[[bytes, bytes], tuple[bytes, bytes]]) -> None:
    session = await wire(node, node.user)
    assert await session.refused(session.frame(*add("v1", "f"), mangle=mangle)) == "BadSession"
    assert await files(node, "v1") == [] and await files(node, "v2") == []


async def test_a_sessions_keys_are_worthless_on_another_connection(node: Node) -> None:
    session = await wire(node, node.user)
    stolen = session.frame(*add("v1", "stolen"))
    plain = Wire(await attacker.connect(node.port), node.user, node.server.node.raw)
    assert await plain.refused(stolen) == "BadSession"  # no session there
    other = await wire(node, node.stranger)  # a session of the attacker's own
    assert await other.refused(stolen) == "BadSession"
    assert (await session.ask(stolen))[0]["ok"]  # where it belongs, it still works once
    assert await files(node, "v1") == ["stolen"]


async def test_a_replayed_handshake_opens_nothing(node: Node) -> None:
    session = await wire(node, node.user)
    again = Wire(await attacker.connect(node.port), node.user, node.server.node.raw)
    await again.stream.send_all(session.handshake)
    answer = attacker.response_body(await attacker.read_frame(again.stream))
    assert attacker.error_code(answer) == "ReplayedNonce"
    again.to_node = session.to_node  # even with the keys (it cannot have them) nothing opened
    assert await again.refused(again.frame(*add("v1", "x"))) == "BadSession"
    assert await files(node, "v1") == []


async def test_a_session_speaks_only_for_the_key_that_signed_its_handshake(node: Node) -> None:
    session = await wire(node, node.stranger)
    answer, mac = await session.ask(session.frame(*add("v1", "mine")))  # stranger: no right
    assert mac and attacker.error_code(answer) == "Forbidden"
    answer, mac = await session.ask(session.frame("ChangeOwner", {
        "vessel": "v2", "owner": node.stranger.public.raw}))
    assert mac and attacker.error_code(answer) == "Forbidden"
    assert node.server.admission.statistics().trusted == 0
    owner = node.owner.public.raw  # a frame naming the owner as its requester
    assert await session.refused(session.frame(*add("v1", "x"), requester=owner)) == "BadSession"
    assert await files(node, "v1") == []
    assert node.server.state.vessels["v2"].owner == node.owner.public


async def test_a_users_session_has_a_users_rights_not_an_owners(node: Node) -> None:
    session = await wire(node, node.user)
    answer, _ = await session.ask(session.frame("ChangeOwnerInformation", {
        "vessel": "v1", "info": "mine now"}))
    assert attacker.error_code(answer) == "Forbidden"
    answer, _ = await session.ask(session.frame("Batch", {"calls": [
        {"op": "ListFilesInVessel", "args": {"vessel": "v1"}},
        {"op": "ChangeUsers", "args": {"vessel": "v1", "users": []}}]}))
    assert [e["ok"] for e in answer["result"]["results"]] == [True, False]
    assert node.server.state.vessels["v1"].users == (node.user.public,)


@pytest.mark.parametrize("counter", [0, -1, MAX_COUNTER + 1, 2**64 - 1, 2**64 + 1])
async def test_counters_never_wrap(node: Node, counter: int) -> None:
    session = await wire(node, node.user)
    assert (await session.ask(session.frame(*add("v1", "a"))))[0]["ok"]
    if counter > 2**64 - 1:  # msgpack cannot carry it: the attacker sends the low bits
        counter %= 2**64
    frame = session.frame(*add("v1", "b"), counter=counter)
    assert await session.refused(frame) == "BadSession"
    assert await files(node, "v1") == ["a"]


async def test_an_unsigned_handshake_or_one_for_another_node_is_refused(node: Node) -> None:
    async with await attacker.connect(node.port) as stream:
        unsigned = attacker.frame(attacker.pack(attacker.body("OpenSession", {"eph": bytes(32)})))
        assert attacker.error_code(await attacker.ask(stream, unsigned)) == "SignatureRequired"
        data, _ = attacker.signed_body("OpenSession", {"eph": os.urandom(32)},
                                       node.user.seed, os.urandom(32))
        assert attacker.error_code(await attacker.ask(stream, data)) == "WrongNode"
        low, _ = attacker.signed_body("OpenSession", {"eph": bytes(32)}, node.user.seed,
                                      node.server.node.raw)  # a low-order point
        assert attacker.error_code(await attacker.ask(stream, low)) == "BadSession"


# ---- a man in the middle strips the offer ----

class Stripper:
    """Relays a client's frames to the node, but answers OpenSession itself."""

    def __init__(self, node: Node, answer: Callable[[bytes], bytes | None]) -> None:
        self.node = node
        self.answer = answer
        self.forwarded: list[bytes] = []

    async def serve(self, client: trio.abc.Stream) -> None:
        async with client, await attacker.connect(self.node.port) as upstream:
            while True:
                try:
                    payload = await attacker.read_frame(client)  # type: ignore[arg-type]
                except attacker.Closed:
                    return
                parts = msgpack.unpackb(payload, raw=False)
                body = msgpack.unpackb(parts[0], raw=False)
                if body.get("op") == "OpenSession":
                    forged = self.answer(payload)
                    if forged is None:
                        return  # hang up
                    await client.send_all(struct.pack(">I", len(forged)) + forged)
                    continue
                self.forwarded.append(payload)
                await upstream.send_all(struct.pack(">I", len(payload)) + payload)
                reply = await attacker.read_frame(upstream)
                await client.send_all(struct.pack(">I", len(reply)) + reply)


def signed_unknown_operation(key: KeyPair, nonce: bytes | None) -> bytes:
    """"UnknownOperation" (what a node before revision 10 answers), signed by ``key``."""
    body = attacker.pack({"v": 1, "node": key.public.raw, "nonce": nonce, "ok": False,
                          "result": None, "error": {"code": "UnknownOperation",
                                                    "message": "unknown operation"}})
    signing = nacl.signing.SigningKey(key.seed)
    framed = b"seattle-nm-response-v1" + U64.pack(len(body)) + body
    return attacker.pack([body, bytes(signing.sign(framed).signature)])


def nonce_of(payload: bytes) -> bytes:
    return bytes(msgpack.unpackb(msgpack.unpackb(payload, raw=False)[0], raw=False)["nonce"])


@pytest.mark.parametrize("strip", ["own-key", "old-answer", "hang-up"])
async def test_stripping_the_session_offer_lets_nothing_weaker_than_a_signature_through(
        node: Node, nursery: trio.Nursery, strip: str) -> None:
    mitm = KeyPair.generate()
    replies = {
        "own-key": lambda payload: signed_unknown_operation(mitm, nonce_of(payload)),
        # a genuine node-signed UnknownOperation, but bound to another request's nonce
        "old-answer": lambda payload: signed_unknown_operation(node.server.keys,
                                                              os.urandom(16)),
        "hang-up": lambda payload: None,
    }
    stripper = Stripper(node, replies[strip])
    listeners = await nursery.start(trio.serve_tcp, stripper.serve, 0)
    port = listeners[0].socket.getsockname()[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    nm = NodeClient(stream, identity=node.user, node_key=node.server.node, sessions=True)
    try:
        with pytest.raises((errors.BadResponse, errors.ConnectionFailed)):
            await nm.list_files("v1")
        assert not nm.in_session and nm.sessions is not False  # no fallback was learnt
    finally:
        await nm.aclose()
    for payload in stripper.forwarded:  # whatever got through is signed, as today
        envelope = msgpack.unpackb(payload, raw=False)
        assert len(envelope) == 2 and envelope[1] is not None


async def test_a_session_frame_without_a_handshake_is_no_way_around_signatures(
        node: Node) -> None:
    plain = Wire(await attacker.connect(node.port), node.owner, node.server.node.raw)
    plain.to_node = os.urandom(32)
    assert await plain.refused(plain.frame(*add("v1", "x"))) == "BadSession"
    assert await files(node, "v1") == []


# ---- the project's client ----

async def test_the_client_opens_a_session_from_its_second_signed_call(node: Node) -> None:
    async with node.client(node.user) as nm:
        await nm.add_file("v1", "a.txt", b"a")
        assert not nm.in_session
        before = nonces(node)
        assert await nm.list_files("v1") == ["a.txt"]
        assert nm.in_session
        assert await nm.retrieve_file("v1", "a.txt") == b"a"
        with pytest.raises(errors.Forbidden):
            await nm.change_owner_info("v1", "x")  # a user, not the owner
        assert await nm.list_files("v1") == ["a.txt"]  # an error keeps the session
        assert nonces(node) == before + 1  # the handshake's only
        stats = nm.statistics()
        assert (stats.calls, stats.errors) == (6, 1)  # the handshake counts


async def test_batches_of_per_vessel_calls_travel_in_the_session(node: Node) -> None:
    async with node.client(node.owner, sessions=True) as nm:
        batcher = Batcher(nm)
        seen: dict[str, list[str]] = {}

        def task(vessel: str) -> Callable[[NodeClient], Awaitable[None]]:
            async def run(client: NodeClient) -> None:
                await client.add_file(vessel, "p.py", b"pass")
                seen[vessel] = await client.list_files(vessel)
            return run

        await batcher.run([task("v1"), task("v2")])
        assert nm.in_session and batcher.frames == 2
        assert seen == {"v1": ["p.py"], "v2": ["p.py"]}


async def test_the_client_opens_a_new_session_when_counters_run_out(node: Node) -> None:
    async with node.client(node.user, sessions=True) as nm:
        assert await nm.list_files("v1") == []
        channel = nm._channel
        assert channel is not None
        channel.counter = MAX_COUNTER  # as if 2**63 - 1 calls had been made
        assert await nm.list_files("v1") == []
        assert nm._channel is not channel and nm.in_session


async def test_a_spent_channel_seals_nothing_more() -> None:
    ends = [Channel(requester=KeyPair.generate().public, to_node=b"k" * 32,
                    to_client=b"c" * 32, counter=MAX_COUNTER - 1) for _ in range(2)]
    client, node = ends
    counter, payload = client.seal_request(b"body")
    assert counter == MAX_COUNTER and node.open_request(read_frame(payload)) == (MAX_COUNTER, b"body")
    with pytest.raises(errors.BadSession):
        client.seal_request(b"more")
    assert client.spent


async def test_a_node_before_revision_10_gets_signed_calls(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(m.REQUESTS, (1, "OpenSession"))  # the node no longer knows it
    async with node.client(node.user, sessions=True) as nm:
        assert await nm.list_files("v1") == []
        assert nm.sessions is False and not nm.in_session
        assert await nm.list_files("v1") == []


async def test_a_forged_answer_in_a_session_is_caught_by_the_client(
        node: Node, nursery: trio.Nursery) -> None:
    """A man in the middle lets the handshake through, then changes a MAC'd answer."""
    async def relay(client: trio.SocketStream) -> None:
        async with client, await attacker.connect(node.port) as upstream:
            while True:
                try:
                    payload = await attacker.read_frame(client)
                except attacker.Closed:
                    return
                await upstream.send_all(struct.pack(">I", len(payload)) + payload)
                reply = await attacker.read_frame(upstream)
                parts = msgpack.unpackb(reply, raw=False)
                if len(parts) == 3:  # a session answer: say the vessel holds a file
                    body = msgpack.unpackb(parts[0], raw=False)
                    body["result"] = {"files": ["planted.py"]}
                    reply = attacker.pack([attacker.pack(body), parts[1], parts[2]])
                await client.send_all(struct.pack(">I", len(reply)) + reply)

    listeners = await nursery.start(trio.serve_tcp, relay, 0)
    stream = await trio.open_tcp_stream("127.0.0.1", listeners[0].socket.getsockname()[1])
    nm = NodeClient(stream, identity=node.user, node_key=node.server.node, sessions=True)
    try:
        with pytest.raises(errors.BadResponse):
            await nm.list_files("v1")
        assert nm.broken
    finally:
        await nm.aclose()
