"""Node manager throughput and latency: signed GetVesselResources at 1, 10, 100 clients.

The daemon runs as its own process pinned to one core (``seattle-nodemanager --no-sandbox``);
the clients run here on the other core, one connection each (from its own 127.0.1.x
address), back-to-back signed requests. Then the per-request cost is split (crypto,
msgpack, SQLite) by timing each step alone.

Flood section: a legitimate owner's request latency while 2,000 connections from 2,000
127.x.y.z addresses (8 per /24) hold the port, run by an attacker process that speaks the
wire format by hand (an unsigned GetNodeStatus every 20 s per connection, reconnecting at
once whenever the node closes one; or, "busy", requests back-to-back).

``--against DIR`` measures a second source tree (e.g. ``git worktree add /tmp/old ea75aae``)
side by side: both daemons run at once (each started from its own tree, ``PYTHONPATH=DIR``),
each row is measured ``--rounds`` times alternating the trees, and the table gives the
medians and the ratio this tree / the other.

    .venv/bin/python benchmarks/nodemanager.py [--seconds 3] [--flood 2000] [--samples 200]
        [--against DIR [--rounds 3]] [--profile FILE.prof]
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
import pstats
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import msgpack
import trio

from nodemanager import NodeClient, NodeManagerError, NodeServer, open_node_client
from nodemanager.node.files import VesselStore
from nodemanager.node.model import Vessel
from nodemanager.node.server import raise_fd_limit
from nodemanager.node.sessions import Link
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, NodeSpec, init_node
from nodemanager.node.state import NodeState
from nodemanager.node.vessels import UnavailableRunner
from nodemanager.proto import messages as m
from nodemanager.proto.session import Channel, parse_frame, read_frame
from nodemanager.proto.wire import (
    REQUEST_DOMAIN,
    RESPONSE_DOMAIN,
    Response,
    Signer,
    open_envelope,
    open_response,
    read_request_body,
    request_body,
    seal_request,
    seal_response,
)
from sandbox import DEFAULT_OFFCUT
from seattlecore import KeyPair, PublicKey, load_private

RESOURCES = DEFAULT_OFFCUT + DEFAULT_OFFCUT


HERE = Path(__file__).resolve().parent.parent
"""This source tree (the one whose ``nodemanager`` the benchmark imports)."""


def make_node(directory: Path, owner: KeyPair, tree: Path = HERE) -> None:
    """A node with four vessels owned by ``owner``, made by ``tree``'s own ``init``."""
    if tree == HERE:
        vessels = tuple(Vessel(name=f"v{i}", owner=owner.public, resources=RESOURCES)
                        for i in range(1, 5))
        init_node(directory, NodeSpec(vessels=vessels, offcut=DEFAULT_OFFCUT))
        return
    spec = directory.parent / f"{directory.name}.spec.json"
    spec.write_text(json.dumps({"vessels": [
        {"name": f"v{i}", "owner": owner.public.to_text(), "resources": RESOURCES.to_text()}
        for i in range(1, 5)]}))
    subprocess.run([sys.executable, "-m", "nodemanager", "init", "--state", str(directory),
                    "--spec", str(spec)], check=True, cwd=tree, env=tree_env(tree),
                   stdout=subprocess.DEVNULL)


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that makes ``python -m nodemanager`` import ``tree``'s code."""
    return {**os.environ, "PYTHONPATH": str(tree)}


def start_daemon(directory: Path, tree: Path = HERE,
                 profile: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """The daemon of ``tree`` on ``directory``, pinned to core 0 (``profile``: under cProfile,
    written when it is stopped with SIGINT)."""
    command = [sys.executable, "-m", "nodemanager", "--state", str(directory), "--no-sandbox"]
    if profile is not None:
        command[1:3] = ["-m", "cProfile", "-o", str(profile), "-m", "nodemanager"]
    (directory / "nodemanager.port").unlink(missing_ok=True)  # a previous run's
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, cwd=tree, env=tree_env(tree))
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


