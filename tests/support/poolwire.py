"""The community pool seen by an attacker written for the tests (msgpack + PyNaCl only).

Credentials, consents and requests are built from docs/pool.md and docs/protocol.md, not
with ``nodemanager.proto.pool``, so a bug in the project's encoder cannot hide one in the
node. ``Member`` is one researcher key; ``PoolNode`` a pool daemon's port and key.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import trio

from overlay.advert import pool_listing_key
from seattlecore import PublicKey
from tests.support.attacker import ask, body, error_code, frame, pack
from tests.support.daemons import Daemon, init_node, node_manager
from tests.support.dht import lookup_until
from tests.support.worlds import SMALL

CREDENTIAL_DOMAIN = b"seattle-pool-credential-v1"
CONSENT_DOMAIN = b"seattle-pool-consent-v1"
WORK_DOMAIN = b"seattle-pool-work-v1"


def _sign(key: nacl.signing.SigningKey, domain: bytes, data: bytes) -> bytes:
    return bytes(key.sign(domain + struct.pack(">Q", len(data)) + data).signature)


def new_key(seed: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed.to_bytes(4, "big") * 8)


def pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def credential(planner: nacl.signing.SigningKey, researcher: bytes, *, vessels: int = 2,
               issued: float | None = None, expires: float | None = None, serial: int = 1,
               pool: bytes | None = None, work: int | None = None) -> bytes:
    """A credential blob ``[1, body, sig]``; ``pool`` may name another key than the signer's;
    ``work``: an open pool's (then ``researcher`` should be the pool key)."""
    now = time.time()
    doc = {"v": 1, "p": pool or pub(planner), "r": researcher, "n": vessels,
           "i": now - 60 if issued is None else issued,
           "x": now + 3600 if expires is None else expires, "s": serial}
    if work is not None:
        doc["w"] = work
    data = pack(doc)
    return pack([1, data, _sign(planner, CREDENTIAL_DOMAIN, data)])


def consent(researcher: nacl.signing.SigningKey, pool: bytes, node: bytes, vessel: str,
            at: float) -> bytes:
    return _sign(researcher, CONSENT_DOMAIN, pack([pool, node, vessel, float(at)]))


def work_bits(pool: bytes, researcher: bytes, node: bytes, vessel: str, at: float,
              work: bytes) -> int:
    """Leading zero bits of the work's digest (docs/pool.md, Open pool)."""
    digest = hashlib.blake2b(WORK_DOMAIN + pack([pool, node, vessel, float(at)]) + researcher
                             + work, digest_size=32).digest()
    return 256 - int.from_bytes(digest, "big").bit_length()


def solve(pool: bytes, researcher: bytes, node: bytes, vessel: str, at: float, bits: int,
          below: int | None = None, start: int = 0) -> bytes:
    """A work with at least ``bits`` zero bits (and fewer than ``below`` if given)."""
    counter = start
    while True:
        work = counter.to_bytes(8, "big")
        got = work_bits(pool, researcher, node, vessel, at, work)
        if got >= bits and (below is None or got < below):
            return work
        counter += 1


def signed(op: str, args: dict[str, Any], key: nacl.signing.SigningKey, node: bytes, *,
           ts: float | None = None) -> bytes:
    doc = body(op, args, node=node, requester=pub(key), nonce=os.urandom(16),
               ts=time.time() if ts is None else ts)
    return frame(pack(doc), key)


def acquire_frame(member: nacl.signing.SigningKey, cred: bytes, pool: bytes, node: bytes,
                  vessel: str, *, lease: float | None = None, at: float | None = None,
                  work: bytes | None = None) -> bytes:
    ts = time.time() if at is None else at
    args: dict[str, Any] = {"vessel": vessel, "credential": cred,
                            "consent": consent(member, pool, node, vessel, ts)}
    if lease is not None:
        args["lease"] = lease
    if work is not None:
        args["work"] = work
    return signed("AcquireVessel", args, member, node, ts=ts)


