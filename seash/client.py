"""Talking to many node managers at once (trio); knows nothing of the shell.

``NodePool`` caches one ``NodeClient`` per (node, identity) for the whole session and drops
a connection once it breaks or a deadline cut a call short. ``fan_out`` runs one operation
per vessel: vessels are grouped by node, each node is served by one task holding one
connection, at most ``limiter.total_tokens`` nodes are contacted at a time, and every call
has its own deadline, so one dead node never holds the others. Each vessel yields exactly one
``NodeResult`` (ok, failed or timeout), reported through ``on_result`` as it arrives.

A signed fan-out over several vessels of one node runs their operations side by side
through a ``Batcher`` (nodemanager/proto/batch.py): the calls they make go to the node as
one signed ``Batch`` per round (protocol revision 7), so a node checks one signature for all
its vessels, not one each. Nodes older than revision 7 get the calls one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import trio

from nodemanager import ConnectionFailed, NodeClient, NodeInfo, NodeManagerError, RequestError, VesselInfo
from nodemanager.errors import (
    BadResponse,
    CompileFailed,
    DiskQuotaExceeded,
    FileNotFound,
    FileTooLarge,
    Forbidden,
    NoSuchVessel,
    VesselBusy,
    VesselNotRunning,
)
from nodemanager.nat.dial import Route, Upgrade, dial
from nodemanager.nat.punchdial import punch_upgrade
from nodemanager.proto.batch import Batcher
from overlay import Advert, DhtUnavailable, LookupResult, OverlayError, lookup_once
from seash.errors import DiscoveryError
from seash.parse import parse_hostport
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "timeout"]
Node = tuple[str, int]
NODE_ONLY = "-"
"""The ``vessel`` of a job that addresses a whole node (GetVessels during browse)."""


@dataclass(frozen=True, slots=True)
class NodeResult:
    """The outcome of one operation on one target (a vessel ``%N`` or a node ``host:port``)."""

    target: str
    address: str
    status: Status
    value: Any = None
    error: str | None = None
    elapsed: float = 0.0
    path: str = ""
    """How the node was reached: ``direct`` or ``relay HOST:PORT`` (empty: not connected)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class Job:
    """One vessel to operate on."""

    target: str
    host: str
    port: int
    vessel: str
    node_key: PublicKey | None = None
    deadline: float | None = None
    """Seconds for this job's call; ``None`` means the fan-out's default."""

    @property
    def node(self) -> Node:
        return self.host, self.port

    @property
    def address(self) -> str:
        if self.vessel == NODE_ONLY:
            return f"{self.host}:{self.port}"
        return f"{self.host}:{self.port}:{self.vessel}"


VesselOp = Callable[[NodeClient, Job], Awaitable[Any]]
ResultSink = Callable[[NodeResult], None]


class NodeWide:
    """A fan-out op whose one call answers for every vessel of a node (GetVessels):
    ``fetch`` runs once per node, ``pick`` takes each job's value from its answer (and may
    raise a ``NodeManagerError``, e.g. ``NoSuchVessel``, for that job alone). Called on one
    job it is a plain ``VesselOp``. ``fan_out`` gives such an op no task, batch or shared
    answer per vessel: that scaffolding was most of a ``list``'s client time."""

    __slots__ = ("fetch", "pick")

    def __init__(self, fetch: Callable[[NodeClient], Awaitable[Any]],
                 pick: Callable[[Any, Job], Any]) -> None:
        self.fetch = fetch
        self.pick = pick

    async def __call__(self, client: NodeClient, job: Job) -> Any:
        return self.pick(await self.fetch(client), job)

_MESSAGES: tuple[tuple[type[Exception], str], ...] = (
    (Forbidden, "permission denied"),
    (NoSuchVessel, "no such vessel on the node (run 'browse' or 'list' again)"),
    (FileNotFound, "no such file in the vessel"),
    (FileTooLarge, "file too large for the node manager"),
    (DiskQuotaExceeded, "vessel disk quota exceeded"),
    (VesselBusy, "vessel is running (stop it first)"),
    (VesselNotRunning, "vessel is not running"),
    (ConnectionFailed, "node unreachable"),
)


