"""DHT test helpers: seeded keys and identities, signed adverts, in-process networks, child
processes that run DHT nodes, and waiting on lookups (announcing is asynchronous)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import trio

from overlay import (
    DhtConfig,
    DhtNode,
    LookupResult,
    NodeIdentity,
    dht_key_for,
    dht_loop,
    lookup_once,
    make_advert,
    open_dht_node,
)
from overlay.advert import ADVERT_DOMAIN, FORMAT_VERSION, encode_body
from overlay.nodeid import ID_BYTES, NONCE_BYTES, check_id, id_digest
from seattlecore import KeyPair, PublicKey
from tests.support.net import ip
from tests.support.polling import eventually

NOW = 1_700_000_000.0
TEST_BITS = 8
"""A cheap id puzzle for in-process networks (all their nodes agree; real nodes use 16)."""
ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("dht_child.py")


def seeded_keys(label: str, index: int = 0) -> KeyPair:
    """The same key pair for the same ``label`` and ``index`` in every run."""
    return KeyPair(hashlib.sha256(f"{label}/{index}".encode()).digest())


def seeded_identity(label: str, index: int = 0, bits: int = TEST_BITS) -> NodeIdentity:
    """A node identity (key, puzzle nonce, id) that is the same in every run."""
    keys = seeded_keys(label, index)
    for count in itertools.count():  # the puzzle solved from nonce 0 up: the same nonce each run
        nonce = count.to_bytes(NONCE_BYTES, "big")
        if check_id(id_digest(keys.public.raw, nonce)[:ID_BYTES], keys.public.raw, nonce, bits):
            return NodeIdentity(keys, nonce, bits)
    raise AssertionError("unreachable")


def advert_blob(
    node: KeyPair,
    user: PublicKey,
    *,
    vessel: str = "v1",
    seq: int = 1,
    ttl: float = 750.0,
    now: float = NOW,
    address: str = "127.0.0.1:1224",
    withdrawn: bool = False,
) -> bytes:
    return make_advert(
        node,
        address=address,
        vessel=vessel,
        user_key=user,
        seq=seq,
        expires_at=now + ttl,
        withdrawn=withdrawn,
    )


def forged_blob(node: KeyPair, user: PublicKey, *, signer: KeyPair, now: float = NOW) -> bytes:
    """An advert claiming to come from ``node`` but signed by ``signer``."""
    from overlay import Advert

    ad = Advert(
        node_key=node.public,
        address="10.9.9.9:1",
        vessel="evil",
        user_key=user,
        seq=99,
        expires_at=now + 100,
    )
    body = encode_body(ad)
    blob: bytes = msgpack.packb([FORMAT_VERSION, body, signer.sign(ADVERT_DOMAIN, body)])
    return blob


def key_of(user: PublicKey) -> bytes:
    return dht_key_for(user)


def node_host(index: int, net: int = 3) -> str:
    """Loopback address ``index`` of test network ``net`` (< 64): each node in its own /24,
    in this xdist worker's range."""
    return ip(f"127.{net}.{index}.1")


@asynccontextmanager
async def spread_network(n: int, net: int = 3, **kw: Any) -> AsyncIterator[list[DhtNode]]:
    """``n`` DHT nodes in this trio run, each on its own 127.x address (per-IP rules apply),
    with the cheap test puzzle. Node i bootstraps from node 0 and node i-1."""
    async with dht_loop(), AsyncExitStack() as stack:
        nodes: list[DhtNode] = []
        for i in range(n):
            boot = tuple({(x.config.host, x.port) for x in (nodes[:1] + nodes[-1:])})
            config = DhtConfig(host=node_host(i, net), bootstrap=boot, id_bits=TEST_BITS,
                               identity=seeded_identity(f"net{net}", i), **kw)
            nodes.append(await stack.enter_async_context(open_dht_node(config)))
        yield nodes


def adverts_for(user: PublicKey, count: int, *, host: str = "127.0.0.1",
                ttl: float = 600.0) -> tuple[list[KeyPair], list[bytes]]:
    """``count`` publishers' keys and one live advert each for ``user``."""
    keys = [KeyPair.generate() for _ in range(count)]
    blobs = [make_advert(k, address=f"{host}:{1000 + i}", vessel="v1", user_key=user, seq=1,
                         expires_at=time.time() + ttl) for i, k in enumerate(keys)]
    return keys, blobs


def spawn(user: str, bootstrap: list[tuple[str, int]], *, count: int = 3, republish: float = 4.0,
          ttl: float = 60.0, refresh: float = 6.0) -> subprocess.Popen[str]:
    """A child process running ``count`` DHT nodes, each announcing a vessel for ``user``."""
    cfg = {"count": count, "bootstrap": bootstrap, "user": user, "republish": republish,
           "ttl": ttl, "refresh": refresh}
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT),
    )


def read_nodes(proc: subprocess.Popen[str]) -> list[dict[str, object]]:
    """The nodes a ``spawn``ed child printed, once it says ready."""
    assert proc.stdout is not None
    nodes = []
    while (line := proc.stdout.readline().strip()) != "ready":
        if not line:
            raise RuntimeError("child exited early")
        nodes.append(json.loads(line))
    return nodes


def reap(proc: subprocess.Popen[str]) -> None:
    """Kill a ``spawn``ed child (if still running), wait for it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def key_stream(label: str) -> Callable[[], KeyPair]:
    """A source of fresh key pairs for one test: call it for the next; the same ones each run."""
    counter = itertools.count()
    return lambda: seeded_keys(label, next(counter))


async def lookup_until(key: PublicKey, bootstrap: tuple[str, int], accept: Callable[[LookupResult], bool],
                       *, timeout: float = 30, what: str = "") -> LookupResult:
    """Look ``key`` up through ``bootstrap`` until ``accept(result)``; return that result."""
    async def answer() -> LookupResult | None:
        result = await lookup_once(key, [bootstrap], timeout=5)
        return result if accept(result) else None

    return await eventually(answer, timeout=timeout, interval=0.2,
                            what=what or f"adverts of {key.short()}")


class RunningNode:
    """A DHT node in a task of its own, so nodes can stop in any order (``stop``)."""

    def __init__(self, node: DhtNode, scope: trio.CancelScope, done: trio.Event) -> None:
        self.node, self._scope, self._done = node, scope, done

    @property
    def addr(self) -> tuple[str, int]:
        return (self.node.config.host, self.node.port)

    async def stop(self) -> None:
        """Leave the node's context (a clean stop: it saves its state) and wait until it has."""
        self._scope.cancel()
        await self._done.wait()


async def _run_node(config: DhtConfig, *, task_status: trio.TaskStatus[RunningNode]) -> None:
    done = trio.Event()
    try:
        with trio.CancelScope() as scope:
            async with open_dht_node(config) as node:
                task_status.started(RunningNode(node, scope, done))
                await trio.sleep_forever()
    finally:
        done.set()


async def start_node(nursery: trio.Nursery, config: DhtConfig) -> RunningNode:
    """Start a DHT node in ``nursery`` (opened inside ``dht_loop``); stop it with ``stop``."""
    running: RunningNode = await nursery.start(_run_node, config)
    return running
