"""Malformed frames (hypothesis) never crash the daemon; it keeps answering."""

from __future__ import annotations

import os
import time

import msgpack
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodemanager.proto import messages as m
from nodemanager.proto.wire import RESPONSE_DOMAIN, Envelope, frame, open_envelope, seal_request
from tests.support.nodes import Node

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data)
    for position, value in flips:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


payloads = st.one_of(
    st.binary(max_size=300),
    msgpack_values.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    msgpack_values.map(
        lambda v: Envelope(body=msgpack.packb(v, use_bin_type=True), signature=None).to_payload()
    ),
    st.builds(
        lambda args, op: Envelope(body=msgpack.packb({
            "v": 1, "op": op, "args": args, "node": None, "requester": None,
            "nonce": os.urandom(16), "ts": time.time()}), signature=None).to_payload(),
        msgpack_values, st.sampled_from(sorted(op for _, op in m.REQUESTS)),
    ),
    st.builds(
        mutate,
        st.just(seal_request(m.GetVesselResources(vessel="v1"), identity=None, node=None,
                             nonce=b"n" * 16, timestamp=0)),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1,
                 max_size=4),
    ),
)


async def exchange_raw(node: Node, payload: bytes, truncate: bool) -> None:
    """Send one (possibly truncated) frame; a complete one must get a non-internal error."""
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        data = frame(payload)
        if truncate and len(data) > 1:
            await stream.send_all(data[: len(data) // 2])
            await stream.send_eof()
            with trio.fail_after(5):
                assert await stream.receive_some(10) == b""
            return
        await stream.send_all(data)
        received = b""
        with trio.fail_after(5):
            while len(received) < 4 or len(received) < 4 + int.from_bytes(received[:4], "big"):
                chunk = await stream.receive_some(65536)
                assert chunk, "the node must answer a complete frame before closing"
                received += chunk
    envelope = open_envelope(received[4:])
    assert envelope.signature is not None
    node.server.node.verify(RESPONSE_DOMAIN, envelope.body, envelope.signature)
    body = msgpack.unpackb(envelope.body)
    assert body["ok"] or body["error"]["code"] != "InternalError", body


async def test_malformed_frames_get_errors_not_crashes(node: Node) -> None:
    """Hypothesis runs in a worker thread; each example talks to the node on this loop."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=payloads, truncate=st.booleans())
    def fuzz(payload: bytes, truncate: bool) -> None:
        trio.from_thread.run(exchange_raw, node, payload, truncate)

    await trio.to_thread.run_sync(fuzz)
    async with node.client(node.user) as nm:
        assert await nm.list_files("v1") == []
        assert (await nm.get_node_status()).vessels == 2