async def load(port: int, owner: KeyPair, clients: int, seconds: float,
               sessions: bool = False) -> list[float]:
    """Back-to-back GetVesselResources: each signed, or (``sessions``) MAC'd in a session
    opened once per connection (protocol §18, revision 10)."""
    latencies: list[float] = []
    stop_at = trio.current_time() + seconds

    async def client(index: int) -> None:
        async with await trio.open_tcp_stream("127.0.0.1", port,
                                              local_address=f"127.0.1.{index + 1}") as stream:
            nm = NodeClient(stream, identity=owner, sessions=sessions)
            await nm.get_vessels(sign=False)
            if sessions:
                await nm.get_node_status()  # opens the session before the clock starts
                assert nm.in_session, "the node does not speak revision 10"
            while trio.current_time() < stop_at:
                began = time.perf_counter()
                await nm.get_vessel_resources("v1")
                latencies.append(time.perf_counter() - began)

    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(client, index)
    return latencies


# ---- flood: an owner's latency while 2,000 hostile connections hold the port ----------------

def flood_source(index: int) -> str:
    """Eight addresses per /24: 127.10.0.1-8, 127.10.1.1-8, ..."""
    prefix, host = divmod(index, 8)
    return f"127.{10 + prefix // 250}.{prefix % 250}.{host + 1}"


def unsigned_status_frame() -> bytes:
    """An unsigned GetNodeStatus, packed by hand from docs/protocol.md §1-§3."""
    body = msgpack.packb({"v": 1, "op": "GetNodeStatus", "args": {}, "node": None,
                          "requester": None, "nonce": os.urandom(16), "ts": time.time()},
                         use_bin_type=True)
    payload = bytes(msgpack.packb([body, None], use_bin_type=True))
    return struct.pack(">I", len(payload)) + payload


