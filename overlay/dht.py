"""The only module that imports kademlia: our wire protocol on kademlia's UDP transport.

kademlia (2.2.3) now provides the asyncio datagram endpoint (``Server.listen``) and the
``IStorage`` seam; routing, lookups and admission are ours (``routing``, ``lookup``,
``crawl``). What the subclasses change (the kademlia defects are described in
docs/kademlia-fixes.md):

* ``AdStorage`` (IStorage): every STORE is validated and merged into an ``AdvertStore``
  instead of last-writer-wins; bounded and fair; reads are paged.
* ``AdProtocol``: 1 s RPC timeout; an explicit handler table instead of
  ``getattr("rpc_" + name)``; datagrams are parsed and answered synchronously inside
  ``datagram_received`` with every error caught and counted; replies are matched
  by message id *and* source address; late replies are ignored; a per-source rate limit.
  Ids are key-derived (``nodeid``); a peer enters the routing table only after it answered
  our ``hello`` challenge from its address (no table change from inbound traffic alone);
  admission checks run as a bounded set of tracked tasks. Records go to newly admitted peers
  that are now among the closest (with the digest key). Clients (empty node id) are
  answered but never considered for tables. A node in *client mode* (its UDP port is not
  reachable: docs/nat.md) sends the empty id, answers no requests but ``status`` and
  ``dialback``, and still keeps a table of its own for its lookups.
* ``AdServer``: no ``get``/``set``; timers are driven by the trio caller.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.storage import IStorage

from overlay.advert import DHT_KEY_BYTES
from overlay.answers import MAX_PAGES, PAGE_BYTES, Contact, decode_hello
from overlay.errors import BadAnswer, DhtUnavailable, OverlayUsageError
from overlay.netgroup import EXEMPT_HOSTS, DiversityLimits
from overlay.nodeid import CHALLENGE_BYTES, PUZZLE_BITS, NodeIdentity
from overlay.ratelimit import RateLimiter, RecentSet
from overlay.results import ProtocolCounters
from overlay.routing import RoutingTable
from overlay.store import AdvertStore
from overlay.wire import DIALBACK_NONCE_BYTES, MSG_ID_BYTES, REQUEST, RESPONSE, pack_wire, unpack_wire

log = logging.getLogger(__name__)

RPC_TIMEOUT = 1.0
SOFT_MIN = 0.03
SOFT_FACTOR = 3.0
STALL_GRACE = 0.1
"""Extra seconds a call gets when its reply timer fired this late (``AdProtocol._timeout``)."""
SILENT_TTL = 30.0
"""Seconds a peer that missed a soft timeout is skipped in lookups (unless heard from)."""
MAX_SILENT = 4096
MAX_DATAGRAM = 16_384
MAX_REQUEST = 8192
MAX_BACKGROUND = 256
"""At most this many admission checks and replication STOREs in flight; extra ones are skipped."""
MAX_PENDING_HELLO = 32
RECHECK_AFTER = 60.0
"""Seconds before the same source gets another admission check (``hello``)."""
MAX_REPLY = 60_000
CLIENT_ID = b""
"""The node id a client sends (short-lived, or a node in client mode): answer it, never add
it to a routing table. Peers only ever *skip* admission for it; it never adds anyone."""
CLIENT_MODE_ANSWERS = frozenset({"status", "dialback"})
"""The only requests a node in client mode answers (peers must find it useless as a contact)."""
SENT_TTL = 300.0
"""Seconds an address we sent to is remembered: a NAT lets datagrams from it back in, so a
dial-back datagram from such an address proves nothing about reachability."""
MAX_SENT = 4096


class NoAnswer(DhtUnavailable):
    """Raised when a peer did not answer one RPC in time (or the node is stopping)."""


def pack_records(blobs: Sequence[bytes]) -> bytes:
    packed: bytes = msgpack.packb(list(blobs), use_bin_type=True)
    return packed


def unpack_records(value: object) -> list[object]:
    """Decode a STORE value: a msgpack array of record blobs. Raises ValueError."""
    if type(value) is not bytes or len(value) > MAX_REPLY:
        raise ValueError("value is not bounded bytes")
    try:
        items = msgpack.unpackb(value, raw=False, max_array_len=1000)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.StackError) as exc:
        raise ValueError("value is not msgpack") from exc
    if not isinstance(items, list):
        raise ValueError("value is not a list")
    return items


def chunk_records(blobs: Sequence[bytes], budget: int = PAGE_BYTES) -> list[list[bytes]]:
    """Split record blobs into batches whose total size stays under ``budget``."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for blob in blobs:
        if chunks[-1] and size + len(blob) > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(blob)
        size += len(blob)
    return [c for c in chunks if c]