def describe_error(exc: BaseException) -> str:
    """A one-line, user-facing description of a node error."""
    if isinstance(exc, CompileFailed):
        return "program does not compile: " + str(exc).split("compile error: ", 1)[-1]
    for cls, text in _MESSAGES:
        if isinstance(exc, cls):
            detail = str(exc)
            return f"{text}: {detail}" if detail and detail not in text else text
    if isinstance(exc, RequestError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}" if exc.strerror else str(exc)
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class PoolStats:
    open: int
    opened: int


class NodePool:
    """One cached connection per (node, identity) for a session; call ``aclose`` at the end."""

    def __init__(self, *, sessions: bool | None = None) -> None:
        self.sessions = sessions
        """Sessions on the pool's connections (protocol §18): see ``NodeClient.sessions``."""
        self.routes: dict[Node, Route] = {}
        """Relays of nodes behind NAT, from their adverts (``browse``); others: direct."""
        self.paths: dict[Node, str] = {}
        """The path of the last connection to each node: ``direct``, ``punched`` (a direct
        connection opened through NATs after a relayed one) or ``relay HOST:PORT``."""
        self.observers: list[Node] = []
        """Public DHT peers (their observation service, docs/protocol.md §13) for punching."""
        self.upgrade: Upgrade | None = punch_upgrade(lambda: self.observers)
        """Tried on each relayed connection to move it to a direct one (dial.py's seam):
        hole punching (docs/nat.md); None keeps relayed connections relayed."""
        self.batches: dict[Node, bool] = {}
        """Nodes known not to speak revision 7 (``Batch``): False (calls go one by one)."""
        self._clients: dict[tuple[str, int, bytes], NodeClient] = {}
        self._locks: dict[tuple[str, int, bytes], trio.Lock] = {}
        self._opened = 0

    def statistics(self) -> PoolStats:
        return PoolStats(open=len(self._clients), opened=self._opened)

    def learn(self, advert: Advert) -> Node:
        """The node an advert names, remembering how to reach it: through the relays it
        names (a node behind NAT), else directly (a route from an older advert is dropped)."""
        node = parse_hostport(advert.address)
        if advert.relays:
            self.routes[node] = Route.from_advert(advert)
        else:
            self.routes.pop(node, None)
        return node

    def path_of(self, node: Node) -> str:
        """``direct``, ``punched``, ``relay HOST:PORT``, or ``-`` if not contacted yet."""
        return self.paths.get(node, "-")

    async def client(self, node: Node, identity: KeyPair | None, node_key: PublicKey | None,
                     timeout: float) -> NodeClient:
        """The cached client for ``node``, connecting (within ``timeout``) if needed."""
        key = (node[0], node[1], b"" if identity is None else identity.public.raw)
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            cached = self._clients.get(key)
            if cached is not None and not cached.broken:
                return cached
            if cached is not None:
                await self._close(key)
            route = self.routes.get(node) or Route(node[0], node[1], node_key)
            dialed = await dial(route, timeout=timeout, upgrade=self.upgrade)
            client = NodeClient(dialed.stream, identity=identity,
                                node_key=node_key or route.node_key, timeout=timeout,
                                path=dialed.path, sessions=self.sessions)
            self.paths[node] = dialed.path
            self._clients[key] = client
            self._opened += 1
            return client

    async def discard(self, node: Node, identity: KeyPair | None) -> None:
        await self._close((node[0], node[1], b"" if identity is None else identity.public.raw))

    async def _close(self, key: tuple[str, int, bytes]) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def aclose(self) -> None:
        for key in list(self._clients):
            await self._close(key)


@dataclass(slots=True)
class _Node:
    node: Node
    jobs: list[Job] = field(default_factory=list)


async def fan_out(
    pool: NodePool, jobs: Sequence[Job], op: VesselOp, *, identity: KeyPair | None,
    limiter: trio.CapacityLimiter, timeout: float, on_result: ResultSink | None = None,
) -> list[NodeResult]:
    """Run ``op`` on every job, nodes in parallel; return one result per job, in job order."""
    by_node: dict[Node, _Node] = {}
    for job in jobs:
        by_node.setdefault(job.node, _Node(job.node)).jobs.append(job)
    results: dict[str, NodeResult] = {}

    def emit(result: NodeResult) -> None:
        results[result.target] = result
        if on_result is not None:
            on_result(result)

    async def serve(group: _Node) -> None:
        async with limiter:
            await _serve_node(pool, group.jobs, op, identity, timeout, emit)

    async with trio.open_nursery() as nursery:
        for group in by_node.values():
            nursery.start_soon(serve, group)
    return [results[job.target] for job in jobs]