async def send(port: int, data: bytes, source: str | None = None,
               host: str = "127.0.0.1") -> dict[str, Any]:
    """One frame on a fresh connection to ``host:port``; the response body."""
    stream = await trio.open_tcp_stream(host, port, local_address=source)
    async with stream:
        return await ask(stream, data)


def code(response: dict[str, Any]) -> str | None:
    return error_code(response)


def pool_spec(planner: bytes, count: int, *, lease: float = 14400.0,
              max_lease: float = 604800.0, owned_by: bytes | None = None) -> dict[str, Any]:
    """``count`` pool vessels (and one ordinary vessel of ``owned_by`` if given)."""
    vessels: list[dict[str, Any]] = [{"pool": True, "resources": SMALL.to_text()}
                                     for _ in range(count)]
    if owned_by is not None:
        vessels.append({"owner": owned_by.hex(), "resources": SMALL.to_text()})
    return {"vessels": vessels,
            "pool": {"key": planner.hex(), "lease": lease, "max_lease": max_lease}}


def init_pool_node(state: Path, planner: bytes, count: int = 2, **kw: Any) -> bytes:
    """Initialise a pool node; its key (raw)."""
    return bytes.fromhex(init_node(state, pool_spec(planner, count, **kw)).split()[-1])


@dataclass
class Grab:
    """The outcome of one racing acquisition."""

    node: int
    vessel: str
    ok: bool
    code: str | None


async def grab(host: str, port: int, node_index: int, data: bytes, vessel: str,
               out: list[Grab]) -> None:
    """Send one acquisition (a connection of its own); record the outcome in ``out``."""
    try:
        response = await send(port, data, host=host)
    except Exception as exc:  # a refused connection is a failed grab, recorded as such
        out.append(Grab(node_index, vessel, False, type(exc).__name__))
        return
    out.append(Grab(node_index, vessel, bool(response["ok"]), code(response)))


async def sleep_until(deadline: float) -> None:
    await trio.sleep(max(0.0, deadline - time.time()))


@asynccontextmanager
async def pool_world(root: Path, nodes: int, vessels: int = 2, *, net: int = 40,
                     sandbox: bool = False,
                     **spec: Any) -> AsyncIterator[tuple[list[Daemon], list[bytes]]]:
    """``nodes`` pool daemons with DHT, node i on 127.``net``.i.1 (its own /24); yields the
    daemons and their keys once each node's DHT port is up."""
    states = [root / f"pool{i}" for i in range(nodes)]
    keys = [init_pool_node(state, POOL_OF_WORLD, vessels, **spec) for state in states]
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(node_manager(
            states[0], sandbox=sandbox, extra=["--listen", f"127.{net}.0.1:0"]))
        boot = f"127.{net}.0.1:{first.dht_port}"
        running = [first]
        for i, state in enumerate(states[1:], start=1):
            running.append(await stack.enter_async_context(node_manager(
                state, bootstrap=[boot], sandbox=sandbox,
                extra=["--listen", f"127.{net}.{i}.1:0"])))
        yield running, keys


WORLD_PLANNER = new_key(100)
POOL_OF_WORLD = pub(WORLD_PLANNER)


async def world_listed(nodes: list[Daemon], net: int, want: int) -> tuple[str, int]:
    """The ``pool_world``'s DHT bootstrap (node 0), once the pool's listing holds ``want``
    free vessels."""
    boot = (f"127.{net}.0.1", nodes[0].dht_port or 0)
    await lookup_until(pool_listing_key(PublicKey(POOL_OF_WORLD)), boot,
                       lambda found: len(found.candidates) == want, timeout=60,
                       what="the pool's free vessels")
    return boot


async def world_pools(nodes: list[Daemon], net: int) -> list[dict[str, Any]]:
    """Each ``pool_world`` node's GetNodeStatus ``pool`` map (its ``vessels``: vessel ->
    lease, None when free)."""
    out = []
    for i, nm in enumerate(nodes):
        status = await send(nm.port, frame(pack(body("GetNodeStatus"))), host=f"127.{net}.{i}.1")
        out.append(status["result"]["pool"])
    return out
