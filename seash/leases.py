"""The community pool in seash: ``loadgrant``, ``get``, ``renew``, ``release``, ``show leases``.

``get N [public|nat|any] [--spread]`` looks the pool's free vessels up in the DHT (under the
pool's listing key, docs/pool.md), orders them (``choose``: kind first, distinct /24s first
with ``--spread``, shuffled), and sends AcquireVessel to as many as are still needed, in
parallel, until N are leased or nothing is left; each failure is reported per vessel with
its reason (quota reached, credential expired, vessel taken meanwhile). The leased vessels
get ``%N`` ids and form the group ``get`` (or ``as NAME``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from nodemanager import NodeClient
from nodemanager.errors import (
    BadCredential,
    BadPoolRecord,
    ClientError,
    CredentialExpired,
    CredentialRevoked,
    InsufficientWork,
    QuotaReached,
)
from nodemanager.nat.autonat import prefix_of
from nodemanager.proto.pool import (
    Credential,
    FreeTag,
    decode_tag,
    listing_key,
    read_credential,
    solve_work,
)
from overlay import Advert
from seash.client import Job, NodeResult, VesselOp, fan_out, lookup
from seash.commands import Args
from seash.errors import NoVesselsFound, SeashError, UsageError
from seash.executor import Executor
from seash.parse import parse_hostport
from seash.session import VesselRef
from seattlecore import PublicKey

KINDS = ("any", "public", "nat")
FATAL = (QuotaReached, CredentialExpired, CredentialRevoked, BadCredential, InsufficientWork)
"""Refusals that no other vessel would answer differently: ``get`` stops asking."""
MAX_GET = 1000
LISTING_LOOKUPS = 2
"""Lookups of the pool's listing before ``get`` says none is free."""
LISTING_PAUSE = 1.0


def ends_leasing(result: NodeResult) -> bool:
    """Whether a failed acquisition's reason (one of ``FATAL``) holds for every vessel."""
    return any(cls.code in (result.error or "") for cls in FATAL)


@dataclass(frozen=True, slots=True)
class Offer:
    """A free pool vessel seen in the DHT."""

    advert: Advert
    tag: FreeTag

    @property
    def address(self) -> str:
        return f"{self.advert.address}:{self.advert.vessel}"

    @property
    def net(self) -> str:
        """The node's /24 (IPv4) or /48 (IPv6), from the address it advertises."""
        return network_of(self.advert.address)


def network_of(address: str) -> str:
    """The /24 (IPv6: /48) of a ``host:port`` address."""
    return prefix_of(address.rpartition(":")[0].strip("[]"))


def offers_from(adverts: Iterable[Advert], pool: PublicKey) -> list[Offer]:
    """The pool's free vessels among looked-up adverts (others and bad tags skipped)."""
    listing = listing_key(pool)
    out = []
    for advert in adverts:
        if advert.withdrawn or advert.user_key != listing or not advert.tag:
            continue
        try:
            tag = decode_tag(advert.tag)
        except BadPoolRecord:
            continue
        if isinstance(tag, FreeTag) and tag.pool == pool:
            out.append(Offer(advert, tag))
    return out


def choose(offers: Sequence[Offer], kind: str, spread: bool, rng: random.Random) -> list[Offer]:
    """The order to try offers in (pure): those of ``kind`` only, shuffled; with ``spread``,
    one per /24 first (round robin over networks), then the rest."""
    if kind not in KINDS:
        raise UsageError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    pool = [o for o in offers if kind == "any" or o.tag.reach == kind]
    rng.shuffle(pool)
    if not spread:
        return pool
    by_net: dict[str, list[Offer]] = {}
    for offer in pool:
        by_net.setdefault(offer.net, []).append(offer)
    ordered: list[Offer] = []
    while any(by_net.values()):
        for net in list(by_net):
            if by_net[net]:
                ordered.append(by_net[net].pop(0))
    return ordered


def _credential(ex: Executor) -> tuple[bytes, PublicKey]:
    s = ex.session
    name = s.identity().name
    blob = s.grants.get(name)
    if blob is None:
        raise SeashError(f"no pool credential for {name}: 'loadgrant FILE' "
                         "(a planner makes one with 'seattle-installer grant')")
    return blob, read_credential(blob).pool