async def read_one_frame(stream: trio.SocketStream) -> bool:
    """Read one whole response frame; False if the node closed the connection."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return False
        data += chunk
    return True


async def hostile_connection(port: int, source: str, interval: float, answered: list[int]) -> None:
    """Hold a connection with an unsigned request every ``interval`` s; reconnect when closed."""
    while True:
        try:
            async with await trio.open_tcp_stream("127.0.0.1", port,
                                                  local_address=source) as stream:
                while True:
                    await stream.send_all(unsigned_status_frame())
                    if not await read_one_frame(stream):
                        break
                    answered[0] += 1
                    with trio.move_on_after(interval):
                        if not await stream.receive_some(1):
                            break  # closed by the node (evicted): come straight back
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await trio.sleep(0)


async def attack(port: int, connections: int, interval: float) -> None:
    """The attacker process: ``connections`` hostile connections, until killed."""
    answered = [0]
    async with trio.open_nursery() as nursery:
        for index in range(connections):
            nursery.start_soon(hostile_connection, port, flood_source(index), interval, answered)
            if index % 100 == 99:
                await trio.sleep(0.05)
        print("ready", flush=True)
        while True:
            before = answered[0]
            await trio.sleep(1)
            print(f"answered {answered[0] - before}", flush=True)


async def owner_latencies(port: int, owner: KeyPair, node: PublicKey,
                          samples: int) -> tuple[list[float], list[float], int]:
    """Signed requests on one open connection, then on fresh connections; and failures."""
    warm: list[float] = []
    cold: list[float] = []
    failed = 0
    reasons: Counter[str] = Counter()
    try:
        async with open_node_client("127.0.0.1", port, identity=owner, node_key=node,
                                    timeout=10) as nm:
            await nm.get_vessel_resources("v1")
            for _ in range(samples):
                began = time.perf_counter()
                await nm.get_vessel_resources("v1")
                warm.append(time.perf_counter() - began)
                await trio.sleep(0.01)
    except NodeManagerError as exc:  # the open connection is lost: its remaining samples fail
        failed += samples - len(warm)
        print(f"  owner connection failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    for _ in range(samples):
        began = time.perf_counter()
        try:
            async with open_node_client("127.0.0.1", port, identity=owner, node_key=node,
                                        timeout=10) as nm:
                await nm.get_vessel_resources("v1")
            cold.append(time.perf_counter() - began)
        except NodeManagerError as exc:
            failed += 1
            reasons[f"{type(exc).__name__}: {exc}"] += 1
        await trio.sleep(0.01)
    for reason, count in reasons.most_common():
        print(f"  {count} owner requests on new connections failed: {reason}", file=sys.stderr)
    return warm, cold, failed


async def port_counters(port: int, owner: KeyPair, node: PublicKey) -> dict[str, int] | None:
    """The node's connection counters, asked as the owner (so never queued behind a flood);
    None if three tries in a row got no answer (the row then shows no counters, instead
    of the run ending: an older tree under a flood may not answer in time)."""
    for _ in range(3):
        try:
            async with open_node_client("127.0.0.1", port, identity=owner, node_key=node,
                                        timeout=10) as nm:
                return dict((await nm.get_node_status()).connections)
        except NodeManagerError as exc:
            print(f"  status request failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return None


def start_attack(port: int, connections: int, interval: float) -> subprocess.Popen[str]:
    attacker = subprocess.Popen(
        [sys.executable, __file__, "--attack", str(port), "--flood", str(connections),
         "--interval", str(interval)], stdout=subprocess.PIPE, text=True)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(attacker.pid, set(range(1, os.cpu_count() or 2)))
    assert attacker.stdout is not None
    if attacker.stdout.readline().strip() != "ready":
        raise RuntimeError("the attacker did not start")
    return attacker


def flood_rows(port: int, owner: KeyPair, node: PublicKey, connections: int,
               samples: int) -> list[dict[str, object]]:
    rows = []
    for label, interval in (("none", None), ("hold, 1 request / 20 s", 20.0),
                            ("busy, back-to-back", 0.0)):
        attacker = None if interval is None else start_attack(port, connections, interval)
        try:
            if attacker is not None:
                time.sleep(3)  # let the connections settle into eviction churn
            before = trio.run(port_counters, port, owner, node)
            began = time.monotonic()
            warm, cold, failed = trio.run(owner_latencies, port, owner, node, samples)
            after = trio.run(port_counters, port, owner, node)
            elapsed = time.monotonic() - began
        finally:
            if attacker is not None:
                attacker.kill()
                attacker.wait()
        nan = float("nan")
        rows.append({
            "flood": label if attacker is not None else "none",
            "warm_p50": statistics.median(warm) * 1e3 if warm else nan,
            "warm_p99": percentile(warm, 0.99) * 1e3 if warm else nan,
            "cold_p50": statistics.median(cold) * 1e3 if cold else float("nan"),
            "cold_p99": percentile(cold, 0.99) * 1e3 if cold else float("nan"),
            "ok": f"{2 * samples - failed}/{2 * samples}",
            "open": after.get("connections", nan) if after is not None else nan,
            "evicted_per_s": counter_rate(before, after, "evicted_total", elapsed),
            "delayed_per_s": counter_rate(before, after, "delayed_total", elapsed),
            "shed_per_s": counter_rate(before, after, "shed_total", elapsed),
        })
    return rows


def counter_rate(before: dict[str, int] | None, after: dict[str, int] | None, key: str,
                 elapsed: float) -> float:
    """Per second of a port counter between two readings (nan if either is missing, or
    the node does not count it: an older tree)."""
    if before is None or after is None or key not in before or key not in after:
        return float("nan")
    return (after[key] - before[key]) / elapsed


def print_flood(rows: list[dict[str, object]], connections: int, tree: str = "") -> None:
    print(f"owner's signed GetVesselResources during a {connections}-connection flood "
          f"(default limits){tree}")
    print(f"{'flood':<24} {'open p50':>9} {'open p99':>9} {'new p50':>8} {'new p99':>8} "
          f"{'ok':>8} {'conns':>6} {'evicted/s':>10} {'shed/s':>7} {'paced/s':>8}")
    for row in rows:
        print(f"{row['flood']:<24} {row['warm_p50']:>9.2f} {row['warm_p99']:>9.2f} "
              f"{row['cold_p50']:>8.2f} {row['cold_p99']:>8.2f} {row['ok']:>8} "
              f"{row['open']:>6.0f} {row['evicted_per_s']:>10.0f} {row['shed_per_s']:>7.0f} "
              f"{row['delayed_per_s']:>8.0f}")
    print("open = on a connection that is already trusted; new = connect + first request")


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
    steps.extend(session_costs(server, owner, request))
    state.close()
    return steps


def session_costs(server: NodeServer, owner: KeyPair,
                  request: m.Request) -> list[tuple[str, float]]:
    """The same request in a session (revision 10): MACs in place of signatures."""
    keys = (os.urandom(32), os.urandom(32))
    client = Channel(requester=owner.public, to_node=keys[0], to_client=keys[1])
    node = Channel(requester=owner.public, to_node=keys[0], to_client=keys[1])
    body = request_body(request, node=server.node, requester=owner.public,
                        nonce=os.urandom(16), timestamp=time.time())
    answer = b"a" * 400
    steps = [
        ("session: MAC a request + check it (both ends)",
         per_call(lambda: node.open_request(read_frame(client.seal_request(body)[1])))),
        ("session: MAC an answer + check it (both ends)",
         per_call(lambda: client.open_response(read_frame(node.seal_response(1, answer)), 1)))]
    link = Link(channel=Channel(requester=owner.public, to_node=keys[0], to_client=keys[1]))
    sender = Channel(requester=owner.public, to_node=keys[0], to_client=keys[1])
    payloads = [sender.seal_request(request_body(
        request, node=server.node, requester=owner.public, nonce=os.urandom(16),
        timestamp=time.time()))[1] for _ in range(2000)]

    async def answer_all() -> None:
        for one in payloads:
            frame = parse_frame(one)
            assert frame is not None
            await server._answer_session(frame, link)

    began = time.perf_counter()
    trio.run(answer_all)
    steps.append(("node: whole answer in a session without sockets",
                  (time.perf_counter() - began) / len(payloads) * 1e6))
    return steps


def throughput(trees: list[Path], owner: KeyPair, root: Path, seconds: float, rounds: int,
               client_counts: tuple[int, ...]) -> tuple[dict[Path, list[Row]], list[Row]]:
    """Each row ``rounds`` times per tree, alternating trees; the daemons run side by side.
    Then the same rows on this tree's daemon with sessions (revision 10)."""
    daemons = []
    try:
        for number, tree in enumerate(trees):
            directory = root / f"node{number}"
            make_node(directory, owner, tree)
            daemons.append(start_daemon(directory, tree))
        rows: dict[Path, list[Row]] = {tree: [] for tree in trees}
        for clients in client_counts:
            runs: dict[Path, list[tuple[float, float, float]]] = {tree: [] for tree in trees}
            for round_ in range(rounds):
                order = trees if round_ % 2 == 0 else trees[::-1]
                for tree in order:
                    port = daemons[trees.index(tree)][1]
                    latencies = trio.run(load, port, owner, clients, seconds)
                    runs[tree].append((len(latencies) / seconds,
                                       statistics.median(latencies) * 1e3,
                                       percentile(latencies, 0.99) * 1e3))
            for tree in trees:
                rows[tree].append(summarise(clients, runs[tree]))
        session_rows = []
        for clients in client_counts:
            port = daemons[0][1]
            runs_here = []
            for _ in range(rounds):
                latencies = trio.run(load, port, owner, clients, seconds, True)
                runs_here.append((len(latencies) / seconds, statistics.median(latencies) * 1e3,
                                  percentile(latencies, 0.99) * 1e3))
            session_rows.append(summarise(clients, runs_here))
        return rows, session_rows
    finally:
        for process, _ in daemons:
            process.terminate()
            process.wait()


