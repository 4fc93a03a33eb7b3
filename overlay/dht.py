"""The only module that imports kademlia: the subclasses that make it an advert directory.

What each subclass fixes (the defects K1-K8 are in docs/kademlia-fixes.md):

* ``AdStorage`` (IStorage): validates and merges every STORE into an ``AdvertStore``
  instead of last-writer-wins (K1); bounded; reads return paged record lists.
* ``FixedRoutingTable``: ``find_neighbors`` is an exact ``nsmallest`` over all contacts
  (the lost-neighbours bug, K2).
* ``AdProtocol``: 1 s RPC timeout (K5); an explicit handler table instead of
  ``getattr("rpc_" + name)``; datagrams are parsed and answered synchronously inside
  ``datagram_received`` with every error caught and counted, so garbage cannot raise into
  the event loop (K6, K7); late replies to cancelled calls are ignored instead of raising
  ``InvalidStateError``; a per-source rate limit; ``welcome_if_new`` uses the storage key
  itself (the double-hash bug, K3) and sends bounded record batches; an empty node id marks
  a short-lived client that is answered but never added to routing tables.
* ``SoftRounds`` (both crawls): a round no longer waits the full RPC timeout for a dead
  peer once live peers have answered: stragglers slower than ``SOFT_FACTOR`` x the first
  reply (at least ``SOFT_MIN``) are dropped from this crawl (not from routing tables), so
  churn costs a fraction of a second per round instead of the whole timeout.
* ``MergingValueSpiderCrawl``: does not stop at the first value; it contacts all k closest,
  fetches every page, and returns the union of records with their sources (K4).
* ``AdServer``: no ``get``/``set``; publish = k-closest crawl + batched STOREs; lookup = local
  records + merging crawl (no local short-circuit); refresh driven by the caller's timer.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import umsgpack
from kademlia.crawling import NodeSpiderCrawl, RPCFindResponse, ValueSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.routing import RoutingTable
from kademlia.storage import IStorage

from overlay.advert import DHT_KEY_BYTES
from overlay.errors import OverlayUsageError
from overlay.ratelimit import RateLimiter
from overlay.store import AdvertStore

log = logging.getLogger(__name__)

RPC_TIMEOUT = 1.0
SOFT_MIN = 0.1
SOFT_FACTOR = 4.0
HEDGE_AFTER = 0.25
"""With no reply after this long, a crawl round also asks the next alpha peers."""
SILENT_TTL = 30.0
"""Seconds a peer that missed a crawl round is skipped in crawls (unless heard from)."""
MAX_SILENT = 4096
PAGE_BYTES = 6000
"""Record bytes per reply page; with 20 contacts the reply stays under the 8 KB rpcudp cap."""
MAX_PAGES = 20
MAX_DATAGRAM = 16_384
MAX_BACKGROUND = 256
"""At most this many replication STOREs to newly met nodes in flight; extra ones are skipped."""
MAX_REPLY = 60_000
CLIENT_ID = b""
"""The node id a short-lived client sends: answer it, never add it to a routing table."""
_REQUEST, _RESPONSE = b"\x00", b"\x01"


def pack_records(blobs: Sequence[bytes]) -> bytes:
    packed: bytes = msgpack.packb(list(blobs), use_bin_type=True)
    return packed


def unpack_records(value: object) -> list[object]:
    """Decode a STORE or reply value: a msgpack array of record blobs. Raises ValueError."""
    if type(value) is not bytes or len(value) > MAX_REPLY:
        raise ValueError("value is not bounded bytes")
    try:
        items = msgpack.unpackb(value, raw=False, max_array_len=1000)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
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


class AdStorage(IStorage):  # type: ignore[misc]
    """kademlia's storage interface over a validating ``AdvertStore``; wall clock at the edge."""

    def __init__(self, store: AdvertStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def put(self, key: object, value: object) -> int:
        """Offer a packed record list; return how many records were accepted."""
        if not _is_id(key):
            self.store.count_rejection("malformed")
            return 0
        assert isinstance(key, bytes)
        try:
            items = unpack_records(value)
        except ValueError:
            self.store.count_rejection("malformed")
            return 0
        accepted, _ = self.store.offer_many(key, items, self.clock())
        return accepted

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.put(key, value)

    def page(self, key: bytes, index: int) -> tuple[bytes, bool] | None:
        """Page ``index`` of the records under ``key`` and whether more pages follow."""
        chunks = chunk_records(self.store.blobs(key, self.clock()))
        if not 0 <= index < len(chunks):
            return None
        return pack_records(chunks[index]), index + 1 < len(chunks)

    def __getitem__(self, key: bytes) -> bytes:
        first = self.page(key, 0)
        if first is None:
            raise KeyError(key)
        return first[0]

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


class FixedRoutingTable(RoutingTable):  # type: ignore[misc]
    """``find_neighbors`` as an exact k-nearest over every contact (fixes K2)."""

    def find_neighbors(self, node: Node, k: int | None = None, exclude: Node | None = None) -> list[Node]:
        k = k or self.ksize
        contacts = [
            n
            for bucket in self.buckets
            for n in bucket.nodes.values()
            if n.id != node.id and (exclude is None or not n.same_home_as(exclude))
        ]
        return heapq.nsmallest(k, contacts, key=node.distance_to)

    def contacts(self) -> list[Node]:
        return [n for bucket in self.buckets for n in bucket.nodes.values()]


@dataclass(slots=True)
class ProtocolCounters:
    requests: Counter[str]
    garbage: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    late_replies: int = 0


class AdProtocol(KademliaProtocol):  # type: ignore[misc]
    """The wire protocol: kademlia's RPCs plus paged ad reads and a status query."""

    status_provider: Callable[[], dict[str, Any]] | None = None
    client_mode: bool = False
    remote_status: bool = False

    def __init__(self, source_node: Node, storage: AdStorage, ksize: int) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = RPC_TIMEOUT
        self.router = FixedRoutingTable(self, ksize, source_node)
        self.counters = ProtocolCounters(requests=Counter())
        self.limiter = RateLimiter(rate=300.0, burst=600.0)
        self.last_seen: dict[tuple[str, int], float] = {}
        self.silent: dict[tuple[str, int], float] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._handlers: dict[str, Callable[..., Any]] = {
            "ping": self.rpc_ping,
            "store": self.rpc_store,
            "find_node": self.rpc_find_node,
            "find_value": self.rpc_find_value,
            "find_ads_page": self.rpc_find_ads_page,
            "status": self.rpc_status,
        }

    # -- receiving -------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        source = addr[0] if not addr[0].startswith("127.") else f"{addr[0]}:{addr[1]}"
        if not self.limiter.allow(source, now):
            self.counters.rate_limited += 1
            return
        try:
            self._handle_datagram(data, addr)
        except Exception as exc:  # the network boundary: nothing a peer sends may escape
            self.counters.garbage += 1
            log.debug("dropped bad datagram from %s: %r", addr, exc)

    def _handle_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not 22 <= len(data) <= MAX_DATAGRAM:
            raise ValueError(f"datagram of {len(data)} bytes")
        kind, msg_id, payload = data[:1], data[1:21], umsgpack.unpackb(data[21:])
        if kind == _RESPONSE:
            self._accept_response(msg_id, payload, addr)
        elif kind == _REQUEST:
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
        self.counters.requests[name] += 1
        response = handler(addr, *args)
        reply = _RESPONSE + msg_id + umsgpack.packb(response)
        if len(reply) > MAX_REPLY:
            raise ValueError("reply too large")
        self.last_seen[addr] = time.time()
        if self.transport is not None:
            self.transport.sendto(reply, addr)

    def _accept_response(self, msg_id: bytes, data: Any, address: tuple[str, int]) -> None:
        entry = self._outstanding.pop(msg_id, None)
        if entry is None:
            self.counters.late_replies += 1
            return
        future, timeout = entry
        timeout.cancel()
        self.last_seen[address] = time.time()
        if not future.done():
            future.set_result((True, data))

    def note_silent(self, node: Node) -> None:
        """``node`` did not answer a crawl round in time: skip it in crawls for a while."""
        if len(self.silent) >= MAX_SILENT:
            self.silent.clear()
        self.silent[(node.ip, node.port)] = time.time()

    def is_silent(self, node: Node) -> bool:
        """True while ``node`` was silent within ``SILENT_TTL`` and has not been heard since."""
        addr = (node.ip, node.port)
        since = self.silent.get(addr)
        if since is None:
            return False
        if time.time() - since > SILENT_TTL or self.last_seen.get(addr, 0.0) > since:
            del self.silent[addr]
            return False
        return True

    def _timeout(self, msg_id: bytes) -> None:
        entry = self._outstanding.pop(msg_id, None)
        self.counters.timeouts += 1
        if entry is not None and not entry[0].done():
            entry[0].set_result((False, None))

    def _spawn(self, coro: Any) -> None:
        """Run a replication STORE as a tracked task; ``fail_outstanding`` cancels them."""
        if len(self._tasks) >= MAX_BACKGROUND:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def fail_outstanding(self) -> None:
        """Resolve every pending call as 'no reply' and cancel replication (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for future, timeout in self._outstanding.values():
            timeout.cancel()
            if not future.done():
                future.set_result((False, None))
        self._outstanding.clear()

    # -- handlers ----------------------------------------------------------------------------
    def _source(self, sender: tuple[str, int], nodeid: object) -> Node | None:
        if nodeid == CLIENT_ID:
            return None
        if not _is_id(nodeid):
            raise ValueError("bad node id")
        source = Node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source)
        return source

    def rpc_ping(self, sender: tuple[str, int], nodeid: object) -> bytes:
        self._source(sender, nodeid)
        return bytes(self.source_node.id)

    def rpc_store(self, sender: tuple[str, int], nodeid: object, key: object, value: object) -> bool:
        self._source(sender, nodeid)
        assert isinstance(self.storage, AdStorage)
        return self.storage.put(key, value) > 0

    def rpc_find_node(self, sender: tuple[str, int], nodeid: object, key: object) -> list[Any]:
        source = self._source(sender, nodeid)
        if not _is_id(key):
            raise ValueError("bad key")
        exclude = source if source is not None else Node(bytes(20), sender[0], sender[1])
        neighbors = self.router.find_neighbors(Node(key), exclude=exclude)
        return [tuple(n) for n in neighbors]

    def rpc_find_value(self, sender: tuple[str, int], nodeid: object, key: object) -> Any:
        nodes = self.rpc_find_node(sender, nodeid, key)
        assert isinstance(key, bytes) and isinstance(self.storage, AdStorage)
        first = self.storage.page(key, 0)
        if first is None:
            return nodes
        return {"value": first[0], "more": first[1], "nodes": nodes}

    def rpc_find_ads_page(self, sender: tuple[str, int], nodeid: object, key: object, index: object) -> Any:
        self._source(sender, nodeid)
        if not _is_id(key) or type(index) is not int:
            raise ValueError("bad page request")
        assert isinstance(key, bytes) and isinstance(self.storage, AdStorage)
        page = self.storage.page(key, index)
        return None if page is None else {"value": page[0], "more": page[1]}

    def rpc_status(self, sender: tuple[str, int]) -> Any:
        if not (self.remote_status or sender[0].startswith("127.") or sender[0] == "::1"):
            return None
        return self.status_provider() if self.status_provider is not None else None

    # -- calling -----------------------------------------------------------------------------
    def _my_id(self) -> bytes:
        return CLIENT_ID if self.client_mode else bytes(self.source_node.id)

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> Any:
        result = await self.find_node((node_to_ask.ip, node_to_ask.port), self._my_id(), node_to_find.id)
        return self.handle_call_response(result, node_to_ask)

    async def call_find_value(self, node_to_ask: Node, node_to_find: Node) -> Any:
        result = await self.find_value((node_to_ask.ip, node_to_ask.port), self._my_id(), node_to_find.id)
        return self.handle_call_response(result, node_to_ask)

    async def call_ping(self, node_to_ask: Node) -> Any:
        result = await self.ping((node_to_ask.ip, node_to_ask.port), self._my_id())
        return self.handle_call_response(result, node_to_ask)

    async def call_store(self, node_to_ask: Node, key: bytes, value: bytes) -> Any:
        result = await self.store((node_to_ask.ip, node_to_ask.port), self._my_id(), key, value)
        return self.handle_call_response(result, node_to_ask)

    async def call_find_ads_page(self, node_to_ask: Node, key: bytes, index: int) -> Any:
        result = await self.find_ads_page((node_to_ask.ip, node_to_ask.port), self._my_id(), key, index)
        return self.handle_call_response(result, node_to_ask)

    def welcome_if_new(self, node: Node) -> None:
        """Add a new contact; hand it the records it is now among the closest for (Kademlia paper §2.5)."""
        if not self.router.is_new_node(node):
            return
        for key, value in self.storage:
            keynode = Node(key)  # storage keys are already digests (fixes K3)
            neighbors = self.router.find_neighbors(keynode)
            if neighbors:
                new_close = node.distance_to(keynode) < neighbors[-1].distance_to(keynode)
                we_closest = self.source_node.distance_to(keynode) < neighbors[0].distance_to(keynode)
            if not neighbors or (new_close and we_closest):
                self._spawn(self.call_store(node, key, value))
        self.router.add_contact(node)


def _addr(node: Node) -> str:
    return f"{node.ip}:{node.port}"


async def gather_soft(
    calls: dict[bytes, Any], hedge: Callable[[], dict[bytes, Any]] | None = None
) -> dict[bytes, Any]:
    """Await one crawl round's RPCs; stop waiting for stragglers after the first reply.

    A peer that has not answered ``SOFT_FACTOR`` x the first reply's latency later (at least
    ``SOFT_MIN``) counts as "no answer" for this crawl; its call is cancelled (a late reply is
    then ignored by ``AdProtocol``), and it stays in the routing table. If nobody has answered
    after ``HEDGE_AFTER`` seconds (the round's peers may all be dead), ``hedge()`` supplies
    more calls to run alongside, so one dead round does not cost the whole RPC timeout.
    """
    loop = asyncio.get_running_loop()
    tasks = {key: asyncio.ensure_future(call) for key, call in calls.items()}
    if not tasks:
        return {}
    start = loop.time()
    done, pending = await asyncio.wait(
        tasks.values(), timeout=HEDGE_AFTER, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        if hedge is not None:
            tasks.update({key: asyncio.ensure_future(call) for key, call in hedge().items()})
        done, pending = await asyncio.wait(
            [t for t in tasks.values() if not t.done()], return_when=asyncio.FIRST_COMPLETED)
    if pending:
        grace = max(SOFT_MIN, SOFT_FACTOR * (loop.time() - start))
        _, pending = await asyncio.wait(pending, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return {key: _outcome(task) for key, task in tasks.items()}


def _outcome(task: asyncio.Future[Any]) -> Any:
    if task.cancelled() or task.exception() is not None:
        return (False, None)
    return task.result()


class SoftRounds:
    """Mixin for kademlia's SpiderCrawl: rounds gathered with ``gather_soft``."""

    nearest: Any
    last_ids_crawled: Any
    alpha: int
    node: Node

    def _pick(self, count: int, rpcmethod: Callable[..., Any],
              peers: dict[bytes, Node]) -> dict[bytes, Any]:
        """Start calls to up to ``count`` uncontacted peers, skipping recently silent ones."""
        protocol = self.protocol  # type: ignore[attr-defined]
        calls: dict[bytes, Any] = {}
        for peer in self.nearest.get_uncontacted():
            if len(calls) >= count:
                break
            self.nearest.mark_contacted(peer)
            if protocol.is_silent(peer):
                self.nearest.remove([peer.id])
                continue
            calls[peer.id] = rpcmethod(peer, self.node)
            peers[peer.id] = peer
        return calls

    async def _find(self, rpcmethod: Callable[..., Any]) -> Any:
        count = self.alpha
        if self.nearest.get_ids() == self.last_ids_crawled:
            count = len(self.nearest)
        self.last_ids_crawled = self.nearest.get_ids()
        peers: dict[bytes, Node] = {}
        calls = self._pick(count, rpcmethod, peers)
        found = await gather_soft(calls, lambda: self._pick(self.alpha, rpcmethod, peers))
        for peer_id, outcome in found.items():
            if not outcome[0]:
                self.protocol.note_silent(peers[peer_id])  # type: ignore[attr-defined]
        return await self._nodes_found(found)  # type: ignore[attr-defined]


class SoftNodeSpiderCrawl(SoftRounds, NodeSpiderCrawl):  # type: ignore[misc]
    """kademlia's k-closest crawl with soft rounds."""


class MergingValueSpiderCrawl(SoftRounds, ValueSpiderCrawl):  # type: ignore[misc]
    """A value crawl that visits all k closest peers and unions their record pages."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.records: list[tuple[str, bytes]] = []
        self.answered: set[str] = set()
        self.holders: set[str] = set()

    async def find(self) -> list[tuple[str, bytes]]:
        await self._find(self.protocol.call_find_value)
        return self.records

    async def _nodes_found(self, responses: dict[bytes, Any]) -> None:
        dead = []
        for peerid, raw in responses.items():
            response = RPCFindResponse(raw)
            peer = self.nearest.get_node(peerid)
            if not response.happened():
                dead.append(peerid)
                continue
            self.answered.add(_addr(peer))
            if response.has_value():
                await self._take_value(peer, raw[1])
            else:
                self.nearest.push(self._nodes_of(raw[1]))
        self.nearest.remove(dead)
        if not self.nearest.have_contacted_all():
            await self._find(self.protocol.call_find_value)

    @staticmethod
    def _nodes_of(listing: object) -> list[Node]:
        nodes = []
        for item in listing if isinstance(listing, list) else []:
            if isinstance(item, list | tuple) and len(item) == 3 and _is_id(item[0]):
                ip, port = item[1], item[2]
                if isinstance(ip, str) and type(port) is int and 0 < port < 65536:
                    nodes.append(Node(item[0], ip, port))
        return nodes

    async def _take_value(self, peer: Node, reply: dict[str, Any]) -> None:
        source = _addr(peer)
        self.holders.add(source)
        self.nearest.push(self._nodes_of(reply.get("nodes")))
        page, index = reply, 0
        while True:
            try:
                items = unpack_records(page.get("value"))
                self.records.extend((source, b if type(b) is bytes else b"") for b in items)
            except ValueError:
                log.debug("bad record page from %s", source)
                return
            index += 1
            if page.get("more") is not True or index >= MAX_PAGES:
                return
            ok, nxt = await self.protocol.call_find_ads_page(peer, self.node.id, index)
            if not ok or not isinstance(nxt, dict):
                return
            page = nxt


@dataclass(frozen=True, slots=True)
class RawLookup:
    records: list[tuple[str, bytes]]
    answered: list[str]
    holders: list[str]


class AdServer(Server):  # type: ignore[misc]
    """kademlia's Server as an advert directory; timers are driven by the trio caller."""

    protocol_class = AdProtocol

    def __init__(
        self,
        store: AdvertStore,
        *,
        node_id: bytes | None = None,
        ksize: int = 20,
        alpha: int = 3,
        client_mode: bool = False,
    ) -> None:
        super().__init__(ksize=ksize, alpha=alpha, node_id=node_id, storage=AdStorage(store))
        self.client_mode = client_mode

    def _create_protocol(self) -> AdProtocol:
        proto = AdProtocol(self.node, self.storage, self.ksize)
        proto.client_mode = self.client_mode
        return proto

    def refresh_table(self, interval: float = 0) -> None:
        """Disabled: the trio shell calls ``refresh()`` on its own timer."""

    async def get(self, key: Any) -> Any:
        raise OverlayUsageError("use lookup(); get() is last-writer-wins")

    async def set(self, key: Any, value: Any) -> bool:
        raise OverlayUsageError("use publish(); set() is last-writer-wins")

    def stop(self) -> None:
        if self.protocol is not None:
            self.protocol.fail_outstanding()
        super().stop()

    async def ping_bootstrap(self, addrs: Sequence[tuple[str, int]]) -> list[Node]:
        """Ping the bootstrap addresses and crawl for our own id; return peers that answered."""
        proto: AdProtocol = self.protocol
        replies = await asyncio.gather(*(proto.ping(a, proto._my_id()) for a in addrs))
        nodes = [Node(r[1], a[0], a[1]) for a, r in zip(addrs, replies, strict=True) if r[0] and _is_id(r[1])]
        for node in nodes:
            proto.welcome_if_new(node)
        if nodes:
            await SoftNodeSpiderCrawl(proto, self.node, nodes, self.ksize, self.alpha).find()
        return nodes

    async def closest(self, key: bytes) -> list[Node]:
        target = Node(key)
        nearest = self.protocol.router.find_neighbors(target)
        if not nearest:
            return []
        found: list[Node] = await SoftNodeSpiderCrawl(
            self.protocol, target, nearest, self.ksize, self.alpha
        ).find()
        return found

    async def publish_records(self, key: bytes, blobs: Sequence[bytes]) -> tuple[int, int]:
        """Store ``blobs`` locally (if close) and at the k closest; return (peers, accepted)."""
        nodes = await self.closest(key)
        target = Node(key)
        mine = self.node.distance_to(target)
        if not self.client_mode and (not nodes or mine < max(n.distance_to(target) for n in nodes)):
            self.storage.store.offer_many(key, blobs, self.storage.clock())
        calls = [
            self.protocol.call_store(n, key, pack_records(chunk))
            for n in nodes
            for chunk in chunk_records(blobs)
        ]
        results = await asyncio.gather(*calls)
        return len(nodes), sum(1 for ok, accepted in results if ok and accepted is True)

    async def lookup_records(self, key: bytes) -> RawLookup:
        """Local records plus a merging crawl over the k closest peers."""
        local = [("local", b) for b in self.storage.store.blobs(key, self.storage.clock())]
        target = Node(key)
        nearest = self.protocol.router.find_neighbors(target)
        if not nearest:
            return RawLookup(local, [], [])
        spider = MergingValueSpiderCrawl(self.protocol, target, nearest, self.ksize, self.alpha)
        records = await spider.find()
        return RawLookup(local + records, sorted(spider.answered), sorted(spider.holders))

    async def refresh(self, replicate_older_than: float) -> None:
        """Refresh lonely buckets and re-store records this node has held a while."""
        ids = [bytes(i) for i in self.protocol.get_refresh_ids()]
        ids.append(random.getrandbits(160).to_bytes(20, "big"))
        await asyncio.gather(*(self.closest(i) for i in ids))
        for key, value in self.storage.iter_older_than(replicate_older_than):
            nodes = await self.closest(key)
            await asyncio.gather(*(self.protocol.call_store(n, key, value) for n in nodes))

    async def walk(self, max_nodes: int, probes: int = 3) -> tuple[list[str], list[str]]:
        """Crawl the whole network: ask every node found for nodes near random ids.

        Returns (addresses that answered, addresses that did not).
        """
        seen: dict[str, Node] = {_addr(n): n for n in self.protocol.router.contacts()}
        live: list[str] = []
        dead: list[str] = []
        queue = list(seen.values())
        while queue and len(live) + len(dead) < max_nodes:
            batch, queue = queue[:16], queue[16:]
            replies = await asyncio.gather(*(self._probe(n, probes) for n in batch))
            for node, found in zip(batch, replies, strict=True):
                (live if found is not None else dead).append(_addr(node))
                for other in found or []:
                    if _addr(other) not in seen:
                        seen[_addr(other)] = other
                        queue.append(other)
        return live, dead

    async def _probe(self, node: Node, probes: int) -> list[Node] | None:
        proto: AdProtocol = self.protocol
        found: list[Node] = []
        targets = [node.id] + [random.getrandbits(160).to_bytes(20, "big") for _ in range(probes)]
        for target in targets:
            ok, listing = await proto.find_node((node.ip, node.port), proto._my_id(), target)
            if not ok:
                return found if found else None
            found.extend(MergingValueSpiderCrawl._nodes_of(listing))
        return found
