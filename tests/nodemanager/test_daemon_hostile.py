"""The real daemon process against the raw-wire attacker: fuzzed frames, then a flood.

No single bad request may kill the daemon or make it answer InternalError; a connection
flood ends and the daemon serves normally afterwards.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest
import trio

from nodemanager import open_node_client
from nodemanager.node.server import raise_fd_limit
from tests.support import attacker as a
from tests.support.attacker import close_all, flood
from tests.support.daemons import node_manager
from tests.support.nodes import init_owned
from tests.support.polling import eventually
from tests.support.worlds import OWNER

pytestmark = pytest.mark.slow

LIMITS = ("--limit", "max_connections=80", "--limit", "reserved_connections=8",
          "--limit", "per_address=4", "--limit", "per_prefix=16")
OPS = ["GetVessels", "GetVesselResources", "GetNodeStatus", "StartVessel", "ReadVesselLog",
       "AddFileToVessel", "SplitVessel", "ChangeOwnerInformation", "NoSuchOp"]


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 3 else 6)
    leaves: list[Callable[[], object]] = [
        lambda: None, lambda: rng.random() < 0.5, lambda: rng.randrange(-2**63, 2**64),
        lambda: rng.uniform(-1e300, 1e300), lambda: os.urandom(rng.randrange(40)).hex(),
        lambda: os.urandom(rng.randrange(70)),
    ]
    if kind < len(leaves):
        return leaves[kind]()
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(random_value(rng, depth + 1))[:8]: random_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


def payload_case(rng: random.Random, node_key: bytes) -> bytes:
    """One complete, hostile frame payload."""
    owner = nacl.signing.SigningKey(OWNER.seed)
    signed = a.signed_body(rng.choice(OPS), {"vessel": "v1", "info": "x"}, OWNER.seed,
                           node_key)[0][4:]
    doc = a.body(rng.choice(OPS), random_value(rng))
    cases: list[Callable[[], bytes]] = [
        lambda: os.urandom(rng.randrange(300)),
        lambda: a.pack(random_value(rng)),
        lambda: a.pack([a.pack(random_value(rng)), None]),
        lambda: a.frame(a.pack(doc))[4:],
        lambda: a.frame(a.pack(doc), owner)[4:],
        lambda: mutate(rng, a.frame(a.pack(a.body("GetVesselResources", {"vessel": "v1"})))[4:]),
        lambda: mutate(rng, signed),
        lambda: a.pack([a.map_with_duplicate([("v", a.pack(1)), ("v", a.pack(1))]), None]),
        lambda: b"\x91" * 60_000 + b"\xc0",  # nesting far deeper than any decoder stack
        lambda: a.pack([b"\xdf\xff\xff\xff\xff", None]),  # a map claiming 4 G entries
        lambda: b"\xdb\xff\xff\xff\xf0abc",  # a str claiming 4 GiB
    ]
    return rng.choice(cases)()


async def complete_frame(port: int, source: str, payload: bytes) -> str | None:
    """Send one frame, return the response's error code (None for ok)."""
    stream = await a.connect(port, source)
    async with stream:
        with trio.fail_after(20):
            response = await a.ask(stream, struct.pack(">I", len(payload)) + payload)
    return a.error_code(response)


async def broken_frame(port: int, source: str, rng: random.Random) -> None:
    """Truncated frames, oversized lengths, resets: the node closes or answers, never dies."""
    stream = await a.connect(port, source)
    choice = rng.randrange(4)
    try:
        if choice == 0:  # a truncated frame, then EOF: the node hangs up without answering
            await stream.send_all(a.frame(a.pack(a.body("GetVessels")))[: rng.randrange(1, 20)])
            await stream.send_eof()
            with trio.fail_after(20):
                while await stream.receive_some(65536):
                    pass
        elif choice == 1:
            await stream.send_all(struct.pack(">I", 0xFFFFFFFF) + os.urandom(50))
            with trio.fail_after(20):
                assert a.error_code(a.response_body(await a.read_frame(stream))) == "FrameTooLarge"
        elif choice == 2:  # half a frame, then a reset (RST) instead of a close
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.send_all(a.frame(a.pack(a.body("GetVessels")))[:10])
        # choice 3: connect and go away at once
    except (trio.BrokenResourceError, a.Closed):
        pass
    finally:
        await stream.aclose()


async def test_daemon_survives_fuzzed_frames_then_a_flood(tmp_path: Path) -> None:
    raise_fd_limit(4096)
    state = tmp_path / "node"
    node_key = bytes.fromhex(init_owned(state))
    rng = random.Random(11)
    codes: dict[str | None, int] = {}
    async with node_manager(state, bootstrap=["127.0.0.1:9999"], wait_dht=False,
                            extra=LIMITS) as daemon:
        process, port = daemon.process, daemon.port
        limiter = trio.CapacityLimiter(16)

        async def one(index: int) -> None:
            source = f"127.70.{index % 200}.{index % 7 + 1}"
            async with limiter:
                if index % 4 == 3:
                    await broken_frame(port, source, rng)
                    return
                code = await complete_frame(port, source, payload_case(rng, node_key))
                codes[code] = codes.get(code, 0) + 1

        async with trio.open_nursery() as nursery:
            for index in range(400):
                nursery.start_soon(one, index)
        assert process.returncode is None
        assert "InternalError" not in codes and sum(codes.values()) == 300, codes
        assert codes.get("BadFrame", 0) > 50, codes

        held = await flood(port, list(a.sources(300, first_octet=80)))
        async with open_node_client("127.0.0.1", port, identity=OWNER) as nm:
            assert await nm.list_files("v1") == []
            during = await nm.get_node_status()
        await close_all(held)
        assert during.connections["connections"] <= 80
        assert during.connections["evicted_total"] >= 300 - 72
        async with open_node_client("127.0.0.1", port, identity=OWNER) as nm:
            await nm.add_file("v1", "after.txt", b"fine")
            assert await nm.list_files("v1") == ["after.txt"]
            async def settled() -> bool:
                return (await nm.get_node_status()).connections["connections"] <= 1

            await eventually(settled, timeout=10, interval=0.05)
        assert process.returncode is None
    log = (state / "nodemanager.log").read_text()
    assert "internal error" not in log and "Traceback" not in log