def summarise(clients: int, runs: list[tuple[float, float, float]]) -> Row:
    """Medians over the rounds of (requests/s, p50, p99)."""
    rate, p50, p99 = (statistics.median(values) for values in zip(*runs, strict=True))
    return Row(clients, rate, p50, p99, tuple(run[0] for run in runs))


@dataclass(frozen=True)
class Row:
    clients: int
    rate: float
    p50: float
    p99: float
    rates: tuple[float, ...]
    """Requests/s of each round (the others are medians over the rounds)."""


def print_session_rows(rows: list[Row], signed: list[Row]) -> None:
    print("the same GetVesselResources in sessions (revision 10, one signed handshake per "
          "connection, then MACs), this tree")
    print(f"{'clients':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'/signed':>8}")
    for row, plain in zip(rows, signed, strict=True):
        print(f"{row.clients:>8} {row.rate:>11.0f} {row.p50:>8.2f} {row.p99:>8.2f} "
              f"{row.rate / plain.rate:>7.2f}x")


def print_rows(rows: dict[Path, list[Row]]) -> None:
    trees = list(rows)
    print("signed GetVesselResources, daemon pinned to one core, clients on another "
          "(medians of the rounds)")
    if len(trees) == 1:
        print(f"{'clients':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
        for row in rows[trees[0]]:
            print(f"{row.clients:>8} {row.rate:>11.0f} {row.p50:>8.2f} {row.p99:>8.2f}")
        return
    here, other = trees
    print(f"this tree: {here}; other: {other}")
    print(f"{'clients':>8} {'other req/s':>12} {'other p50':>10} {'other p99':>10} "
          f"{'this req/s':>11} {'this p50':>9} {'this p99':>9} {'this/other':>11}  rounds (this | other)")
    for new, old in zip(rows[here], rows[other], strict=True):
        rounds = " ".join(f"{r:.0f}" for r in new.rates) + " | " + " ".join(
            f"{r:.0f}" for r in old.rates)
        print(f"{new.clients:>8} {old.rate:>12.0f} {old.p50:>10.2f} {old.p99:>10.2f} "
              f"{new.rate:>11.0f} {new.p50:>9.2f} {new.p99:>9.2f} {new.rate / old.rate:>10.2f}x  "
              f"{rounds}")


def profile_daemon(owner: KeyPair, root: Path, seconds: float, clients: int,
                   out: Path, tree: Path) -> None:
    """``tree``'s daemon under cProfile while ``clients`` clients load it; the top table."""
    directory = root / f"profiled{clients}-{out.name}"
    make_node(directory, owner, tree)
    process, port = start_daemon(directory, tree, profile=out)
    try:
        latencies = trio.run(load, port, owner, clients, seconds)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait()
    print(f"profile of the daemon of {tree} at {clients} clients ({len(latencies) / seconds:.0f} "
          f"requests/s under the profiler), top 25 by own time:")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--flood", type=int, default=2000,
                        help="hostile connections (0: skip the flood section)")
    parser.add_argument("--samples", type=int, default=200, help="owner requests per row")
    parser.add_argument("--against", type=Path,
                        help="another source tree to measure side by side (its daemon runs "
                             "with PYTHONPATH=DIR)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="runs of each row per tree (default 1, or 3 with --against)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--profile", type=Path,
                        help="profile the daemon (and --against's) at each client count "
                             "instead (cProfile output: FILE.<clients>, FILE.other.<clients>)")
    parser.add_argument("--flood-only", action="store_true",
                        help="skip the throughput rows (this tree's flood rows only)")
    parser.add_argument("--attack", type=int, help=argparse.SUPPRESS)  # attacker process
    parser.add_argument("--interval", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    raise_fd_limit(options.flood + 512)
    if options.attack:
        trio.run(attack, options.attack, options.flood, options.interval)
        return
    owner = KeyPair.generate()
    trees = [HERE] + ([options.against.resolve()] if options.against else [])
    rounds = options.rounds or (3 if options.against else 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if options.profile:
            for number, tree in enumerate(trees):
                for clients in options.clients:
                    name = f"{options.profile.name}.{'other.' if number else ''}{clients}"
                    profile_daemon(owner, root, options.seconds, clients,
                                   options.profile.with_name(name), tree)
            return
        rows: dict[Path, list[Row]] = {}
        session_rows: list[Row] = []
        if options.flood_only:
            make_node(root / "node0", owner)
        else:
            rows, session_rows = throughput(trees, owner, root, options.seconds, rounds,
                                            tuple(options.clients))
            print_rows(rows)
            print_session_rows(session_rows, rows[trees[0]])
            print(f"load average after the throughput rows: "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        directory = root / "node0"
        flood = []
        # the flood rows of this tree; with --flood-only and --against, of both, one
        # row after the other (tree by tree), to compare under the same load
        for number, tree in enumerate(trees if options.flood_only else trees[:1]):
            if not options.flood:
                break
            where = root / f"node{number}"
            if tree != HERE and not where.exists():
                make_node(where, owner, tree)
            node = load_private(where / f"{NODE_KEY_NAME}.privatekey").public
            process, port = start_daemon(where, tree)
            try:
                rows_of_tree = flood_rows(port, owner, node, options.flood, options.samples)
            finally:
                process.terminate()
                process.wait()
            if len(trees) > 1 and options.flood_only:
                print_flood(rows_of_tree, options.flood, f" ({tree})")
            flood = flood or rows_of_tree
        steps = cost_split(directory, owner)
    print()
    print(f"{'cost per request (this tree)':<50} {'us':>8}")
    for name, micros in steps:
        print(f"{name:<50} {micros:>8.1f}")
    if flood:
        print()
        print_flood(flood, options.flood)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if options.json:
        options.json.write_text(json.dumps({
            "rows": {str(tree): [asdict(row) for row in tree_rows]
                     for tree, tree_rows in rows.items()},
            "sessions": [asdict(row) for row in session_rows],
            "steps": steps, "flood": flood}, indent=2))


if __name__ == "__main__":
    main()
