"""seash against real node managers: a node of vessels, its daemon, waiting for its adverts,
and running ``seash -c SCRIPT`` as a subprocess."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from nodemanager import NodeInfo, open_node_client
from seattlecore import KeyPair, PublicKey, save_keypair
from tests.support.daemons import Daemon, node_manager
from tests.support.daemons import init_node as init_spec
from tests.support.dht import lookup_until

RESOURCES = (
    "resource cpu 0.2\nresource memory 100000000\nresource diskused 2000000\n"
    "resource events 20\nresource filewrite 100000\nresource fileread 100000\n"
    "resource filesopened 10\nresource lograte 30000\nresource insockets 5\n"
    "resource outsockets 5\n"
)


def init_node(state: Path, owner: str, vessels: int = 2, users: tuple[str, ...] = (),
              resources: str = RESOURCES) -> None:
    spec = {"vessels": [{"owner": owner, "users": list(users), "resources": resources}
                        for _ in range(vessels)]}
    init_spec(state, spec)


def daemon(state: Path, bootstrap: list[str], *,
           sandbox: bool = False) -> AbstractAsyncContextManager[Daemon]:
    """Start a node manager with its DHT node (bootstrapping from ``bootstrap``)."""
    return node_manager(state, bootstrap=bootstrap, sandbox=sandbox)


async def wait_advertised(key: PublicKey, bootstrap: tuple[str, int], want: int) -> None:
    """Wait until the DHT returns ``want`` adverts for ``key`` (announcing is asynchronous)."""
    await lookup_until(key, bootstrap, lambda found: len(found.candidates) >= want,
                       what=f"{want} adverts of {key.short()}")


@dataclass
class SeashRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def doc(self, command: str) -> dict[str, Any]:
        matches = [d for d in self.docs if d["command"] == command]
        assert matches, f"no output for {command!r}: {self.stdout}\n{self.stderr}"
        return matches[-1]


async def seash(home: Path, script: str, *, cwd: Path, bootstrap: str | None = None,
                json_output: bool = True, env: dict[str, str] | None = None) -> SeashRun:
    """Run ``seash --home HOME -c SCRIPT`` as a subprocess."""
    argv = [sys.executable, "-m", "seash", "--home", str(home), "-c", script]
    if bootstrap:
        argv += ["--bootstrap", bootstrap]
    if json_output:
        argv.append("--json")
    done = await trio.run_process(argv, cwd=cwd, capture_stdout=True, capture_stderr=True,
                                  check=False, env={**os.environ, **(env or {})})
    return SeashRun(done.returncode, done.stdout.decode(), done.stderr.decode())


@dataclass
class TwoKeys:
    """A seash home with alice's and bob's keys, and a node manager (no DHT) on ``port``."""

    home: Path
    alice: KeyPair
    bob: KeyPair
    port: int


@asynccontextmanager
async def alice_and_bob(root: Path) -> AsyncIterator[TwoKeys]:
    """alice's and bob's keys in ``root/home``; a node manager with two vessels of alice's."""
    alice, bob = KeyPair.generate(), KeyPair.generate()
    save_keypair(root / "home", "alice", alice)
    save_keypair(root / "home", "bob", bob)
    init_node(root / "nm", alice.public.to_text(), vessels=2)
    async with node_manager(root / "nm", dht=False) as nm:
        yield TwoKeys(root / "home", alice, bob, nm.port)


async def node_view(port: int, identity: KeyPair) -> NodeInfo:
    """The node's GetVessels answer, asked as ``identity``."""
    async with open_node_client("127.0.0.1", port, identity=identity) as client:
        return await client.get_vessels()