def grant_path(given: str, home: Path) -> Path:
    """A relative FILE not in the current directory is looked for in the keys directory
    (``--home``), where ``loadkeys`` reads and ``seattle-testbed up --pool`` writes grants."""
    path = Path(given).expanduser()
    if not path.is_absolute() and not path.exists() and (home / path).exists():
        return home / path
    return path


async def loadgrant(ex: Executor, args: Args) -> None:
    path = grant_path(args.need("file"), ex.home)
    try:
        blob = path.read_bytes()
        cred = read_credential(blob)
    except FileNotFoundError as exc:
        where = "" if path.is_absolute() else f" (nor in {ex.home})"
        raise SeashError(f"cannot read {path}: {exc.strerror}{where}") from exc
    except OSError as exc:
        raise SeashError(f"cannot read {path}: {exc.strerror}") from exc
    except BadPoolRecord as exc:
        raise SeashError(f"{path} is not a pool credential: {exc}") from exc
    identity = ex.session.identity()
    if cred.researcher != identity.public and not cred.open:
        raise SeashError(f"{path} is for key {cred.researcher.short()}, not for "
                         f"{identity.name} ({identity.public.short()})")
    ex.session.grants[identity.name] = blob
    left = (cred.expires - time.time()) / 86400
    opened = f" per key, {cred.work} bits of work each (open pool)" if cred.open else ""
    ex.reporter.text(f"credential for pool {cred.pool.short()}: up to {cred.vessels} vessels"
                     f"{opened}, expires in {left:.1f} days")


def _parse_count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_GET:
        raise UsageError(f"N must be a whole number from 1 to {MAX_GET}, got {text!r}")
    return int(text)


Works = dict[tuple[PublicKey | None, str], tuple[float, bytes]]
"""An open pool's proof of work per (node key, vessel), with the moment it was solved for."""


async def solve_works(offers: Sequence[Offer], researcher: PublicKey,
                      cred: Credential) -> Works:
    """The proof of work of each offer's acquisition (an open pool; none for members), each
    in a worker thread before the fan-out: seconds of CPU, which no call's timeout allows."""
    works: Works = {}
    if cred.open:
        for offer in offers:
            at, node, vessel = time.time(), offer.advert.node_key, offer.advert.vessel
            works[(node, vessel)] = (at, await trio.to_thread.run_sync(
                solve_work, cred.pool, researcher, node, vessel, at, cred.work))
    return works


def acquire_op(blob: bytes, cred: Credential, works: Works) -> VesselOp:
    """The fan-out op that leases a job's vessel with the credential ``blob`` (an open
    pool's acquisitions with their work from ``works``, bound to the moment it was solved
    for)."""
    async def acquire(client: NodeClient, job: Job) -> dict[str, Any]:
        at, work = works.get((job.node_key, job.vessel), (None, None))
        if cred.open and work is None:
            raise ClientError(f"no proof of work computed for {job.target}")
        return await client.acquire_vessel(job.vessel, blob, work=work, at=at)
    return acquire


def _left(deadline: float, now: float) -> str:
    seconds = max(0, int(deadline - now))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


