"""The community pool on a running node (trio shell around ``pool.py``; docs/pool.md).

``PoolService`` answers AcquireVessel, RenewLease and ReleaseVessel, ends leases at their
deadline (``run``, a task in the server's nursery), and lists what the node advertises for
the pool: free vessels under the pool's listing key, leases under their researcher's key.

Acquisition (the quota argument is in docs/pool.md): check the credential and consent;
under a per-researcher lock and the vessel's lock, check the vessel is free and the
researcher's leases *here* are below quota; wipe the vessel; publish the lease record (a
short-lived claim) into the DHT; then look the researcher up and count their live leases
in the pool, this claim included; refuse if the count is above quota (withdrawing the
claim), else commit the lease with the request's nonce in one transaction. A node that
grants concurrently with another sees the other's claim if the other published before it
looked: of any set of concurrent grants, the last to look sees all of them. A few seconds
after each grant (and every ``RECHECK_EVERY``) the node counts again and gives back its
leases that rank past the quota (youngest first), should the DHT have hidden a claim.

The pool's revocation list (nodemanager/proto/revocation.py) is looked up every 30 s and
alongside acquisitions; a higher list is adopted and persisted, and leases under a revoked
serial end at the next expiry tick. An open pool's acquisitions carry a proof of work,
checked with one hash and kept single-use in the nonce table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from nodemanager import errors
from nodemanager.node.leases import LeaseBook, load_revocations, save_revocations
from nodemanager.node.model import Change
from nodemanager.node.pool import (
    CLAIM_TTL,
    Lease,
    PoolConfig,
    due,
    first_deadline,
    live_leases,
    over_quota,
    renewed_deadline,
)
from nodemanager.proto import messages as m
from nodemanager.proto.auth import Verified
from nodemanager.proto.pool import (
    FreeTag,
    check_credential,
    check_work,
    consent_valid,
    encode_tag,
    listing_key,
)
from nodemanager.proto.revocation import newer, read_list, revocation_key
from overlay import ADVERT_TTL, Directory, LookupResult, PublishResult, make_advert
from seattlecore import PublicKey

if TYPE_CHECKING:
    from nodemanager.node.server import NodeServer

log = logging.getLogger(__name__)

RECHECK_AFTER = 3.0
"""Seconds after a grant before the node counts the researcher's leases again."""
RECHECK_WINDOW = 30.0
"""Seconds after a grant during which the researcher's leases are recounted every
``RECHECK_AFTER`` (a concurrent grant's record may still be a claim at the first count)."""
RECHECK_EVERY = 60.0
"""Seconds between counts of every lessee's leases (detects overshoot the DHT hid)."""
TICK = 0.5
"""Most seconds between two looks at the deadlines."""

RECOUNTS = 4
"""Lookups a claim may make before it is refused (it waits while it ranks within the quota)."""
RECOUNT_PAUSE = 0.1
"""Seconds before the second lookup (then twice, three times as long)."""
DHT_TIMEOUT = 10.0
"""Seconds a grant waits for its publish and lookup before it is refused."""
REVOCATIONS_EVERY = 30.0
"""Seconds between two looks at the pool's revocation list (docs/pool.md, Revocation)."""
REVOCATIONS_FRESH = 5.0
"""An acquisition looks the list up again unless it was looked up this recently."""

Pair = tuple[str, PublicKey]


