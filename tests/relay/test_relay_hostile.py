"""Hostile clients of the relay port, written for the test (raw sockets, hand-made frames).

Whatever they send, the relay keeps serving: a private node that holds a reservation stays
reachable through it afterwards, and every refusal is a clear error frame.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

import msgpack
import trio

from nodemanager.nat.dial import Route, dial
from nodemanager.nat.relaycore import RelayLimits
from seattlecore import KeyPair
from tests.support.polling import eventually
from tests.support.relay_servers import echo_once, private_node, running_relay, wait_held

DOMAIN = b"seattle-relay-reserve-v1"


class Attacker:
    """One raw connection to the relay port."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, address: str) -> Attacker:
        host, port = address.rsplit(":", 1)
        return cls(await trio.open_tcp_stream(host, int(port)))

    async def send(self, obj: Any) -> None:
        payload = msgpack.packb(obj, use_bin_type=True)
        await self.stream.send_all(struct.pack(">I", len(payload)) + payload)

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None when the relay closed the connection."""
        with trio.fail_after(5):
            while True:
                if len(self.buffer) >= 4:
                    (length,) = struct.unpack(">I", self.buffer[:4])
                    if len(self.buffer) >= 4 + length:
                        frame = self.buffer[4:4 + length]
                        self.buffer = self.buffer[4 + length:]
                        return msgpack.unpackb(frame, raw=False)  # type: ignore[no-any-return]
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return None
                if not chunk:
                    return None
                self.buffer += chunk


def reserve(keys: KeyPair, relay: bytes, challenge: bytes, ts: float | None = None) -> dict[str, Any]:
    body = msgpack.packb({"node": keys.public.raw, "relay": relay, "challenge": challenge,
                          "ts": time.time() if ts is None else ts}, use_bin_type=True)
    framed = DOMAIN + struct.pack(">Q", len(body)) + body
    import nacl.signing
    sig = nacl.signing.SigningKey(keys.seed).sign(framed).signature
    return {"t": "reserve", "body": body, "sig": bytes(sig)}


async def refused(address: str, first: Any) -> dict[str, Any] | None:
    """Send ``first`` after the hello; return the relay's answer (None: it hung up)."""
    attacker = await Attacker.open(address)
    async with attacker.stream:
        hello = await attacker.receive()
        assert hello is not None and hello["t"] == "hello"
        await attacker.send(first)
        return await attacker.receive()


async def still_serving(node_keys: KeyPair, address: str) -> None:
    dialed = await dial(Route("127.99.0.1", 9, node_keys.public, (address,)), timeout=5)
    async with dialed.stream:
        assert await echo_once(dialed.stream, b"alive") == b"alive"


async def test_forged_replayed_and_misdirected_reservations_are_refused() -> None:
    async with running_relay() as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        victim = KeyPair.generate()
        other_relay = KeyPair.generate().public.raw
        attacker = await Attacker.open(address)
        async with attacker.stream:
            hello = await attacker.receive()
            assert hello is not None
            stolen = reserve(victim, hello["relay"], hello["challenge"])
        cases = {
            "replayed on a new connection": lambda h: stolen,
            "for another relay": lambda h: reserve(victim, other_relay, h["challenge"]),
            "stale": lambda h: reserve(victim, h["relay"], h["challenge"], ts=time.time() - 3600),
            "bad signature": lambda h: {**reserve(victim, h["relay"], h["challenge"]),
                                        "sig": os.urandom(64)},
            "node key of the holder, signed by another": lambda h: {
                **reserve(victim, h["relay"], h["challenge"]),
                "body": msgpack.packb({"node": node.keys.public.raw, "relay": h["relay"],
                                       "challenge": h["challenge"], "ts": time.time()})},
        }
        for name, make in cases.items():
            attacker = await Attacker.open(address)
            async with attacker.stream:
                hello = await attacker.receive()
                assert hello is not None
                await attacker.send(make(hello))
                answer = await attacker.receive()
            assert answer is not None and answer["t"] == "error", name
            assert answer["code"] == "BadFrame" and answer["message"], name
        assert relay.status()["reservations"] == 1
        await still_serving(node.keys, address)


async def test_malformed_frames_and_bad_requests_get_clear_errors() -> None:
    async with running_relay() as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        for first in ([1, 2, 3], {"t": 7}, {"t": "bogus"}, {"t": "connect", "node": b"short"},
                      {"t": "accept", "token": os.urandom(16)}, {"t": "reserve"},
                      {"t": "connect", "node": KeyPair.generate().public.raw}):
            answer = await refused(address, first)
            assert answer is not None and answer["t"] == "error", first
            assert answer["code"] in ("BadFrame", "UnknownToken", "NoReservation"), answer
        for raw in (b"\xff\xff\xff\xff", struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1",
                    os.urandom(300)):
            attacker = await Attacker.open(address)
            async with attacker.stream:
                await attacker.receive()
                await attacker.stream.send_all(raw)
                answer = await attacker.receive()
            assert answer is None or answer["t"] == "error"
        assert relay.table.counters.bad_frames >= 6
        await still_serving(node.keys, address)


async def test_a_flood_of_silent_connections_does_not_take_the_relay_down() -> None:
    limits = RelayLimits(max_handshakes=64, handshake_timeout=30.0)
    async with running_relay(limits) as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        streams = []
        host, port = address.rsplit(":", 1)
        for _ in range(200):
            streams.append(await trio.open_tcp_stream(host, int(port)))
        await eventually(lambda: relay.table.counters.evicted_handshakes >= 100, timeout=5, interval=0.02)
        assert relay.table.handshakes == 64
        await still_serving(node.keys, address)  # while the silent ones are still there
        for stream in streams:
            await stream.aclose()
        assert relay.status()["reservations"] == 1


async def test_connect_floods_for_one_node_hit_the_circuit_limit() -> None:
    limits = RelayLimits(circuits_per_reservation=4)
    async with running_relay(limits) as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        held = []
        for _ in range(4):
            dialed = await dial(Route("127.99.0.1", 9, node.keys.public, (address,)), timeout=5)
            held.append(dialed.stream)
        answer = await refused(address, {"t": "connect", "node": node.keys.public.raw})
        assert answer is not None and answer["code"] == "CircuitLimit"
        for stream in held:
            await stream.aclose()
        await eventually(lambda: not relay.table.circuits, timeout=5, interval=0.02)
        await still_serving(node.keys, address)