def _is_id(value: object) -> bool:
    return type(value) is bytes and len(value) == DHT_KEY_BYTES


def source_key(addr: tuple[str, int]) -> str:
    """Rate-limit and admission identity of a sender: its IP (ip:port for the exempt hosts)."""
    return f"{addr[0]}:{addr[1]}" if addr[0] in EXEMPT_HOSTS else addr[0]


class AdStorage(IStorage):  # type: ignore[misc]
    """kademlia's storage interface over a validating ``AdvertStore``; wall clock at the edge."""

    def __init__(self, store: AdvertStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def put(self, key: object, value: object, origin: str = "local") -> int:
        """Offer a packed record list from ``origin``; return how many records were accepted."""
        if not _is_id(key):
            self.store.count_rejection("malformed")
            return 0
        assert isinstance(key, bytes)
        try:
            items = unpack_records(value)
        except ValueError:
            self.store.count_rejection("malformed")
            return 0
        accepted, _ = self.store.offer_many(key, items, self.clock(), origin=origin)
        return accepted

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.put(key, value)

    def pages(self, key: bytes) -> list[list[bytes]]:
        return chunk_records(self.store.blobs(key, self.clock()))[:MAX_PAGES]

    def __getitem__(self, key: bytes) -> bytes:
        pages = self.pages(key)
        if not pages:
            raise KeyError(key)
        return pack_records(pages[0])

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        now = self.clock()
        return self._batched(self.store.stored_before(now - seconds_old, now))

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        now = self.clock()
        return iter(self._batched(self.store.stored_before(float("inf"), now)))

    @staticmethod
    def _batched(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        by_key: dict[bytes, list[bytes]] = {}
        for key, blob in records:
            by_key.setdefault(key, []).append(blob)
        return [(k, pack_records(c)) for k, blobs in by_key.items() for c in chunk_records(blobs)]


@dataclass(frozen=True, slots=True)
class ProtocolHooks:
    """What the node owning the protocol plugs in when it is built."""

    status: Callable[[], dict[str, Any]] | None = None
    """The status document the ``status`` RPC returns (None: no answer)."""
    remote_status: bool = False
    """Answer ``status`` from non-loopback addresses too."""
    dialback_sink: Callable[[bytes], None] | None = None
    """Called with the nonce of each dial-back datagram that may count (``rpc_dialback``)."""
    client_mode: bool = False
    """Start in client mode although the node has an identity."""


class AdProtocol(KademliaProtocol):  # type: ignore[misc]
    """Our DHT wire protocol (docs/overlay.md "Wire protocol") on kademlia's transport."""

    def __init__(self, identity: NodeIdentity | None, storage: AdStorage, ksize: int,
                 limits: DiversityLimits, bits: int = PUZZLE_BITS,
                 hooks: ProtocolHooks | None = None) -> None:
        own = identity.node_id if identity is not None else bytes(DHT_KEY_BYTES)
        super().__init__(Node(own), storage, ksize)
        self.identity = identity
        self.bits = bits
        self.hooks = hooks or ProtocolHooks()
        self.client_mode = identity is None or self.hooks.client_mode
        """True: send the empty id and answer only ``CLIENT_MODE_ANSWERS`` (switchable at
        run time for a node with an identity: ``set_client_mode``)."""
        self.sent_to = RecentSet(SENT_TTL, MAX_SENT)
        """Addresses we sent to lately (a NAT lets them answer: their dial-backs prove nothing)."""
        self._wait_timeout = RPC_TIMEOUT
        self.router = RoutingTable(own, k=ksize, limits=limits)
        self.counters = ProtocolCounters()
        self.limiter = RateLimiter(rate=300.0, burst=600.0)
        self.silent: dict[tuple[str, int], float] = {}
        self._pending: set[str] = set()
        self._checked: dict[str, float] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self.srtt = 0.01
        self._handlers: dict[str, Callable[..., Any]] = {
            "ping": self.rpc_ping,
            "hello": self.rpc_hello,
            "store": self.rpc_store,
            "find_node": self.rpc_find_node,
            "find_value": self.rpc_find_value,
            "find_ads_page": self.rpc_find_ads_page,
            "status": self.rpc_status,
            "dialback": self.rpc_dialback,
        }

    def set_client_mode(self, client: bool) -> None:
        """Switch client mode (only a node with an identity can leave it)."""
        self.client_mode = client or self.identity is None

    @property
    def own_id(self) -> bytes:
        """The id we send: ours, or ``CLIENT_ID`` in client mode."""
        return CLIENT_ID if self.identity is None or self.client_mode else self.identity.node_id

    # -- receiving -------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.limiter.allow(source_key(addr), time.monotonic()):
            self.counters.rate_limited += 1
            return
        try:
            self._handle_datagram(data, addr)
        except Exception as exc:  # the network boundary: nothing a peer sends may escape
            self.counters.garbage_datagrams += 1
            log.debug("dropped bad datagram from %s: %r", addr, exc)

    def _handle_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not 22 <= len(data) <= MAX_DATAGRAM:
            raise ValueError(f"datagram of {len(data)} bytes")
        kind, msg_id, payload = data[:1], data[1:21], unpack_wire(data[21:])
        if kind == RESPONSE:
            self._accept_response(msg_id, payload, addr)
        elif kind == REQUEST:
            self._answer(msg_id, payload, addr)
        else:
            raise ValueError("unknown datagram kind")

    def _answer(self, msg_id: bytes, payload: Any, addr: tuple[str, int]) -> None:
        if not isinstance(payload, list) or len(payload) != 2:
            raise ValueError("request is not [name, args]")
        name, args = payload
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None or not isinstance(args, list | tuple):
            raise ValueError(f"unknown request {name!r}")
        if self.client_mode and self.identity is not None and name not in CLIENT_MODE_ANSWERS:
            self.counters.client_ignored += 1
            return
        self.counters.requests[name] = self.counters.requests.get(name, 0) + 1
        response = handler(addr, *args)
        reply = RESPONSE + msg_id + pack_wire(response)
        if len(reply) > MAX_REPLY:
            raise ValueError("reply too large")
        if self.transport is not None:
            self.counters.sent_bytes += len(reply)
            self._note_sent(addr)
            self.transport.sendto(reply, addr)

    def _note_sent(self, addr: tuple[str, int]) -> None:
        self.sent_to.note(f"{addr[0]}:{addr[1]}", time.monotonic())

    def _accept_response(self, msg_id: bytes, data: Any, address: tuple[str, int]) -> None:
        entry = self._outstanding.get(msg_id)
        if entry is None or entry[2] != address:
            self.counters.late_replies += 1
            self.silent.pop(address, None)
            return
        del self._outstanding[msg_id]
        future, timeout, _ = entry
        timeout.cancel()
        self.silent.pop(address, None)
        if not future.done():
            future.set_result((True, data))

    def _timeout(self, msg_id: bytes, due: float | None = None) -> None:
        """The reply timer of ``msg_id`` fired. Fired more than ``STALL_GRACE`` after
        ``due``, it found our own loop stalled (a loaded machine): the reply may be waiting in
        the socket buffer behind the timers, so it is given ``STALL_GRACE`` more, once."""
        entry = self._outstanding.get(msg_id)
        if entry is not None and due is not None:
            loop = asyncio.get_running_loop()
            if loop.time() - due > STALL_GRACE:
                self.counters.stalled_timers += 1
                handle = loop.call_later(STALL_GRACE, self._timeout, msg_id)
                self._outstanding[msg_id] = (entry[0], handle, entry[2])
                return
        self._outstanding.pop(msg_id, None)
        self.counters.rpc_timeouts += 1
        if entry is not None and not entry[0].done():
            entry[0].set_result((False, None))

    # -- calling -----------------------------------------------------------------------------
    async def call(self, addr: tuple[str, int], name: str, *args: Any) -> Any:
        """Send one request; return the raw answer. Raises NoAnswer after ``RPC_TIMEOUT``."""
        data = pack_wire([name, list(args)])
        if len(data) > MAX_REQUEST:
            raise OverlayUsageError(f"{name} request of {len(data)} bytes is too large")
        if self.transport is None:
            raise NoAnswer("node stopped")
        loop = asyncio.get_running_loop()
        msg_id = os.urandom(MSG_ID_BYTES)
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        due = loop.time() + self._wait_timeout
        handle = loop.call_at(due, self._timeout, msg_id, due)
        self._outstanding[msg_id] = (future, handle, addr)
        self.counters.sent_requests += 1
        self.counters.sent_bytes += len(data) + 21
        start = loop.time()
        try:
            self._note_sent(addr)
            self.transport.sendto(REQUEST + msg_id + data, addr)
            ok, answer = await future
        finally:
            entry = self._outstanding.pop(msg_id, None)
            if entry is not None:
                entry[1].cancel()
        if not ok:
            raise NoAnswer(f"{addr[0]}:{addr[1]} did not answer {name}")
        self.srtt += 0.125 * (loop.time() - start - self.srtt)
        return answer

    def soft_timeout(self) -> float:
        """How long a lookup waits for one answer before asking someone else too."""
        return min(max(SOFT_MIN, SOFT_FACTOR * self.srtt), RPC_TIMEOUT / 2)

    def note_answer(self, contact: Contact) -> None:
        """``contact`` answered us: refresh it, or check whether it may join the table."""
        if not self.router.seen(contact.node_id, time.time()):
            self.consider(contact.addr, contact.node_id)

    def note_no_answer(self, contact: Contact) -> None:
        """``contact`` missed the hard timeout: count it against the contact (it leaves the
        table after a few in a row) and skip it in lookups for a while."""
        self.router.failed(contact.node_id)
        self.note_silent(contact.addr)

    def note_bad_answer(self, contact: Contact) -> None:
        """``contact`` answered garbage: it leaves the table at once."""
        self.router.remove(contact.node_id)
        self.counters.bad_answers += 1

    def note_silent(self, addr: tuple[str, int]) -> None:
        if len(self.silent) >= MAX_SILENT:
            self.silent.clear()
        self.silent[addr] = time.monotonic()

    def is_silent(self, addr: tuple[str, int]) -> bool:
        """True while ``addr`` missed a timeout within ``SILENT_TTL`` and was not heard since."""
        since = self.silent.get(addr)
        if since is None:
            return False
        if time.monotonic() - since > SILENT_TTL:
            del self.silent[addr]
            return False
        return True

    def linger(self, task: asyncio.Future[Any], contact: Contact) -> None:
        """Keep a lookup's unanswered query until it is answered or times out, so a dead
        contact is noticed (and a slow one credited) after the lookup has moved on."""
        if not self.spawn(self._settle_late(task, contact)):
            task.cancel()

    async def _settle_late(self, task: asyncio.Future[Any], contact: Contact) -> None:
        try:
            await task
        except NoAnswer:
            self.note_no_answer(contact)
        except BadAnswer:
            self.note_bad_answer(contact)
        else:
            self.note_answer(contact)

    # -- admission ---------------------------------------------------------------------------
    def consider(self, addr: tuple[str, int], claimed: object) -> None:
        """Maybe check a peer that asked or answered us: a ``hello`` challenge, then the table."""
        if self.identity is None or not _is_id(claimed) or self.transport is None:
            return
        assert isinstance(claimed, bytes)
        who = source_key(addr)
        if who in self._pending or len(self._pending) >= MAX_PENDING_HELLO:
            return
        if not self.router.wants(claimed, addr[0]) or self._recently_checked(who):
            return
        self._pending.add(who)
        if not self.spawn(self._admit(addr, who)):
            self._pending.discard(who)

    def _recently_checked(self, who: str) -> bool:
        """At most one admission check per source until its ``_checked`` time has passed."""
        now = time.monotonic()
        if now < self._checked.get(who, 0.0):
            return True
        if len(self._checked) >= MAX_SILENT:
            self._checked = {w: t for w, t in self._checked.items() if t > now}
            if len(self._checked) >= MAX_SILENT:
                return True  # a flood of new sources: admit nobody new until it passes
        self._checked[who] = now + RECHECK_AFTER
        return False

    async def _admit(self, addr: tuple[str, int], who: str) -> None:
        try:
            contact = await self.hello(addr)
        except (NoAnswer, BadAnswer) as exc:
            self.counters.hellos_failed += 1
            if isinstance(exc, NoAnswer):  # maybe just slow: ask again sooner
                self._checked[who] = time.monotonic() + RECHECK_AFTER / 6
            log.debug("hello to %s failed: %s", addr, exc)
            return
        finally:
            self._pending.discard(who)
        self.counters.hellos_ok += 1
        if self.router.add(contact, time.time()) == "added":
            self.welcome(contact)

    async def hello(self, addr: tuple[str, int]) -> Contact:
        """Challenge the node at ``addr`` to prove its id; return the proven contact."""
        challenge = os.urandom(CHALLENGE_BYTES)
        answer = await self.call(addr, "hello", self.own_id, challenge)
        return decode_hello(answer, challenge=challenge, addr=addr, bits=self.bits)

    def welcome(self, contact: Contact) -> None:
        """Hand a new table member the records it is now among the closest for (§2.5)."""
        for key, value in self.storage:
            goal = int.from_bytes(key, "big")
            neighbours = self.router.closest(key)
            if not neighbours:
                continue
            new_close = contact.distance(goal) <= neighbours[-1].distance(goal)
            we_closest = int.from_bytes(self.own_id, "big") ^ goal < neighbours[0].distance(goal)
            if new_close and (we_closest or contact in neighbours[:1]):
                self.spawn(self.call(contact.addr, "store", self.own_id, key, value))

    def spawn(self, coro: Any) -> bool:
        """Run background work as a tracked task (``fail_outstanding`` cancels them)."""
        if len(self._tasks) >= MAX_BACKGROUND:
            coro.close()
            return False
        task = asyncio.ensure_future(_quietly(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: coro.close())  # cancelled before it started: no warning
        return True

    async def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the background work running now, e.g. admissions."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def fail_outstanding(self) -> None:
        """Resolve every pending call as 'no reply' and cancel background work (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for future, timeout, _ in self._outstanding.values():
            timeout.cancel()
            if not future.done():
                future.set_result((False, None))
        self._outstanding.clear()

    # -- handlers ----------------------------------------------------------------------------
    def _source(self, sender: tuple[str, int], nodeid: object) -> None:
        if nodeid == CLIENT_ID:
            return
        if not _is_id(nodeid):
            raise ValueError("bad node id")
        assert isinstance(nodeid, bytes)
        if not self.router.seen(nodeid, time.time()):
            self.consider(sender, nodeid)

    def rpc_ping(self, sender: tuple[str, int], nodeid: object) -> bytes:
        self._source(sender, nodeid)
        return self.own_id

    def rpc_hello(self, sender: tuple[str, int], nodeid: object, challenge: object) -> Any:
        if type(challenge) is not bytes or len(challenge) != CHALLENGE_BYTES:
            raise ValueError("bad challenge")
        self._source(sender, nodeid)
        return None if self.identity is None else self.identity.hello(challenge)

    def rpc_store(self, sender: tuple[str, int], nodeid: object, key: object, value: object) -> bool:
        self._source(sender, nodeid)
        assert isinstance(self.storage, AdStorage)
        return self.storage.put(key, value, origin=sender[0]) > 0

    def rpc_find_node(self, sender: tuple[str, int], nodeid: object, key: object) -> list[Any]:
        self._source(sender, nodeid)
        if not _is_id(key):
            raise ValueError("bad key")
        assert isinstance(key, bytes)
        return [c.wire() for c in self.router.closest(key, exclude=sender)]

    def rpc_find_value(self, sender: tuple[str, int], nodeid: object, key: object) -> Any:
        nodes = self.rpc_find_node(sender, nodeid, key)
        assert isinstance(key, bytes) and isinstance(self.storage, AdStorage)
        pages = self.storage.pages(key)
        if not pages:
            return nodes
        return {"value": pack_records(pages[0]), "pages": len(pages), "more": len(pages) > 1,
                "nodes": nodes}

    def rpc_find_ads_page(self, sender: tuple[str, int], nodeid: object, key: object, index: object) -> Any:
        self._source(sender, nodeid)
        if not _is_id(key) or type(index) is not int:
            raise ValueError("bad page request")
        assert isinstance(key, bytes) and isinstance(self.storage, AdStorage)
        pages = self.storage.pages(key)
        if not 0 <= index < len(pages):
            return None
        return {"value": pack_records(pages[index]), "more": index + 1 < len(pages)}

    def rpc_dialback(self, sender: tuple[str, int], nonce: object) -> bool:
        """A peer tests whether our UDP port is reachable (docs/protocol.md section 13). The
        nonce counts only if it came from an address we have not sent to lately (a NAT lets
        those in) -- the prober checks it is one of its own."""
        if type(nonce) is not bytes or len(nonce) != DIALBACK_NONCE_BYTES:
            raise ValueError("bad dial-back nonce")
        sink = self.hooks.dialback_sink
        if sink is None or self.sent_to.recent(f"{sender[0]}:{sender[1]}", time.monotonic()):
            self.counters.dialbacks_ignored += 1
            return False
        self.counters.dialbacks += 1
        sink(nonce)
        return True

    def rpc_status(self, sender: tuple[str, int]) -> Any:
        if not (self.hooks.remote_status or sender[0].startswith("127.") or sender[0] == "::1"):
            return None
        return self.hooks.status() if self.hooks.status is not None else None


async def _quietly(coro: Any) -> None:
    """Background work: a peer that does not answer is normal, not an error."""
    try:
        await coro
    except (NoAnswer, BadAnswer) as exc:
        log.debug("background call failed: %s", exc)
    except Exception:  # never let a background task's bug reach the loop's handler
        log.exception("background DHT task failed")


class AdServer(Server):  # type: ignore[misc]
    """kademlia's Server as a transport holder; the overlay logic is in ``crawl``."""

    def __init__(self, store: AdvertStore, *, identity: NodeIdentity | None, ksize: int = 20,
                 alpha: int = 3, limits: DiversityLimits | None = None,
                 bits: int = PUZZLE_BITS, hooks: ProtocolHooks | None = None) -> None:
        node_id = identity.node_id if identity is not None else bytes(DHT_KEY_BYTES)
        super().__init__(ksize=ksize, alpha=alpha, node_id=node_id, storage=AdStorage(store))
        self.identity = identity
        self.limits = limits or DiversityLimits()
        self.bits = bits
        self.hooks = hooks

    def _create_protocol(self) -> AdProtocol:
        return AdProtocol(self.identity, self.storage, self.ksize, self.limits, self.bits,
                          self.hooks)

    def refresh_table(self, interval: float = 0) -> None:
        """Disabled: the trio shell calls ``crawl.refresh`` on its own timer."""

    async def get(self, key: Any) -> Any:
        raise OverlayUsageError("use lookup(); get() is last-writer-wins")

    async def set(self, key: Any, value: Any) -> bool:
        raise OverlayUsageError("use publish(); set() is last-writer-wins")

    def stop(self) -> None:
        if self.protocol is not None:
            self.protocol.fail_outstanding()
        super().stop()