async def get(ex: Executor, args: Args) -> None:
    s = ex.session
    count = _parse_count(args.need("count"))
    kind = args.get("kind") or "any"
    group = args.get("group") or "get"
    blob, pool = _credential(ex)
    key = s.signing_key()
    offers: list[Offer] = []
    for attempt in range(LISTING_LOOKUPS):  # a busy DHT's lookup may miss the listing
        if attempt:
            await trio.sleep(LISTING_PAUSE)
        found = await lookup(listing_key(pool), s.settings.bootstrap, s.settings.timeout)
        offers = choose(offers_from(found.candidates, pool), kind, args.flag("--spread"),
                        random.Random())
        if offers:
            break
    if not offers:
        raise NoVesselsFound(f"the DHT lists no free {'' if kind == 'any' else kind + ' '}"
                             f"vessels of pool {pool.short()}")
    for offer in offers:
        ex.pool.learn(offer.advert)
    start = trio.current_time()
    ex.reporter.start("get", count)
    leased: list[int] = []
    results: list[NodeResult] = []
    queue = list(offers)
    stop = False

    cred = read_credential(blob)
    works: Works = {}
    acquire = acquire_op(blob, cred, works)

    serial = False
    retried: set[str] = set()
    while len(leased) < count and queue and not stop:
        size = 1 if serial else count - len(leased)
        batch, queue = queue[:size], queue[size:]
        jobs = []
        for offer in batch:
            host, port = parse_hostport(offer.advert.address)
            jobs.append(Job(offer.address, host, port, offer.advert.vessel, offer.advert.node_key))
        works.update(await solve_works(batch, key.public, cred))
        answers = await fan_out(ex.pool, jobs, acquire, identity=key,
                                limiter=trio.CapacityLimiter(max(1, s.settings.concurrency)),
                                timeout=s.settings.timeout)
        again: list[Offer] = []
        for offer, job, result in zip(batch, jobs, answers, strict=True):
            if result.ok:
                results.append(result)
                number = s.add_vessel(VesselRef(job.host, job.port, job.vessel, job.node_key))
                s.leases[s.vessels[number].address] = float(result.value["deadline"])
                leased.append(number)
                ex.reporter.result(result, f"leased as %{number} for "
                                           f"{_left(result.value['deadline'], time.time())}")
                continue
            fatal = ends_leasing(result)
            if fatal and len(batch) > 1 and QuotaReached.code in (result.error or "") \
                    and offer.address not in retried:
                # concurrent claims of ours count against each other (docs/pool.md): ask
                # again one at a time before believing the quota is reached
                serial = True
                retried.add(offer.address)
                again.append(offer)
                continue
            results.append(result)
            ex.reporter.result(result, None)
            stop |= fatal
        queue = again + queue
    ex.conclude("get", results, start, groups=False)
    s.set_group(group, leased)
    s.record_outcome("get", leased, [])
    if len(leased) < count:
        ex.mark_failed()
        ex.reporter.text(f"leased {len(leased)} of {count} vessels"
                         f"{'' if queue or stop else ' (no more free vessels listed)'}")
    else:
        ex.reporter.text(f"leased {len(leased)} vessels: group {group!r} ('on {group}' to use)")


def _leased_jobs(ex: Executor, target: str | None) -> list[Job]:
    s = ex.session
    with s.using(target=target):
        jobs = [job for job in ex.jobs() if f"{job.host}:{job.port}:{job.vessel}" in s.leases]
    if not jobs:
        raise SeashError("no leased vessels in the target ('get N' leases some)")
    return jobs


async def renew(ex: Executor, args: Args) -> None:
    s = ex.session
    jobs = _leased_jobs(ex, args.get("target"))

    async def op(client: NodeClient, job: Job) -> float:
        answer = await client.renew_lease(job.vessel)
        deadline = float(answer["deadline"])
        s.leases[job.address] = deadline
        return deadline

    await ex.fan("renew", op, lambda d: f"renewed: {_left(d, time.time())} left", jobs=jobs)


async def release(ex: Executor, args: Args) -> None:
    s = ex.session
    jobs = _leased_jobs(ex, args.get("target"))

    async def op(client: NodeClient, job: Job) -> str:
        await client.release_vessel(job.vessel)
        return "released"

    results = await ex.fan("release", op, lambda text: str(text), jobs=jobs, groups=False)
    for result in results:
        if result.ok or "Forbidden" in (result.error or "") or "permission" in (result.error or ""):
            s.forget_vessel(int(result.target[1:]))


async def show_leases(ex: Executor, args: Args) -> None:
    s = ex.session
    now = time.time()
    rows = []
    for number, ref in sorted(s.vessels.items()):
        deadline = s.leases.get(ref.address)
        if deadline is not None:
            rows.append([f"%{number}", ref.address, _left(deadline, now) if deadline > now
                         else "expired"])
    ex.reporter.table("leases", ["id", "vessel", "time left"], rows)
