"""Node manager throughput and latency: signed GetVesselResources at 1, 10, 100 clients.

The daemon runs as its own process pinned to one core (``seattle-nodemanager --no-sandbox``);
the clients run here on the other core, one connection each, back-to-back signed requests.
Then the per-request cost is split (crypto, msgpack, SQLite) by timing each step alone.

    .venv/bin/python benchmarks/nodemanager.py [--seconds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep its directory off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import trio

from nodemanager import NodeServer, open_node_client
from nodemanager import messages as m
from nodemanager.files import VesselStore
from nodemanager.model import Vessel
from nodemanager.spec import NODE_KEY_NAME, STATE_FILE, NodeSpec, init_node
from nodemanager.state import NodeState
from nodemanager.vessels import UnavailableRunner
from nodemanager.wire import (
    REQUEST_DOMAIN,
    RESPONSE_DOMAIN,
    Response,
    Signer,
    open_envelope,
    open_response,
    read_request_body,
    seal_request,
    seal_response,
)
from sandbox import DEFAULT_OFFCUT
from seattlecore import KeyPair, load_private

RESOURCES = DEFAULT_OFFCUT + DEFAULT_OFFCUT


def make_node(directory: Path, owner: KeyPair) -> None:
    vessels = tuple(Vessel(name=f"v{i}", owner=owner.public, resources=RESOURCES)
                    for i in range(1, 5))
    init_node(directory, NodeSpec(vessels=vessels, offcut=DEFAULT_OFFCUT))


def start_daemon(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "nodemanager", "--state", str(directory), "--no-sandbox"],
        stderr=subprocess.DEVNULL)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(process.pid, {0})
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    port_file = directory / "nodemanager.port"
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("daemon did not start")
        time.sleep(0.02)
    return process, int(port_file.read_text())


async def load(port: int, owner: KeyPair, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop_at = trio.current_time() + seconds

    async def client() -> None:
        async with open_node_client("127.0.0.1", port, identity=owner) as nm:
            await nm.get_vessels(sign=False)
            while trio.current_time() < stop_at:
                began = time.perf_counter()
                await nm.get_vessel_resources("v1")
                latencies.append(time.perf_counter() - began)

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_call(fn: Callable[[], object], repeat: int = 3000) -> float:
    """Microseconds per call."""
    began = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - began) / repeat * 1e6


def cost_split(directory: Path, owner: KeyPair) -> list[tuple[str, float]]:
    node_keys = load_private(directory / f"{NODE_KEY_NAME}.privatekey")
    request = m.GetVesselResources(vessel="v1")
    payload = seal_request(request, identity=owner, node=node_keys.public,
                           nonce=os.urandom(16), timestamp=time.time())
    envelope = open_envelope(payload)
    result = {"resources": RESOURCES.as_dict()}
    response = Response(node=node_keys.public, nonce=b"n" * 16, ok=True, result=result)
    signed = seal_response(node_keys, response)
    state = NodeState(directory / STATE_FILE)
    counter = iter(range(10**9))
    server = NodeServer(keys=node_keys, state=state, store=VesselStore(directory),
                        runner=UnavailableRunner())
    sig = envelope.signature or b""
    response_signer = Signer(node_keys, RESPONSE_DOMAIN)
    request_signer = Signer(owner, REQUEST_DOMAIN)

    payloads = [seal_request(request, identity=request_signer, node=node_keys.public,
                             nonce=os.urandom(16), timestamp=time.time()) for _ in range(2000)]

    async def respond_all() -> None:
        for one in payloads:
            await server.respond(one)

    steps = [
        ("node: verify request (Ed25519)",
         per_call(lambda: owner.public.verify(REQUEST_DOMAIN, envelope.body, sig))),
        ("node: sign response (Ed25519)",
         per_call(lambda: response_signer.sign(b"x" * 400))),
        ("node: msgpack decode request + encode response",
         per_call(lambda: m.decode_request(
             1, request.op, read_request_body(open_envelope(payload).body).args))
         + per_call(lambda: msgpack.packb(
             {"v": 1, "node": node_keys.public.raw, "nonce": b"n" * 16, "ok": True,
              "result": result, "error": None}))),
        ("node: SQLite nonce insert (one transaction)",
         per_call(lambda: state.commit(None, nonce=next(counter).to_bytes(16, "big"),
                                       ts=time.time()), 2000)),
        ("client: sign request + verify response",
         per_call(lambda: seal_request(request, identity=request_signer, node=node_keys.public,
                                       nonce=b"n" * 16, timestamp=1.0))
         + per_call(lambda: open_response(signed, node=node_keys.public, nonce=b"n" * 16))),
    ]
    began = time.perf_counter()
    trio.run(respond_all)
    steps.append(("node: whole respond() without sockets",
                  (time.perf_counter() - began) / len(payloads) * 1e6))
    state.close()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    owner = KeyPair.generate()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "node"
        make_node(directory, owner)
        process, port = start_daemon(directory)
        rows = []
        try:
            for clients in (1, 10, 100):
                latencies = trio.run(load, port, owner, clients, options.seconds)
                rows.append((clients, len(latencies) / options.seconds,
                             statistics.median(latencies) * 1e3,
                             percentile(latencies, 0.99) * 1e3))
        finally:
            process.terminate()
            process.wait()
        steps = cost_split(directory, owner)
    print("signed GetVesselResources, daemon pinned to one core, clients on another")
    print(f"{'clients':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for clients, rate, p50, p99 in rows:
        print(f"{clients:>8} {rate:>11.0f} {p50:>8.2f} {p99:>8.2f}")
    print()
    print(f"{'cost per request':<50} {'us':>8}")
    for name, micros in steps:
        print(f"{name:<50} {micros:>8.1f}")
    if options.json:
        options.json.write_text(json.dumps({"rows": rows, "steps": steps}, indent=2))


if __name__ == "__main__":
    main()