class DirectoryBridge:
    """``Directory`` calls made from the server's tasks, carried out by ``serve`` inside the
    task that owns the DHT's asyncio loop (trio_asyncio loops are task-scoped)."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[
            tuple[str, Any, trio.Event, dict[str, Any]]](64)

    async def publish(self, adverts: Sequence[bytes]) -> PublishResult:
        result: PublishResult = await self._call("publish", adverts)
        return result

    async def lookup(self, user_key: PublicKey) -> LookupResult:
        result: LookupResult = await self._call("lookup", user_key)
        return result

    async def _call(self, name: str, argument: object) -> Any:
        done, box = trio.Event(), dict[str, Any]()
        await self._send.send((name, argument, done, box))
        await done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def serve(self, directory: Directory) -> None:
        """Carry out calls until cancelled (run it inside ``dht_loop``)."""
        async def one(name: str, argument: Any, done: trio.Event, box: dict[str, Any]) -> None:
            try:
                box["value"] = await getattr(directory, name)(argument)
            except Exception as exc:  # handed to the caller, which refuses its request
                box["error"] = exc
            finally:
                done.set()

        async with trio.open_nursery() as nursery:
            async for name, argument, done, box in self._receive:
                nursery.start_soon(one, name, argument, done, box)


class PoolService:
    """The pool's requests, lease expiry and advert entries of one node."""

    def __init__(self, server: NodeServer, config: PoolConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.config = config
        self.clock = clock
        self.book = LeaseBook(server.state)
        self.listing = listing_key(config.key)
        self.revocations = load_revocations(server.state, config.key)
        """The highest revocation list seen (persisted; never replaced by a lower one)."""
        self._revocations_at = float("-inf")
        self._revocations_lock = trio.Lock()
        self._directory: Directory | None = None
        self._address = ""
        self._researcher_locks: dict[bytes, trio.Lock] = {}
        self._claimed: set[str] = set()
        self._recheck: dict[bytes, float] = {}
        self._seq = 0
        self._seq_source: Callable[[], int] | None = None
        self.given_back = 0
        """Leases this node ended because they ranked past a quota (overshoot detected)."""

    # ---- seams ----

    def attach(self, directory: Directory | None, address: str = "",
               seq: Callable[[], int] | None = None) -> None:
        """Count leases in ``directory`` (the node's DHT node) from now on; None: only here.
        ``seq``: the announcer's sequence numbers, so its next round replaces our claims."""
        self._directory, self._address = directory, address
        self._seq_source = seq

    @property
    def revoked(self) -> frozenset[int]:
        return self.revocations.serials

    def is_pool_vessel(self, name: str) -> bool:
        return name in self.config.vessels and name in self.server.state.vessels

    @property
    def offering(self) -> bool:
        """Whether free vessels are offered: not while the donor has paused the node (a
        vessel leased then could not run)."""
        return self.server.donor_paused is None

    def advert_pairs(self) -> dict[Pair, bytes]:
        """Pairs to advertise with their tags: free vessels under the listing key (while
        ``offering``), leases under their researcher's key."""
        out: dict[Pair, bytes] = {}
        reach = self._reach()
        for name in self.config.vessels:
            vessel = self.server.state.vessels.get(name)
            if vessel is None:
                continue
            lease = self.book.leases.get(name)
            if lease is not None:
                out[(name, lease.researcher)] = encode_tag(lease.tag(self.config.key))
            elif self.offering and name not in self._claimed:
                table = vessel.resources
                out[(name, self.listing)] = encode_tag(FreeTag(
                    pool=self.config.key, cpu=float(table["cpu"]), memory=int(table["memory"]),
                    disk=int(table["diskused"]), reach=reach))
        return out

    def _reach(self) -> str:
        if self.server.relays:
            return "nat"
        reach = self.server.status.reach()
        return "public" if reach is None or reach.get("tcp") == "public" else "unknown"

    def status(self) -> dict[str, object]:
        """GetNodeStatus's ``pool`` map: the pool and each pool vessel's lease."""
        vessels = {}
        for name in self.config.vessels:
            lease = self.book.leases.get(name)
            vessels[name] = None if lease is None else {
                "researcher": lease.researcher.raw, "granted": lease.granted,
                "deadline": lease.deadline}
        return {"key": self.config.key.raw, "lease": self.config.lease,
                "max_lease": self.config.max_lease, "vessels": vessels,
                "given_back": self.given_back, "revocations": self.revocations.seq,
                "revoked": len(self.revocations.serials)}

    # ---- requests ----

    async def execute(self, verified: Verified, *, nonce: bool = True) -> dict[str, object]:
        """Carry out a pool request. ``nonce`` False: a call of a ``Batch`` whose nonce the
        batch consumed already (the call records none of its own)."""
        request = verified.request
        own = verified.nonce if nonce else None
        if verified.requester is None:
            raise errors.SignatureRequired(f"{request.op} must be signed")
        if not isinstance(request, m.AcquireVessel | m.RenewLease | m.ReleaseVessel):
            raise errors.UnknownOperation(request.op)
        if request.vessel not in self.server.state.vessels:
            raise errors.NoSuchVessel(f"no vessel named {request.vessel!r} on this node")
        if not self.is_pool_vessel(request.vessel):
            raise errors.NotInPool(f"{request.vessel} is not a pool vessel")
        if own is not None and self.server.state.query("SELECT 1 FROM nonces WHERE nonce = ?",
                                                       (own,)):
            raise errors.ReplayedNonce("this request's nonce was already used")
        if isinstance(request, m.AcquireVessel):
            return await self._acquire(request, verified, verified.requester, own)
        lease = self.book.leases.get(request.vessel)
        if lease is None or lease.researcher != verified.requester or lease.ending:
            raise errors.Forbidden(f"{request.op}: requester holds no lease on {request.vessel}")
        if isinstance(request, m.RenewLease):
            return await self._renew(request, verified, lease, own)
        await self.end(request.vessel, "released", nonce=verified if nonce else None)
        return {"vessel": request.vessel, "released": True}

    def _researcher_lock(self, key: PublicKey) -> trio.Lock:
        if len(self._researcher_locks) > 256:
            self._researcher_locks = {k: v for k, v in self._researcher_locks.items() if v.locked()}
        return self._researcher_locks.setdefault(key.raw, trio.Lock())

    async def _acquire(self, request: m.AcquireVessel, verified: Verified,
                       researcher: PublicKey, own: bytes | None) -> dict[str, object]:
        config, now = self.config, self.clock()
        cred = check_credential(request.credential, pool=config.key, researcher=researcher,
                                now=now, revoked=self.revoked)
        if not consent_valid(researcher, config.key, self.server.node, request.vessel,
                             verified.timestamp, request.consent):
            raise errors.BadCredential("consent does not verify for this pool, node, vessel "
                                       "and request time")
        spent: list[tuple[str, tuple[object, ...]]] = []
        if cred.open:  # the work is single-use: its digest is kept like a request nonce
            digest = check_work(cred, researcher, self.server.node, request.vessel,
                                verified.timestamp, request.work)[:16]
            spent.append(("INSERT INTO nonces VALUES (?, ?)", (digest, verified.timestamp)))
        async with self._researcher_lock(researcher), self.server.vessel_lock(request.vessel):
            if request.vessel in self.book.leases or request.vessel in self._claimed:
                raise errors.VesselTaken(f"{request.vessel} is leased (taken meanwhile)")
            if not self.offering:  # a listing read before the donor paused the node
                raise errors.VesselTaken(f"{request.vessel} is not offered while the donor has "
                                         f"paused this node ({self.server.donor_paused})")
            for _, (used, _) in spent:  # checked under the vessel's lock: no reuse race
                if self.server.state.query("SELECT 1 FROM nonces WHERE nonce = ?", (used,)):
                    raise errors.InsufficientWork("this proof of work was used already")
            mine = self.book.of(researcher)
            if len(mine) >= cred.vessels:
                raise errors.QuotaReached(
                    f"quota reached: {len(mine)} of {cred.vessels} leases held on this node")
            now = self.clock()
            lease = Lease(vessel=request.vessel, researcher=researcher, granted=now,
                          deadline=min(first_deadline(config, request.lease, now), cred.expires),
                          consent_at=verified.timestamp, consent=request.consent,
                          serial=cred.serial, quota=cred.vessels,
                          credential_expires=cred.expires)
            self._claimed.add(request.vessel)
            try:
                failure: Exception | None = None
                async with trio.open_nursery() as nursery:  # the list, while we claim
                    nursery.start_soon(self.refresh_revocations, REVOCATIONS_FRESH)
                    try:
                        await self.server.wipe(request.vessel)
                        await self._claim_and_count(lease, cred.vessels)
                    except Exception as exc:  # raised below as itself, not in a group
                        failure = exc
                        nursery.cancel_scope.cancel()
                if failure is not None:
                    raise failure
                if cred.serial in self.revoked:
                    await self._withdraw(request.vessel, researcher)
                    raise errors.CredentialRevoked(
                        f"credential serial {cred.serial} was revoked by the pool's planner")
                async with self.server.commit_lock:
                    vessel = self.server.state.vessels[request.vessel]
                    leased = replace(vessel, users=(researcher,), status="Fresh",
                                     exit_reason=None, exit_code=None)
                    self.server.state.commit(
                        Change(put=(leased,)), nonce=own, ts=verified.timestamp,
                        now=now, also=[self.book.put(lease), *spent])
                    self.book.committed(put=lease)
            finally:
                self._claimed.discard(request.vessel)
        self.server.reannounce()
        self._recheck[researcher.raw] = self.clock() + RECHECK_AFTER
        log.info("leased %s to %s until %.0f", lease.vessel, researcher.short(), lease.deadline)
        return {"vessel": lease.vessel, "granted": lease.granted, "deadline": lease.deadline,
                "pool": config.key.raw, "quota": cred.vessels}

    def _next_seq(self, now: float) -> int:
        if self._seq_source is not None:
            return self._seq_source()
        self._seq = max(self._seq + 1, int(now * 1000))
        return self._seq

    async def _claim_and_count(self, lease: Lease, quota: int) -> None:
        """Publish the lease record, then count the researcher's leases (QuotaReached)."""
        directory = self._directory
        if directory is None:
            return
        now = self.clock()
        seq = self._next_seq(now)
        keys, pool = self.server.keys, self.config.key
        claim = make_advert(keys, address=self._address, vessel=lease.vessel,
                            user_key=lease.researcher, seq=seq, expires_at=now + CLAIM_TTL,
                            tag=encode_tag(lease.tag(pool, tentative=True)))
        try:
            with trio.fail_after(DHT_TIMEOUT):
                stored = await directory.publish([claim])
            for attempt in range(RECOUNTS):
                with trio.fail_after(DHT_TIMEOUT):
                    found = await directory.lookup(lease.researcher)
                verdict = self._verdict(lease, quota, found, stored.stores_accepted > 0)
                if verdict != "wait":
                    break
                await trio.sleep(RECOUNT_PAUSE * (attempt + 1))
        except Exception as exc:  # the DHT failing must refuse the grant, not end the node
            log.warning("counting leases failed: %r", exc)
            await self._withdraw(lease.vessel, lease.researcher)
            raise errors.PoolError("the pool's lease records cannot be checked now; "
                                   "try again") from exc
        if verdict == "grant":
            return
        await self._withdraw(lease.vessel, lease.researcher)
        if verdict == "invisible":  # others may not see it: granting could pass their quota
            raise errors.PoolError("the lease record did not reach the DHT; try again")
        raise errors.QuotaReached(f"quota reached: {quota} leases held or being granted "
                                  "in the pool")

    def _verdict(self, lease: Lease, quota: int, found: LookupResult, stored: bool) -> str:
        """``grant`` if every visible lease and claim of the researcher fits the quota (the
        safe rule: docs/pool.md); ``wait`` if not, but this claim ranks within the quota
        among the claims (others ranked past it withdraw theirs: count again); ``invisible``
        if our own claim is not in the DHT; else ``refuse``."""
        node = self.server.keys.public
        seen = live_leases(found.candidates, researcher=lease.researcher,
                           pool=self.config.key, now=self.clock())
        held = {(s.node.raw, s.vessel) for s in seen}
        if not stored or (node.raw, lease.vessel) not in held:
            return "invisible"
        held |= {(node.raw, name) for name in self.book.of(lease.researcher)}
        log.debug("claim %s for %s: the DHT shows %d leases and claims, %d held of %d",
                  lease.vessel, lease.researcher.short(), len(seen), len(held), quota)
        if len(held) <= quota:
            return "grant"
        granted = {(s.node.raw, s.vessel) for s in seen if not s.tentative}
        granted |= {(node.raw, name) for name in self.book.of(lease.researcher)}
        claims = sorted((s for s in seen if s.tentative and (s.node.raw, s.vessel) not in granted),
                        key=lambda s: s.order)
        rank = [(s.node.raw, s.vessel) for s in claims].index((node.raw, lease.vessel))
        return "wait" if len(granted) + rank < quota else "refuse"

    async def _renew(self, request: m.RenewLease, verified: Verified,
                     lease: Lease, own: bytes | None) -> dict[str, object]:
        async with self.server.vessel_lock(request.vessel):
            now = self.clock()
            current = self.book.leases.get(request.vessel)
            if current is None or current != lease:
                raise errors.Forbidden(f"RenewLease: the lease on {request.vessel} changed")
            if lease.credential_expires <= now:
                raise errors.CredentialExpired("the credential of this lease has expired")
            if lease.serial in self.revoked:
                raise errors.CredentialRevoked("the credential of this lease was revoked")
            renewed = replace(lease, deadline=renewed_deadline(self.config, lease,
                                                               request.lease, now))
            async with self.server.commit_lock:
                self.server.state.commit(None, nonce=own, ts=verified.timestamp,
                                         now=now, also=[self.book.put(renewed)])
                self.book.committed(put=renewed)
        self.server.reannounce()
        return {"vessel": renewed.vessel, "deadline": renewed.deadline,
                "granted": renewed.granted}

    # ---- ending leases ----

    async def end(self, vessel: str, reason: str, *, nonce: Verified | None = None) -> None:
        """Stop the program, wipe files and log, remove the user, free the vessel.

        ``ending`` is committed first: a crash before the last commit leaves a lease that the
        restarted node ends (``run``); the vessel is never free with the old files."""
        async with self.server.vessel_lock(vessel):
            lease = self.book.leases.get(vessel)
            if lease is None:
                return
            if not lease.ending:
                ending = replace(lease, ending=True)
                async with self.server.commit_lock:
                    self.server.state.commit(
                        None, nonce=None if nonce is None else nonce.nonce,
                        ts=0.0 if nonce is None else nonce.timestamp, now=self.clock(),
                        also=[self.book.put(ending)])
                    self.book.committed(put=ending)
            await self.server.wipe(vessel)
            async with self.server.commit_lock:
                current = self.server.state.vessels[vessel]
                freed = replace(current, users=(), status="Fresh", exit_reason=None,
                                exit_code=None)
                self.server.state.commit(Change(put=(freed,)), also=[self.book.delete(vessel)])
                self.book.committed(deleted=vessel)
        log.info("lease of %s by %s ended: %s", vessel, lease.researcher.short(), reason)
        self.server.reannounce()
        await self._withdraw(vessel, lease.researcher)

    async def _withdraw(self, vessel: str, researcher: PublicKey) -> None:
        """Publish the lease record's tombstone now (the announcer's round may come later),
        so the researcher's next acquisition does not count this lease (bounded, best effort).
        It lives as long as the last positive record could: a replay cannot resurrect it."""
        directory = self._directory
        if directory is None:
            return
        now = self.clock()
        tombstone = make_advert(self.server.keys, address=self._address, vessel=vessel,
                                user_key=researcher, seq=self._next_seq(now),
                                expires_at=now + ADVERT_TTL, withdrawn=True)
        with trio.move_on_after(DHT_TIMEOUT):
            try:
                await directory.publish([tombstone])
            except Exception as exc:  # the announcer's round withdraws it too
                log.warning("withdrawing an ended lease failed: %r", exc)

    async def run(self) -> None:
        """End leases at their deadline (interrupted ends at once), recount quotas and look
        at the revocation list, in separate tasks: a slow DHT lookup never delays an expiry."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire)
            nursery.start_soon(self._recount)
            nursery.start_soon(self._watch_revocations)

    async def _watch_revocations(self) -> None:
        while True:
            await self.refresh_revocations(REVOCATIONS_EVERY)
            await trio.sleep(REVOCATIONS_EVERY)

    async def refresh_revocations(self, max_age: float) -> bool:
        """Look the pool's revocation list up unless it was looked up within ``max_age``
        seconds; adopt it if its seq is higher than ours (persisted). True if adopted.
        Leases under a revoked serial are ended by the expiry task; never raises."""
        directory = self._directory
        if directory is None or self.clock() - self._revocations_at < max_age:
            return False
        async with self._revocations_lock:
            if self.clock() - self._revocations_at < max_age:
                return False
            try:
                with trio.fail_after(DHT_TIMEOUT):
                    found = await directory.lookup(revocation_key(self.config.key))
            except Exception as exc:  # the list is looked at again later
                log.warning("looking up the revocation list failed: %r", exc)
                return False
            self._revocations_at = self.clock()
            adopted = newer(self.revocations, read_list(found.candidates, self.config.key))
            if adopted is None:
                return False
            save_revocations(self.server.state, adopted)
            self.revocations = adopted
        log.info("revocation list %d adopted: %d serials revoked", adopted.seq,
                 len(adopted.serials))
        return True

    async def _expire(self) -> None:
        while True:
            now = self.clock()
            for lease in due(list(self.book.leases.values()), now, self.revoked):
                reason = ("interrupted end" if lease.ending else "expired"
                          if lease.deadline <= now else "credential revoked")
                await self.end(lease.vessel, reason)
            deadlines = [lease.deadline - self.clock() for lease in self.book.leases.values()]
            await trio.sleep(max(0.01, min([TICK, *deadlines])))

    async def _recount(self) -> None:
        next_sweep = self.clock() + RECHECK_EVERY
        while True:
            now = self.clock()
            if now >= next_sweep:
                next_sweep = now + RECHECK_EVERY
                for lease in list(self.book.leases.values()):
                    self._recheck.setdefault(lease.researcher.raw, now)
            for raw, when in list(self._recheck.items()):
                if when <= now:
                    del self._recheck[raw]
                    researcher = PublicKey(raw)
                    await self.give_back(researcher)
                    if any(lease.granted > now - RECHECK_WINDOW
                           for lease in self.book.of(researcher).values()):
                        self._recheck.setdefault(raw, self.clock() + RECHECK_AFTER)
            await trio.sleep(TICK)

    async def give_back(self, researcher: PublicKey) -> list[str]:
        """Count ``researcher``'s leases in the pool; end ours that rank past the quota."""
        mine = self.book.of(researcher)
        if not mine or self._directory is None:
            return []
        try:
            with trio.fail_after(DHT_TIMEOUT):
                found = await self._directory.lookup(researcher)
        except Exception as exc:
            log.warning("recounting leases failed: %r", exc)
            return []
        now = self.clock()
        seen = live_leases(found.candidates, researcher=researcher, pool=self.config.key,
                           now=now)
        quota = min(lease.quota for lease in mine.values())
        extra = over_quota(seen, quota, self.server.node, mine)
        for vessel in extra:
            self.given_back += 1
            await self.end(vessel, "quota overshoot: the youngest leases give back")
        return extra


def pool_entries(service: PoolService | None) -> Mapping[Pair, bytes]:
    return {} if service is None else service.advert_pairs()