async def _serve_node(pool: NodePool, jobs: list[Job], op: VesselOp, identity: KeyPair | None,
                      timeout: float, emit: ResultSink) -> None:
    if len(jobs) > 1 and isinstance(op, NodeWide):
        await _serve_node_wide(pool, jobs, op, identity, timeout, emit)
        return
    if len(jobs) > 1 and identity is not None:
        await _serve_batched(pool, jobs, op, identity, timeout, emit)
        return
    node = jobs[0].node
    dead: NodeResult | None = None
    for job in jobs:
        if dead is not None:
            emit(NodeResult(job.target, job.address, dead.status, error=dead.error))
            continue
        result = await _run_one(pool, job, op, identity, timeout)
        emit(result)
        if _unreachable(result):
            dead = result
            await pool.discard(node, identity)


async def _run_one(pool: NodePool, job: Job, op: VesselOp, identity: KeyPair | None,
                   timeout: float) -> NodeResult:
    deadline = job.deadline or timeout
    start = trio.current_time()
    with trio.move_on_after(deadline + 0.5) as scope:
        try:
            client = await pool.client(job.node, identity, job.node_key, deadline)
            client.timeout = deadline
            value = await op(client, job)
        except Exception as exc:
            return _failure(job, op, _readable(exc), start)
        return NodeResult(job.target, job.address, "ok", value=value,
                          elapsed=trio.current_time() - start, path=client.path)
    assert scope.cancelled_caught
    await pool.discard(job.node, identity)
    return NodeResult(job.target, job.address, "timeout", error=f"no answer within {deadline:g} s",
                      elapsed=trio.current_time() - start)


async def _serve_node_wide(pool: NodePool, jobs: list[Job], op: NodeWide,
                           identity: KeyPair | None, timeout: float, emit: ResultSink) -> None:
    """One ``fetch`` for all of the node's jobs (a call like any other: ``_run_one``), then
    each job's value picked from its answer."""
    deadline = max(job.deadline or timeout for job in jobs)

    async def fetch(client: NodeClient, job: Job) -> Any:
        return await op.fetch(client)

    fetched = await _run_one(pool, replace(jobs[0], deadline=deadline), fetch, identity, timeout)
    if not fetched.ok:
        for job in jobs:
            emit(NodeResult(job.target, job.address, fetched.status, error=fetched.error,
                            elapsed=fetched.elapsed))
        if _unreachable(fetched):
            await pool.discard(jobs[0].node, identity)
        return
    start = trio.current_time() - fetched.elapsed
    for job in jobs:
        try:
            value = op.pick(fetched.value, job)
        except Exception as exc:
            emit(_failure(job, op, _readable(exc), start))
        else:
            emit(NodeResult(job.target, job.address, "ok", value=value,
                            elapsed=fetched.elapsed, path=fetched.path))


def _readable(exc: Exception) -> NodeManagerError | OSError:
    """An op's exception as its job's failure. Anything but a node-manager or socket error
    means an answer that was not what the operation returns (a broken or hostile node signs
    what it likes): that node's jobs fail, the fan-out goes on."""
    if isinstance(exc, NodeManagerError | OSError):
        return exc
    log.warning("an answer could not be read", exc_info=exc)
    return BadResponse(f"bad answer from the node ({type(exc).__name__}: {exc})")


def _failure(job: Job, op: VesselOp, exc: NodeManagerError | OSError, start: float) -> NodeResult:
    """The result of a job whose call (or connection) raised ``exc``."""
    status: Status = "failed"
    if isinstance(exc, ConnectionFailed) and ("within" in str(exc) or "timed out" in str(exc)):
        status = "timeout"
    elif not isinstance(exc, ConnectionFailed):
        log.debug("%s on %s failed", op, job.address, exc_info=exc)
    return NodeResult(job.target, job.address, status, error=describe_error(exc),
                      elapsed=trio.current_time() - start)


def _unreachable(result: NodeResult) -> bool:
    return result.status == "timeout" or (result.error or "").startswith("node unreachable")


