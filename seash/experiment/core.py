"""The experiment API, async (trio): one ``Experiment`` per identity talks to many vessels.

Every operation on many vessels goes through seash's fan-out (``seash.client.fan_out`` over
a ``NodePool``: vessels grouped by node, one connection per node, a node's calls batched,
a deadline per call), the one seash's own commands use, and answers with one
``NodeResult`` per vessel, in the order given: a node that dies mid-run fails its own
vessels (``node unreachable: ...``, or ``timeout``) and no other.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from nodemanager import NodeClient
from nodemanager.errors import VesselNotRunning
from nodemanager.proto.pool import listing_key, read_credential
from overlay import LookupResult
from seash.client import Found, Job, Node, NodePool, NodeResult, VesselOp, contact_nodes, fan_out, lookup
from seash.discovery import node_info_op, observers_of
from seash.errors import DiscoveryError
from seash.experiment.model import ExperimentError, Vessel, ending, running
from seash.leases import Works, acquire_op, choose, ends_leasing, offers_from, solve_works
from seash.logs import LogReader
from seattlecore import KeyPair, PublicKey

POLL_INTERVAL = 0.5
ResultSink = Callable[[NodeResult], None]


class Experiment:
    """Vessels of one identity, and the operations on many of them at once (async).

    ``bootstrap``: DHT peers for ``find_vessels``/``acquire``; ``timeout``: seconds per
    call; ``concurrency``: nodes contacted at a time; ``credential``: a pool credential
    (``seattle-installer grant``) for ``acquire``. Close with ``aclose`` (or ``async with``).
    """

    def __init__(self, identity: KeyPair, *, bootstrap: Sequence[tuple[str, int]] = (),
                 timeout: float = 10.0, concurrency: int = 64, credential: bytes | None = None,
                 pool: NodePool | None = None) -> None:
        self.identity = identity
        self.bootstrap = list(bootstrap)
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.credential = credential
        self.pool = pool if pool is not None else NodePool()
        self.leases: dict[str, float] = {}
        """Lease deadlines (wall clock) of vessels acquired from the pool, by address."""
        self._logs = LogReader(whole_lines=False)

    async def __aenter__(self) -> Experiment:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.pool.aclose()

    # ---- the core: one operation on many vessels ----

    async def do(self, vessels: Sequence[Vessel], op: VesselOp, *,
                 deadline: float | None = None, on_result: ResultSink | None = None,
                 ) -> list[NodeResult]:
        """``await op(client, job)`` on every vessel, nodes in parallel; one result per
        vessel in order (``value``: what ``op`` returned). ``deadline`` overrides the
        per-call timeout; ``on_result`` sees each result as it arrives."""
        return await fan_out(self.pool, [v.job(deadline) for v in vessels], op,
                             identity=self.identity,
                             limiter=trio.CapacityLimiter(self.concurrency),
                             timeout=self.timeout, on_result=on_result)

    # ---- finding vessels ----

    async def find_vessels(self, key: PublicKey | None = None) -> list[Vessel]:
        """The vessels this identity may use on the nodes advertising under ``key`` (default:
        this identity's key; a group key shared by researchers works too): the DHT names
        the nodes, each node's signed answer decides; nodes that do not answer are left out."""
        found = await self._lookup(key or self.identity.public)
        self.pool.observers = [*self.bootstrap, *observers_of(found.peers_answered)]
        nodes: dict[Node, PublicKey | None] = {}
        for advert in found.candidates:
            nodes.setdefault(self.pool.learn(advert), advert.node_key)
        return await self._contact(list(nodes.items()))

    async def _lookup(self, key: PublicKey) -> LookupResult:
        try:
            return await lookup(key, self.bootstrap, self.timeout)
        except DiscoveryError as exc:
            raise ExperimentError(str(exc)) from exc

    async def contact(self, host: str, port: int) -> list[Vessel]:
        """The vessels this identity may use on the node at host:port."""
        return await self._contact([((host, port), None)])

    async def _contact(self, nodes: list[tuple[Node, PublicKey | None]]) -> list[Vessel]:
        results = await contact_nodes(self.pool, nodes, identity=self.identity,
                                      limiter=trio.CapacityLimiter(self.concurrency),
                                      timeout=self.timeout)
        vessels = []
        for ((host, port), _), result in zip(nodes, results, strict=True):
            if result.ok:
                found: Found = result.value
                vessels += [Vessel(host, port, v.name, found.node_key) for v in found.vessels]
        return vessels

    async def acquire(self, count: int, *, kind: str = "any", spread: bool = False,
                      rng: random.Random | None = None) -> list[Vessel]:
        """Lease up to ``count`` free vessels of the community pool (docs/pool.md) with this
        experiment's credential; fewer when the pool has fewer or refuses (quota). With an
        open pool's credential each acquisition first pays its proof of work (in a worker
        thread: about 2**bits hashes, 2.5 s at the default 22 bits)."""
        if self.credential is None:
            raise ExperimentError("no pool credential: give Experiment(credential=...) "
                                  "(a planner makes one with 'seattle-installer grant')")
        credential = read_credential(self.credential)
        pool_key = credential.pool
        found = await self._lookup(listing_key(pool_key))
        queue = choose(offers_from(found.candidates, pool_key), kind, spread,
                       rng or random.Random())
        leased: list[Vessel] = []
        works: Works = {}
        lease = acquire_op(self.credential, credential, works)
        while len(leased) < count and queue:
            size = 1 if leased or len(queue) == 1 else count - len(leased)
            batch, queue = queue[:size], queue[size:]
            offered = []
            for offer in batch:
                host, port = self.pool.learn(offer.advert)
                offered.append(Vessel(host, port, offer.advert.vessel, offer.advert.node_key))
            works.update(await solve_works(batch, self.identity.public, credential))
            fatal = False
            for vessel, result in zip(offered, await self.do(offered, lease), strict=True):
                if result.ok:
                    leased.append(vessel)
                    self.leases[vessel.address] = float(result.value["deadline"])
                else:
                    fatal |= ends_leasing(result)
            if fatal and not leased:
                break
        return leased[:count]

    async def release(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        """Give leased vessels back to the pool."""
        async def op(client: NodeClient, job: Job) -> str:
            await client.release_vessel(job.vessel)
            self.leases.pop(job.target, None)
            return "released"
        return await self.do(vessels, op)

    # ---- programs ----

    async def upload(self, vessels: Sequence[Vessel], name: str, data: bytes | Path,
                     ) -> list[NodeResult]:
        """Put ``data`` (or a local file's bytes) into every vessel as ``name``."""
        body = data.read_bytes() if isinstance(data, Path) else data

        async def op(client: NodeClient, job: Job) -> int:
            await client.add_file(job.vessel, name, body)
            return len(body)
        return await self.do(vessels, op, deadline=max(self.timeout, len(body) / 1_000_000))

    async def download(self, vessels: Sequence[Vessel], name: str) -> list[NodeResult]:
        """Each vessel's file ``name`` (``value``: its bytes)."""
        async def op(client: NodeClient, job: Job) -> bytes:
            return await client.retrieve_file(job.vessel, name)
        return await self.do(vessels, op)

    async def start(self, vessels: Sequence[Vessel], program: str,
                    args: Sequence[str] | Callable[[Vessel], Sequence[str]] = ()) -> list[NodeResult]:
        """Start ``program`` (a file in the vessel) with ``args`` (or ``args(vessel)``)."""
        by_address = {v.address: v for v in vessels}

        async def op(client: NodeClient, job: Job) -> str:
            argv = args(by_address[job.target]) if callable(args) else args
            return await client.start_vessel(job.vessel, program, list(argv))
        return await self.do(vessels, op)

    async def run(self, vessels: Sequence[Vessel], program: Path,
                  args: Sequence[str] | Callable[[Vessel], Sequence[str]] = ()) -> list[NodeResult]:
        """Upload the local ``program`` and start it; a failed upload is that vessel's
        result (its program is not started)."""
        uploaded = await self.upload(vessels, program.name, program)
        good = [v for v, r in zip(vessels, uploaded, strict=True) if r.ok]
        started = {r.target: r for r in await self.start(good, program.name, args)}
        return [started.get(r.target, r) for r in uploaded]

    async def stop(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        """Stop each vessel's program (one that is not running is fine: ``not running``)."""
        async def op(client: NodeClient, job: Job) -> str:
            try:
                return await client.stop_vessel(job.vessel)
            except VesselNotRunning:
                return "not running"
        return await self.do(vessels, op)

    async def status(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        """Each vessel's ``VesselInfo`` (one GetVessels per node)."""
        return await self.do(vessels, node_info_op())

    async def wait(self, vessels: Sequence[Vessel], timeout: float | None = None,
                   ) -> list[NodeResult]:
        """Until no vessel's program runs (at most ``timeout`` s); then how each ended:
        ok, failed (with its reason) or timeout (still running). Vessels that do not
        answer fail at once and are not waited for."""
        results = await self.status(vessels)
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while any(r.ok and running(r.value) for r in results):
                await trio.sleep(POLL_INTERVAL)
                results = await self.status(vessels)
        return [ending(r, timeout) for r in results]

    async def read_logs(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        """The text each vessel logged since the last ``read_logs`` of it (``value``: str;
        a gap the node did not keep and a restart of the program are said in the text)."""
        return await self.do(vessels, self._logs.read)
