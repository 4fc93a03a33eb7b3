"""Publishing with an independent read-back, joining, and table/record refresh (asyncio).

A publisher does not trust a STORE's ``True``: nodes near a key may accept and drop (the
Sybil attack of issue 11). After storing under a key it looks the key up again from seeds
that share no first hop with the publish (``crawl.independent_seeds``), over disjoint paths,
and counts the holders that return all of its records. A key nobody confirms is stored again
at the nodes that check lookup reached, and reported (``KeyReport.confirmed == 0``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from overlay.answers import Contact, decode_ping
from overlay.crawl import (
    confirmed_by,
    find_nodes,
    find_records,
    independent_seeds,
    seeds_for,
    store_at,
)
from overlay.dht import RPC_TIMEOUT, AdProtocol, NoAnswer, chunk_records, pack_records
from overlay.errors import BadAnswer
from overlay.lookup import LookupParams
from overlay.routing import MAX_FAILURES
from overlay.store import AdvertStore

log = logging.getLogger(__name__)

READBACK_QUORUM = 1
"""A read-back path stops at the first holder that returns our records."""
BUCKET_IDLE = 900.0
"""A bucket nobody was heard from for this long gets a refresh lookup (BEP 5's 15 minutes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyReport:
    """How publishing under one DHT key went."""

    peers: int
    """Closest nodes found (STORE targets)."""
    accepted: int
    """STOREs answered with 'accepted'."""
    confirmed: int
    """Holders that returned every record on the independent read-back (-1: not checked)."""
    complete: bool
    """Both lookups converged before their deadline."""


def _farthest(contacts: Sequence[Contact], goal: int) -> int:
    return max((c.distance(goal) for c in contacts), default=1 << 160)


async def publish_key(peer: AdProtocol, store: AdvertStore | None, key: bytes, blobs: Sequence[bytes],
                      params: LookupParams, budget: float, *, now: float, check: bool) -> KeyReport:
    """Store ``blobs`` under ``key`` at the k closest nodes (and here, if we are one of them);
    with ``check``, read the key back from an independent path."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    search = await find_nodes(peer, key, params, deadline)
    targets = search.closest
    goal = int.from_bytes(key, "big")
    if store is not None and int.from_bytes(peer.own_id, "big") ^ goal < _farthest(targets, goal):
        store.offer_many(key, blobs, now)
    chunks = [pack_records(c) for c in chunk_records(blobs)]
    accepted = await store_at(peer, targets, key, chunks)
    if not check:
        return KeyReport(peers=len(targets), accepted=accepted, confirmed=-1, complete=search.complete)
    avoid = targets + seeds_for(peer, key, params)
    seeds = independent_seeds(peer, key, avoid, count=2 * params.paths)
    ours = set(blobs)
    readback = await find_records(peer, key, replace(params, quorum=READBACK_QUORUM),
                                  loop.time() + budget, valid=ours.__contains__, seeds=seeds)
    holders = confirmed_by(readback, blobs)
    if not holders:
        fresh = [c for c in readback.closest if c not in targets]
        log.warning("no holder returned our records under %s; storing at %d more nodes",
                    key.hex()[:12], len(fresh))
        accepted += await store_at(peer, fresh, key, chunks)
    return KeyReport(peers=len(targets), accepted=accepted, confirmed=len(holders),
                     complete=search.complete and readback.complete)


async def join(peer: AdProtocol, addrs: Sequence[tuple[str, int]], params: LookupParams,
               budget: float) -> int:
    """Prove the bootstrap peers' ids, crawl for our own id, admit who answered; return how
    many bootstrap peers answered."""
    return len(await join_contacts(peer, addrs, params, budget))


async def join_contacts(peer: AdProtocol, addrs: Sequence[tuple[str, int]], params: LookupParams,
                        budget: float) -> list[Contact]:
    """``join``, returning the proven contacts of the peers at ``addrs`` that answered."""
    loop = asyncio.get_running_loop()
    answers = await asyncio.gather(*(_hello(peer, a) for a in addrs))
    if not any(answers):  # a busy peer may miss one hello: ask once more
        answers = await asyncio.gather(*(_hello(peer, a) for a in addrs))
    proven = [c for c in answers if c is not None]
    for contact in proven:
        peer.router.add(contact, time.time())
    if proven and peer.identity is not None:  # fill our table (also in client mode)
        await find_nodes(peer, peer.router.own_id, params, loop.time() + budget)
        await peer.settle(RPC_TIMEOUT)
    return proven


async def _ping(peer: AdProtocol, contact: Contact) -> None:
    try:
        if decode_ping(await peer.call(contact.addr, "ping", peer.own_id)) == contact.node_id:
            peer.note_answer(contact)
            return
    except (NoAnswer, BadAnswer):
        pass
    peer.note_no_answer(contact)


async def _hello(peer: AdProtocol, addr: tuple[str, int]) -> Contact | None:
    try:
        return await peer.hello(addr)
    except (NoAnswer, BadAnswer) as exc:
        log.info("bootstrap peer %s:%d: %s", addr[0], addr[1], exc)
        return None


async def refresh(peer: AdProtocol, store: AdvertStore, params: LookupParams, *, idle: float,
                  wall_now: float, budget: float) -> None:
    """Ping contacts that missed answers (dead ones leave the table), look up idle buckets
    and our own id (one path each: they only fill the table), and re-store records nobody
    refreshed for ``idle`` seconds to the current closest nodes."""
    loop = asyncio.get_running_loop()
    for _ in range(MAX_FAILURES):  # contacts that missed answers: alive, or out of the table
        await asyncio.gather(*(_ping(peer, c) for c in peer.router.suspects(wall_now, idle)))
    targets = [*peer.router.refresh_targets(wall_now, BUCKET_IDLE), peer.router.own_id]
    single = replace(params, paths=1)
    await asyncio.gather(*(find_nodes(peer, t, single, loop.time() + budget) for t in targets))
    by_key: dict[bytes, list[bytes]] = {}
    for key, blob in store.stored_before(wall_now - idle, wall_now):
        by_key.setdefault(key, []).append(blob)
    for key, blobs in by_key.items():
        search = await find_nodes(peer, key, params, loop.time() + budget)
        chunks = [pack_records(c) for c in chunk_records(blobs)]
        await store_at(peer, search.closest, key, chunks)
