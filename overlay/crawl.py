"""Lookups, publishing, store checks, refresh and walks: the asyncio drivers of ``lookup``.

Every answer goes through its decoder in ``answers`` before use; a peer that answers garbage
or not at all fails that query (and leaves our routing table), and nothing it sent can raise
out of a crawl. Each lookup has a total deadline; what it found by then is returned with
``complete=False``. Pages of records are fetched in parallel.

``Peer`` is the seam to the wire protocol (``dht.AdProtocol``), so these drivers never touch
kademlia or sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from overlay.answers import (
    MAX_PAGES,
    Contact,
    ValueAnswer,
    decode_contacts,
    decode_find_value,
    decode_page,
    decode_store,
)
from overlay.errors import BadAnswer, DhtUnavailable
from overlay.lookup import Candidate, Lookup, LookupParams
from overlay.netgroup import Scope, host_scope
from overlay.routing import RoutingTable

log = logging.getLogger(__name__)

PAGED_HOLDERS = 2
"""Per key, the holders whose pages after the first a reader fetches."""
PAGE_GRACE = 2.0
"""Once the paths converged, wait this many soft timeouts for outstanding pages."""


class Peer(Protocol):
    """What the drivers need from the wire protocol."""

    router: RoutingTable
    bits: int
    """The id puzzle difficulty contacts must meet."""

    @property
    def own_id(self) -> bytes: ...

    async def call(self, addr: tuple[str, int], name: str, *args: Any) -> Any: ...

    def soft_timeout(self) -> float: ...

    def note_answer(self, contact: Contact) -> None: ...

    def note_no_answer(self, contact: Contact) -> None: ...

    def note_bad_answer(self, contact: Contact) -> None: ...

    def note_silent(self, addr: tuple[str, int]) -> None: ...

    def is_silent(self, addr: tuple[str, int]) -> bool: ...

    def linger(self, task: asyncio.Future[Any], contact: Contact) -> None: ...


@dataclass(slots=True)
class Search:
    """What one lookup found."""

    complete: bool = True
    closest: list[Contact] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    records: list[tuple[str, bytes]] = field(default_factory=list)
    holders: set[str] = field(default_factory=set)
    queries: int = 0

    def merge(self, other: Search) -> None:
        self.complete = self.complete and other.complete
        self.answered |= other.answered
        self.records.extend(other.records)
        self.holders |= other.holders
        self.queries += other.queries


def _scope(contact: Contact) -> Scope:
    try:
        return host_scope(contact.host)
    except ValueError:
        return "global"


class _Driver:
    """Runs one ``Lookup`` against the network until it converges or the deadline passes."""

    def __init__(self, peer: Peer, lookup: Lookup, ask: Callable[[Candidate], Awaitable[list[Contact]]],
                 deadline: float) -> None:
        self.peer = peer
        self.lookup = lookup
        self.ask = ask
        self.deadline = deadline
        self.running: dict[asyncio.Future[Any], Candidate] = {}
        self.extra: set[asyncio.Future[Any]] = set()

    def _launch(self, now: float) -> None:
        while True:
            batch = self.lookup.next_queries(now)
            if not batch:
                return
            for cand in batch:
                if self.peer.is_silent(cand.contact.addr) and self._other_way(cand):
                    self.lookup.skip(cand)
                else:
                    self.running[asyncio.ensure_future(self.ask(cand))] = cand

    def _other_way(self, cand: Candidate) -> bool:
        """May ``cand`` (silent lately) be skipped? Only while the lookup has another way on:
        a query in flight or an answer. Skipping a silent peer saves a timeout; skipping the
        only one left (a busy bootstrap peer that dropped one datagram) would end the lookup
        empty-handed and keep it so for ``SILENT_TTL``, so it is asked once more instead."""
        return bool(self.running) or self.lookup.has_answers() or any(
            c is not cand for c in self.lookup.inflight())

    def _settle(self, task: asyncio.Future[Any], cand: Candidate) -> None:
        try:
            contacts = task.result()
        except BadAnswer as exc:
            log.debug("bad answer from %s: %s", cand.contact.label, exc)
            self.lookup.failed(cand)
            self.peer.note_bad_answer(cand.contact)
        except DhtUnavailable:
            self.lookup.failed(cand)
            self.peer.note_no_answer(cand.contact)
        except Exception:  # a bug on our side must not let a peer's answer kill the crawl
            log.exception("lookup query to %s failed", cand.contact.label)
            self.lookup.failed(cand)
        else:
            self.lookup.answered(cand, contacts)
            self.peer.note_answer(cand.contact)

    def _mark_slow(self, now: float) -> float:
        """Mark queries past the soft timeout slow; return seconds until the next one is due."""
        soft = self.peer.soft_timeout()
        due = self.deadline - now
        for cand in self.running.values():
            if cand.state != "inflight":
                continue
            left = cand.sent_at + soft - now
            if left <= 0:
                self.lookup.slow(cand)
                self.peer.note_silent(cand.contact.addr)  # skipped by lookups until it answers
            else:
                due = min(due, left)
        return due

    async def run(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                due = self._mark_slow(now)
                self._launch(now)
                if self.lookup.finished:
                    return await self._finish_pages(loop)
                if not self.running or now >= self.deadline:
                    return False
                due = min(due, self._mark_slow(now))
                waiting: list[asyncio.Future[Any]] = [*self.running, *self.extra]
                done, _ = await asyncio.wait(waiting, timeout=max(due, 0.001),
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    cand = self.running.pop(task, None)
                    if cand is not None:
                        self._settle(task, cand)
                    self.extra.discard(task)
        finally:
            for task, cand in self.running.items():  # stragglers: let them answer or time out
                self.peer.linger(task, cand.contact)
            await _cancel(list(self.extra))

    async def _finish_pages(self, loop: asyncio.AbstractEventLoop) -> bool:
        if not self.extra:
            return True
        wait = min(self.deadline - loop.time(), PAGE_GRACE * self.peer.soft_timeout())
        if wait > 0:
            _, pending = await asyncio.wait(self.extra, timeout=wait)
        else:
            pending = set(self.extra)
        return not pending


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def seeds_for(peer: Peer, target: bytes, params: LookupParams) -> list[Contact]:
    """The starting contacts: our k closest to ``target``, at least one per path if we can."""
    return peer.router.closest(target, max(params.k, params.paths))


async def find_nodes(peer: Peer, target: bytes, params: LookupParams, deadline: float,
                     seeds: Sequence[Contact] | None = None) -> Search:
    """The k closest live nodes to ``target`` over disjoint paths."""

    async def ask(cand: Candidate) -> list[Contact]:
        raw = await peer.call(cand.contact.addr, "find_node", peer.own_id, target)
        return decode_contacts(raw, introducer=_scope(cand.contact), bits=peer.bits)

    start = seeds_for(peer, target, params) if seeds is None else list(seeds)
    lookup = Lookup(target, start, params, own_id=peer.own_id)
    complete = await _Driver(peer, lookup, ask, deadline).run()
    return Search(complete=complete, closest=lookup.closest_answered(params.k),
                  answered=set(lookup.answered_labels()), queries=lookup.queries)


async def find_records(peer: Peer, key: bytes, params: LookupParams, deadline: float, *,
                       valid: Callable[[bytes], bool], seeds: Sequence[Contact] | None = None) -> Search:
    """The records the nodes near ``key`` hold (all their pages), over disjoint paths.

    ``valid(blob)`` says whether a record verifies; a peer that returned at least one valid
    record counts toward its path's quorum (``LookupParams.quorum``). Every holder's first
    page is read (stores order pages round-robin over sources, so it shows every source);
    the further pages of ``PAGED_HOLDERS`` holders are fetched, all at once.
    """
    search = Search()
    paged: set[str] = set()
    driver: _Driver

    async def fetch_page(contact: Contact, index: int) -> None:
        raw = await peer.call(contact.addr, "find_ads_page", peer.own_id, key, index)
        search.records.extend((contact.label, b) for b in decode_page(raw))

    async def ask(cand: Candidate) -> list[Contact]:
        contact = cand.contact
        raw = await peer.call(contact.addr, "find_value", peer.own_id, key)
        answer = decode_find_value(raw, introducer=_scope(contact), bits=peer.bits)
        if not isinstance(answer, ValueAnswer):
            return answer
        search.holders.add(contact.label)
        search.records.extend((contact.label, b) for b in answer.records)
        if any(valid(b) for b in answer.records):
            lookup.holder(cand)
        if answer.pages > 1 and len(paged) < PAGED_HOLDERS:
            paged.add(contact.label)
            for index in range(1, min(answer.pages, MAX_PAGES)):
                driver.extra.add(asyncio.ensure_future(_quiet_page(fetch_page(contact, index))))
        return answer.contacts

    start = seeds_for(peer, key, params) if seeds is None else list(seeds)
    lookup = Lookup(key, start, params, own_id=peer.own_id)
    driver = _Driver(peer, lookup, ask, deadline)
    search.complete = await driver.run()
    search.closest = lookup.closest_answered(params.k)
    search.answered = set(lookup.answered_labels())
    search.queries = lookup.queries
    return search


async def _quiet_page(fetch: Awaitable[None]) -> None:
    try:
        await fetch
    except (BadAnswer, DhtUnavailable) as exc:
        log.debug("page fetch failed: %s", exc)


async def store_at(peer: Peer, contacts: Sequence[Contact], key: bytes,
                   chunks: Sequence[bytes]) -> int:
    """STORE each packed chunk at each contact; return how many STOREs were accepted."""

    async def one(contact: Contact, chunk: bytes) -> bool:
        try:
            return decode_store(await peer.call(contact.addr, "store", peer.own_id, key, chunk))
        except (BadAnswer, DhtUnavailable):
            return False

    results = await asyncio.gather(*(one(c, chunk) for c in contacts for chunk in chunks))
    return sum(results)


def confirmed_by(search: Search, blobs: Sequence[bytes], own: str | None = None) -> set[str]:
    """Holders (other than ``own``) that returned every one of ``blobs``."""
    wanted = set(blobs)
    held: dict[str, set[bytes]] = {}
    for source, blob in search.records:
        if blob in wanted and source != own:
            held.setdefault(source, set()).add(blob)
    return {source for source, got in held.items() if got == wanted}


def independent_seeds(peer: Peer, key: bytes, avoid: Sequence[Contact], count: int) -> list[Contact]:
    """Seeds for a check lookup that shares no first hop with the publish: a sample of our
    table outside the ``avoid`` set (the publish's closest contacts and seeds)."""
    avoided = {c.node_id for c in avoid}
    others = [c for c in peer.router.contacts() if c.node_id not in avoided]
    if not others:
        return peer.router.closest(key, count)
    step = max(1, len(others) // count)
    return others[::step][:count]


async def walk(peer: Peer, max_nodes: int, probes: int = 3) -> tuple[list[str], list[str]]:
    """Crawl the whole network: ask every node found for nodes near random ids.

    Returns (addresses that answered, addresses that did not).
    """
    live, dead = await walk_contacts(peer, max_nodes, probes)
    return [c.label for c in live], [c.label for c in dead]


async def walk_contacts(peer: Peer, max_nodes: int,
                        probes: int = 3) -> tuple[list[Contact], list[Contact]]:
    """``walk``, with the contacts (ids and addresses) that answered and that did not."""
    seen: dict[str, Contact] = {c.label: c for c in peer.router.contacts()}
    live: list[Contact] = []
    dead: list[Contact] = []
    queue = list(seen.values())
    while queue and len(live) + len(dead) < max_nodes:
        batch, queue = queue[:16], queue[16:]
        replies = await asyncio.gather(*(_probe(peer, c, probes) for c in batch))
        for contact, found in zip(batch, replies, strict=True):
            (live if found is not None else dead).append(contact)
            for other in found or []:
                if other.label not in seen:
                    seen[other.label] = other
                    queue.append(other)
    return live, dead


async def _probe(peer: Peer, contact: Contact, probes: int) -> list[Contact] | None:
    found: list[Contact] = []
    targets = [contact.node_id] + [_random_id() for _ in range(probes)]
    for target in targets:
        try:
            raw = await peer.call(contact.addr, "find_node", peer.own_id, target)
            found.extend(decode_contacts(raw, introducer=_scope(contact), bits=peer.bits))
        except (BadAnswer, DhtUnavailable):
            return found if found else None
    return found


def _random_id() -> bytes:
    return os.urandom(20)
