"""A hostile relay written for the tests: speaks the relay protocol, flips spliced bytes.

It takes any reservation, splices clients to the node like an honest relay, and XORs the
last byte of every chunk going one way (``flip = "request"``: client to node; ``"response"``:
node to client). The node manager protocol is signed end to end, so either is detected.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import trio


def _frame(obj: Any) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


async def _read_frame(stream: trio.abc.Stream) -> dict[str, Any]:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = await stream.receive_some(1)  # byte by byte: nothing read past the frame
        if not chunk:
            raise EOFError
        data += chunk
    return msgpack.unpackb(data[4:], raw=False)  # type: ignore[no-any-return]


@dataclass
class FlippingRelay:
    flip: str = "request"
    controls: dict[bytes, trio.abc.Stream] = field(default_factory=dict)
    waiting: dict[bytes, trio.MemorySendChannel[trio.abc.Stream]] = field(default_factory=dict)
    flipped: int = 0

    async def handle(self, stream: trio.abc.Stream) -> None:
        try:
            async with stream:
                await stream.send_all(_frame({"t": "hello", "v": 1, "relay": os.urandom(32),
                                              "challenge": os.urandom(16)}))
                msg = await _read_frame(stream)
                if msg["t"] == "reserve":
                    await self._control(stream, msg)
                elif msg["t"] == "connect":
                    await self._connect(stream, msg["node"])
                elif msg["t"] == "accept":
                    send = self.waiting.pop(msg["token"])
                    done = trio.Event()
                    await send.send(stream)
                    await send.send(done)  # type: ignore[arg-type]
                    await done.wait()
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, KeyError):
            pass

    async def _control(self, stream: trio.abc.Stream, msg: dict[str, Any]) -> None:
        node = msgpack.unpackb(msg["body"], raw=False)["node"]
        self.controls[node] = stream
        await stream.send_all(_frame({"t": "reserved", "expires": time.time() + 3600,
                                      "ttl": 3600.0, "challenge": os.urandom(16), "limits": {}}))
        while True:
            msg = await _read_frame(stream)
            if msg["t"] == "ping":
                await stream.send_all(_frame({"t": "pong"}))

    async def _connect(self, client: trio.abc.Stream, node: bytes) -> None:
        token = os.urandom(16)
        send, receive = trio.open_memory_channel[Any](2)
        self.waiting[token] = send
        await self.controls[node].send_all(_frame({"t": "incoming", "token": token,
                                                   "source": "127.0.0.1:1"}))
        node_stream = await receive.receive()
        done = await receive.receive()
        await client.send_all(_frame({"t": "connected", "node": node}))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, node_stream, self.flip == "request",
                                   nursery.cancel_scope)
                nursery.start_soon(self._pump, node_stream, client, self.flip == "response",
                                   nursery.cancel_scope)
        finally:
            done.set()

    async def _pump(self, src: trio.abc.Stream, dst: trio.abc.Stream, flip: bool,
                    scope: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                if flip:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                    self.flipped += 1
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()