async def _serve_batched(pool: NodePool, jobs: list[Job], op: VesselOp, identity: KeyPair,
                         timeout: float, emit: ResultSink) -> None:
    """All of one node's jobs side by side on one connection, their calls batched."""
    node, start = jobs[0].node, trio.current_time()
    deadline = jobs[0].deadline or timeout
    client: NodeClient | None = None
    failure: NodeResult | None = None
    with trio.move_on_after(deadline + 0.5):
        try:
            client = await pool.client(node, identity, jobs[0].node_key, deadline)
        except (NodeManagerError, OSError) as exc:
            failure = _failure(jobs[0], op, exc, start)
    if client is None:
        if failure is None:
            await pool.discard(node, identity)
        status, error = ((failure.status, failure.error) if failure is not None
                         else ("timeout", f"no answer within {deadline:g} s"))
        for job in jobs:
            emit(NodeResult(job.target, job.address, status, error=error,
                            elapsed=trio.current_time() - start))
        return
    batcher = Batcher(client, batches=pool.batches.get(node, True))
    done: dict[str, NodeResult] = {}

    def task(job: Job) -> Callable[[NodeClient], Awaitable[None]]:
        async def run(batched: NodeClient) -> None:
            batched.timeout = job.deadline or timeout
            try:
                value = await op(batched, job)
            except Exception as exc:
                result = _failure(job, op, _readable(exc), start)
            else:
                result = NodeResult(job.target, job.address, "ok", value=value,
                                    elapsed=trio.current_time() - start, path=client.path)
            done[job.target] = result
            emit(result)
        return run

    budget = sum(job.deadline or timeout for job in jobs) + 0.5
    with trio.move_on_after(budget):
        await batcher.run([task(job) for job in jobs])
    if not batcher.batches:
        pool.batches[node] = False
    for job in jobs:
        if job.target not in done:
            done[job.target] = NodeResult(job.target, job.address, "timeout",
                                          error=f"no answer within {budget:g} s",
                                          elapsed=trio.current_time() - start)
            emit(done[job.target])
    if any(_unreachable(result) for result in done.values()):
        await pool.discard(node, identity)


# ---- discovery ----


@dataclass(frozen=True, slots=True)
class Found:
    """One node's answer during browse/contact: its key and the vessels the identity may use."""

    node_key: PublicKey
    vessels: tuple[VesselInfo, ...]
    total: int


def accessible(info: NodeInfo, key: PublicKey) -> tuple[VesselInfo, ...]:
    """The vessels of a GetVessels answer that ``key`` owns or uses."""
    return tuple(v for v in info.vessels if v.owner == key or key in v.users)


async def lookup(key: PublicKey, bootstrap: Sequence[Node], timeout: float) -> LookupResult:
    """DHT lookup of ``key``; raise DiscoveryError when the DHT cannot be reached."""
    if not bootstrap:
        raise DiscoveryError("no DHT bootstrap configured: use --bootstrap HOST:PORT, "
                             "SEASH_BOOTSTRAP or 'set bootstrap HOST:PORT'")
    try:
        return await lookup_once(key, list(bootstrap), timeout=timeout)
    except DhtUnavailable as exc:
        where = ", ".join(f"{h}:{p}" for h, p in bootstrap)
        raise DiscoveryError(f"DHT unreachable (bootstrap {where}): {exc}") from exc
    except (OverlayError, OSError) as exc:
        raise DiscoveryError(f"DHT lookup failed: {exc}") from exc


async def contact_nodes(
    pool: NodePool, nodes: Sequence[tuple[Node, PublicKey | None]], *, identity: KeyPair,
    limiter: trio.CapacityLimiter, timeout: float, on_result: ResultSink | None = None,
) -> list[NodeResult]:
    """Signed GetVessels on each node in parallel; ``value`` of an ok result is a ``Found``."""
    jobs = [Job(f"{h}:{p}", h, p, NODE_ONLY, key) for (h, p), key in nodes]

    async def get(client: NodeClient, job: Job) -> Found:
        info = await client.get_vessels()
        return Found(info.node, accessible(info, identity.public), len(info.vessels))

    return await fan_out(pool, jobs, get, identity=identity, limiter=limiter, timeout=timeout,
                         on_result=on_result)
