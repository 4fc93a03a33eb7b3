"""The node manager daemon's I/O shell (trio): TCP framing, timeouts, effects.

One ``NodeServer`` per node. ``serve`` binds the listener and owns a nursery for the
connections and for one watcher task per running program. Every new connection passes
admission control first (``admission.py``: limits per address and prefix, eviction of idle
public connections, a reserve for owners and users); a request that is not signed by a key
with rights on a vessel waits for its tokens and then for the one-at-a-time public lane.
For each frame:
authenticate (pure) -> decide (``api.handle``, pure) -> commit the change and the nonce
(one SQLite transaction) -> perform the effects -> send a signed response. Requests that
change vessels are serialised by one lock; read-only ones run concurrently.
Every RequestError becomes an error response here, in ``respond``; anything else is logged
and answered with ``InternalError``.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import trio

from nodemanager import errors
from nodemanager.node import api, model
from nodemanager.node.admission import Admission, Conn, PortLimits
from nodemanager.node.batch import any_call_ok, run_batch
from nodemanager.node.files import VesselStore
from nodemanager.node.leases import load_config
from nodemanager.node.nonces import NonceCommits
from nodemanager.node.poolservice import PoolService, pool_entries
from nodemanager.node.sessions import Link, accept
from nodemanager.node.sources import StatusSources
from nodemanager.node.state import NodeState
from nodemanager.node.vessels import ProgramRunner, live_of, map_runner_errors
from nodemanager.proto import messages as m
from nodemanager.proto.auth import (
    TIME_WINDOW,
    Verified,
    authenticate,
    authenticate_session,
    read_nonce,
)
from nodemanager.proto.listener import serve_tcp
from nodemanager.proto.messages import Batch, GetNodeStatus, OpenSession
from nodemanager.proto.session import Channel, Frame, parse_frame
from nodemanager.proto.wire import (
    HEADER,
    MAX_FRAME_BYTES,
    RESPONSE_DOMAIN,
    Envelope,
    RequestBody,
    Response,
    Signer,
    frame,
    frame_length,
    open_envelope,
    read_request_body,
    response_body,
    seal_response,
)
from seattlecore import KeyPair, PublicKey

log = logging.getLogger(__name__)

VERSION = "seattle-p2p-nodemanager 0.1.0"
REFUSAL_TIMEOUT = 1.0
"""Seconds spent telling a refused newcomer ``Overloaded`` before hanging up."""
SPARE_FDS = 128
"""File descriptors kept free of connections (state database, logs, vessel processes)."""


def peer_host(stream: trio.abc.Stream) -> str:
    """The remote IP address of a socket stream (other streams count as one source)."""
    socket = getattr(stream, "socket", None)
    try:
        return str(socket.getpeername()[0]) if socket is not None else "local"
    except OSError:
        return "unknown"


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's RLIMIT_NOFILE soft limit towards ``wanted`` (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def fit_to_fd_limit(limits: PortLimits) -> PortLimits:
    """Lower ``max_connections`` (and the reserve) to what RLIMIT_NOFILE allows.

    Accepting past the limit would make ``accept`` fail with EMFILE for everyone,
    owners included, which is the lock-out the limits exist to prevent.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - SPARE_FDS
    if soft == resource.RLIM_INFINITY or limits.max_connections <= room:
        return limits
    fitted = max(2, room)
    log.warning("RLIMIT_NOFILE is %d: serving at most %d connections instead of %d",
                soft, fitted, limits.max_connections)
    reserve = min(limits.reserved_connections, fitted // 2)
    return replace(limits, max_connections=fitted, reserved_connections=reserve)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Limits and timeouts of the daemon."""

    max_frame: int = MAX_FRAME_BYTES
    idle_timeout: float = 60.0
    """Seconds a connection may sit between requests before it is closed."""
    frame_timeout: float = 30.0
    """Seconds a frame may take to arrive once its first byte came (slow clients)."""
    send_timeout: float = 30.0
    limits: PortLimits = field(default_factory=PortLimits)
    """Connection and request limits of the port (nodemanager/node/admission.py)."""
    time_window: float = TIME_WINDOW
    version: str = VERSION


class FrameReader:
    """Reads length-prefixed frames from a stream, bounding size and time."""

    def __init__(self, stream: trio.abc.ReceiveStream, config: ServerConfig) -> None:
        self._stream = stream
        self._config = config
        self._buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            wanted = min(max(65536, size - len(self._buffer)), 1 << 20)
            chunk = await self._stream.receive_some(wanted)
            if not chunk:
                return False
            self._buffer += chunk
        return True

    async def next_frame(self, public: bool = False) -> bytes | None:
        """The next payload, or None on EOF, idle timeout or a too-slow frame.

        Raises FrameTooLarge before reading the body of an oversized frame; frames of a
        ``public`` connection (admission.py) are held to ``limits.public_max_frame``.
        """
        if not self._buffer:
            with trio.move_on_after(self._config.idle_timeout):
                if not await self._fill(1):
                    return None
            if not self._buffer:
                return None
        ready = self._whole_frame(public)
        if ready is not None:
            return ready
        with trio.move_on_after(self._config.frame_timeout):
            if not await self._fill(HEADER.size):
                return None
            length = self._check_length(bytes(self._buffer[: HEADER.size]), public)
            if not await self._fill(HEADER.size + length):
                return None
            payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
            del self._buffer[: HEADER.size + length]
            return payload
        log.info("closing a connection whose frame did not arrive in time")
        return None

    def _check_length(self, header: bytes, public: bool) -> int:
        length = frame_length(header, self._config.max_frame)
        if public and length > self._config.limits.public_max_frame:
            raise errors.FrameTooLarge(
                f"frame of {length} bytes on an unauthenticated connection: send a small "
                f"signed request first (limit {self._config.limits.public_max_frame} bytes)")
        return length

    def _whole_frame(self, public: bool) -> bytes | None:
        """The next payload if the buffer already holds all of it (the usual case: a small
        request arrives in one segment), without arming the frame timeout."""
        if len(self._buffer) < HEADER.size:
            return None
        length = self._check_length(bytes(self._buffer[: HEADER.size]), public)
        if len(self._buffer) < HEADER.size + length:
            return None
        payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return payload


class LiveReports(Mapping[str, model.Live]):
    """The runner's reports of the vessels it knows (not ``Fresh``), read when asked for:
    a request reads one or two vessels' (GetVessels: all), so a view built for every call
    of a batch no longer reads every vessel's report (issue 27's profile: N^2 a batch)."""

    def __init__(self, runner: ProgramRunner, vessels: Mapping[str, object]) -> None:
        self._runner = runner
        self._vessels = vessels

    def __getitem__(self, name: str) -> model.Live:
        if name not in self._vessels:
            raise KeyError(name)
        report = self._runner.report(name)
        if report.status == "Fresh":
            raise KeyError(name)
        return live_of(report)

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._vessels) if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _nothing(verified: Verified) -> None:
    """A session batch's nonce: not recorded (the session's counter refuses replays)."""


def vessel_names(request: object) -> list[str]:
    """The vessels a request names, sorted (the order their locks are taken in)."""
    names = {getattr(request, field, None) for field in ("vessel", "vessel1", "vessel2")}
    return sorted(name for name in names if isinstance(name, str))


class NodeServer:
    """State, vessels and request handling of one node."""

    def __init__(
        self, *, keys: KeyPair, state: NodeState, store: VesselStore, runner: ProgramRunner,
        config: ServerConfig | None = None, clock: Callable[[], float] = time.time,
        status: StatusSources | None = None, dial_back_sink: Callable[[bytes], None] | None = None,
    ) -> None:
        """``status``: what GetNodeStatus shows besides our own state (reachability, relays,
        updates); ``dial_back_sink``: called with each DialBack token received (the
        reachability prober's, nodemanager/nat/prober.py)."""
        self.keys = keys
        self.node = keys.public
        self._signer = Signer(keys, RESPONSE_DOMAIN)
        self.state = state
        self.store = store
        self.runner = runner
        self.config = config or ServerConfig()
        self.clock = clock
        self.started_at = clock()
        self._lock = trio.Lock()
        """Held while a mutating request is decided and committed."""
        self._vessel_locks: dict[str, trio.Lock] = {}
        """Held (sorted by name) while a mutating request naming the vessel is carried out."""
        self.admission = Admission(self.config.limits)
        self._nonces = NonceCommits(state, lambda: self.admission.trusted_connections > 1,
                                    self.config.time_window)
        self._scopes: dict[int, trio.CancelScope] = {}
        self._public_lane = trio.Lock()
        """Public requests are carried out one at a time (FIFO), so a crowd of them never
        fills one trip through trio's scheduler ahead of an owner's request."""
        self._generation: dict[str, int] = {}
        self._programs: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._advert_event = trio.Event()
        self.advert_generation = 0
        self._nursery: trio.Nursery | None = None
        self.status = status or StatusSources()
        self._dial_back_sink = dial_back_sink
        self.relays: tuple[str, ...] = ()
        """Relays holding a reservation for this node: put into its adverts (set_relays)."""
        self.donor_paused: str | None = None
        """Why the donor paused this node's vessels, or None: put into its adverts
        (``set_donor_paused``, called by the donor control)."""
        self._effects: dict[type[Any], Callable[[Any], Awaitable[Mapping[str, object]]]] = {
            model.StartProgram: self._start_program, model.StopProgram: self._stop_program,
            model.WipeVessel: self._wipe_vessel, model.DestroyVessel: self._destroy_vessel,
            model.CreateVessel: self._create_vessel, model.WriteFile: self._write_file,
            model.ReadFile: self._read_file, model.ListFiles: self._list_files,
            model.DeleteFile: self._delete_file, model.ReadLog: self._read_log,
            model.Reannounce: self._reannounce, model.NoteDialBack: self._note_dial_back,
        }
        pool_config = load_config(state)
        self.pool = None if pool_config is None else PoolService(self, pool_config, clock)
        """The community pool's leases (docs/pool.md), if this node has pool vessels."""
        if self.pool is not None:
            self.status.provide("pool", self.pool.status)

    # ---- lifecycle ----

    def reconcile(self) -> None:
        """Start-up repair: directories match the vessels; 'Started' ones did not survive."""
        self.store.reconcile(set(self.state.vessels))
        for vessel in list(self.state.vessels.values()):
            if vessel.status == "Started":
                log.info("vessel %s was running when the node manager stopped", vessel.name)
                self.state.record_status(vessel.name, "Terminated",
                                         exit_reason="node manager restarted")

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` until cancelled; ``task_status.started(bound_port)``."""
        self.reconcile()
        self.admission = Admission(fit_to_fd_limit(self.config.limits), trio.current_time())
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.pool is not None:
                nursery.start_soon(self.pool.run)
            bound = await nursery.start(serve_tcp, self.handle_connection, host, port)
            log.info("node manager %s listening on %s:%d", self.node.short(), host, bound)
            task_status.started(bound)

    # ---- advertisement seam ----

    def advert_entries(self) -> list[tuple[str, PublicKey]]:
        """(vessel, key) pairs to advertise: owner and users of vessels with advertise on."""
        entries: list[tuple[str, PublicKey]] = []
        for name in sorted(self.state.vessels):
            vessel = self.state.vessels[name]
            if vessel.advertise and not (self.pool and self.pool.is_pool_vessel(name)):
                keys = dict.fromkeys((vessel.owner, *vessel.users))
                entries.extend((name, key) for key in keys)
        return entries + sorted(self.advert_tags(), key=lambda p: (p[0], p[1].raw))

    def advert_tags(self) -> dict[tuple[str, PublicKey], bytes]:
        """Tags of the pool's advertised pairs (free vessels, lease records: docs/pool.md)."""
        return dict(pool_entries(self.pool))

    # ---- seam for the pool (poolservice.py) ----

    def vessel_lock(self, name: str) -> trio.Lock:
        """The lock held while a request acts on vessel ``name``."""
        return self._vessel_lock(name)

    @property
    def commit_lock(self) -> trio.Lock:
        """The lock held while a change is decided and committed."""
        return self._lock

    async def wipe(self, vessel: str) -> None:
        """Stop the vessel's program and delete its files and log."""
        await self._halt(vessel)
        await trio.to_thread.run_sync(self.store.wipe, vessel)

    def reannounce(self) -> None:
        self._bump_adverts()

    def set_relays(self, relays: tuple[str, ...]) -> None:
        """The relays through which this node is reachable changed: re-announce."""
        if relays != self.relays:
            self.relays = relays
            self._bump_adverts()

    def set_donor_paused(self, reason: str | None) -> None:
        """The donor paused (or resumed) this node's vessels: re-announce with the reason."""
        if reason != self.donor_paused:
            self.donor_paused = reason
            self._bump_adverts()

    def _bump_adverts(self) -> None:
        self.advert_generation += 1
        self._advert_event.set()
        self._advert_event = trio.Event()

    async def wait_advert_changed(self, seen_generation: int) -> int:
        """Wait until ``advert_generation`` differs from ``seen_generation``; return it."""
        while self.advert_generation == seen_generation:
            await self._advert_event.wait()
        return self.advert_generation

    # ---- connections ----

    async def handle_connection(self, stream: trio.abc.Stream, source: str | None = None) -> None:
        """Serve requests on one connection until EOF, timeout, eviction or a fatal error.

        ``source`` replaces the peer address for admission: a relayed connection's client
        address as the relay claims it (relayclient.py).
        """
        opened = self.admission.open(source or peer_host(stream), trio.current_time())
        for victim in opened.evicted:
            self._scopes[victim.id].cancel()
        if opened.shed:
            log.debug("shed a newcomer from %s", peer_host(stream))
            await stream.aclose()
            return
        if opened.conn is None:
            with trio.move_on_after(REFUSAL_TIMEOUT):
                await self._send(stream, self.error_payload(
                    errors.Overloaded("every connection slot is taken")))
            await stream.aclose()
            return
        conn = opened.conn
        with trio.CancelScope() as scope:
            self._scopes[conn.id] = scope
            try:
                async with stream:
                    await self._serve_frames(stream, conn)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.debug("connection dropped by the peer")
            finally:
                del self._scopes[conn.id]
                self.admission.close(conn)
        if scope.cancelled_caught:
            log.debug("evicted a public connection from %s", conn.address)

    async def _serve_frames(self, stream: trio.abc.Stream, conn: Conn) -> None:
        reader = FrameReader(stream, self.config)
        link = Link()  # this connection's session (protocol §18), once opened
        while True:
            try:
                payload = await reader.next_frame(public=not conn.trusted)
            except errors.FrameTooLarge as exc:
                await self._send(stream, self.error_payload(exc))
                return
            if payload is None:
                return
            response = await self._admit_and_answer(conn, payload, link)
            if response is None or not await self._send(stream, response) or link.closing:
                return
            self.admission.end(conn, trio.current_time())

    async def _admit_and_answer(self, conn: Conn, payload: bytes, link: Link) -> bytes | None:
        """Pace a public request (admission rule 4), answer it, trust the connection if due.

        Privileged requests run at once; the others wait for their tokens, then for the
        public lane (one at a time, FIFO). Returns None if the connection was evicted
        meanwhile: it stays evictable until its request begins. A session frame (§18)
        claims the rights of the key that opened the session.
        """
        answer: Callable[[], Awaitable[tuple[bytes, bool]]]
        session_frame = parse_frame(payload)
        if session_frame is not None:
            channel = link.channel
            claim = channel is not None and self._has_rights(channel.requester)
            answer = partial(self._answer_session, session_frame, link)
        else:
            parsed = self._parse(payload)
            claim = parsed is not None and self._claims_rights(*parsed)
            answer = partial(self._answer, payload, parsed, link)
        if claim and not conn.must_pay:
            return await self._answer_on(conn, answer, claim)
        wait = self.admission.charge(conn, trio.current_time())
        if wait > 0:
            await trio.sleep(wait)
        self.admission.paid(conn)
        async with self._public_lane:
            return await self._answer_on(conn, answer, claim)

    async def _answer_on(self, conn: Conn, answer: Callable[[], Awaitable[tuple[bytes, bool]]],
                         claim: bool) -> bytes | None:
        self.admission.begin(conn)
        if conn.evicted:
            return None
        response, ok = await answer()
        if claim and ok:
            self.admission.trust(conn)
            conn.must_pay = False
        elif claim and not conn.trusted:  # a forgery or replay: no free request next time
            conn.must_pay = True
        return response

    @staticmethod
    def _parse(payload: bytes) -> tuple[Envelope, RequestBody] | None:
        try:
            envelope = open_envelope(payload)
            return envelope, read_request_body(envelope.body)
        except errors.RequestError:
            return None

    def _claims_rights(self, envelope: Envelope, body: RequestBody) -> bool:
        """Signed, and by a key with a right on some vessel (not yet verified)."""
        key = body.requester
        return envelope.signature is not None and key is not None and self._has_rights(key)

    def _has_rights(self, key: PublicKey) -> bool:
        return any(vessel.may_use(key) for vessel in self.state.vessels.values())

    async def _send(self, stream: trio.abc.SendStream, payload: bytes) -> bool:
        with trio.move_on_after(self.config.send_timeout):
            await stream.send_all(frame(payload))
            return True
        return False

    def error_payload(self, exc: errors.RequestError, nonce: bytes | None = None) -> bytes:
        response = Response(node=self.node, nonce=nonce, ok=False, code=exc.code,
                            message=str(exc))
        return seal_response(self._signer, response)

    async def respond(self, payload: bytes) -> bytes:
        """Answer one request payload with a signed response payload (never raises)."""
        response, _ = await self._answer(payload)
        return response

    async def _answer(
        self, payload: bytes, parsed: tuple[Envelope, RequestBody] | None = None,
        link: Link | None = None,
    ) -> tuple[bytes, bool]:
        """The signed response payload, and whether the request succeeded."""
        envelope: Envelope | None = None
        try:
            envelope, body = parsed or (open_envelope(payload), None)
            verified = authenticate(envelope, node=self.node, now=self.clock(),
                                    window=self.config.time_window, body=body)
            if isinstance(verified.request, OpenSession):
                return await self._open_session(verified, envelope.body, link or Link()), True
            result = await self._execute(verified)
        except errors.RequestError as exc:
            log.debug("refused request: %s: %s", exc.code, exc)
            nonce = None if envelope is None else read_nonce(envelope)
            return self.error_payload(exc, nonce), False
        except Exception:
            log.exception("internal error while handling a request")
            nonce = None if envelope is None else read_nonce(envelope)
            return self.error_payload(errors.InternalError("internal error"), nonce), False
        response = Response(node=self.node, nonce=verified.nonce, ok=True, result=result)
        ok = not isinstance(verified.request, Batch) or any_call_ok(result)
        return seal_response(self._signer, response), ok

    # ---- sessions (revision 10, protocol §18) ----

    async def _open_session(self, verified: Verified, body: bytes, link: Link) -> bytes:
        """Consume the handshake's nonce (a replayed handshake opens nothing), then open."""
        await self._nonces.record(verified.nonce, verified.timestamp, self.clock())
        return accept(verified, body, node=self.node, signer=self._signer, link=link)

    async def _answer_session(self, frame: Frame, link: Link) -> tuple[bytes, bool]:
        """Answer a session frame under the session's key; a BadSession (no session, a
        forged tag, a counter not the next one, another requester) gets a signed refusal
        and ends the connection, and nothing of the frame is carried out."""
        channel = link.channel
        try:
            if channel is None:
                raise errors.BadSession("no session is open on this connection")
            counter, raw = channel.open_request(frame)
            body = read_request_body(raw)
            verified = authenticate_session(body, requester=channel.requester, node=self.node,
                                            now=self.clock(), window=self.config.time_window)
        except errors.BadSession as exc:
            log.info("refused a session frame: %s", exc)
            link.closing = True
            return self.error_payload(exc), False
        except errors.RequestError as exc:  # an authentic frame with a bad body
            assert channel is not None
            return self._session_error(channel, counter, raw, exc), False
        try:
            result = await self._execute(verified, nonce=False)
        except errors.RequestError as exc:
            return self._session_error(channel, counter, raw, exc, verified.nonce), False
        except Exception:
            log.exception("internal error while handling a session request")
            return self._session_error(channel, counter, raw, errors.InternalError(
                "internal error"), verified.nonce), False
        ok = not isinstance(verified.request, Batch) or any_call_ok(result)
        response = Response(node=self.node, nonce=verified.nonce, ok=True, result=result)
        return channel.seal_response(counter, response_body(response)), ok

    def _session_error(self, channel: Channel, counter: int, raw: bytes,
                       exc: errors.RequestError, nonce: bytes | None = None) -> bytes:
        """A refusal of an authentic session request, under the session's key."""
        if nonce is None:
            try:
                nonce = read_request_body(raw).nonce
            except errors.RequestError:
                nonce = None
        response = Response(node=self.node, nonce=nonce, ok=False, code=exc.code,
                            message=str(exc))
        return channel.seal_response(counter, response_body(response))

    # ---- decide, commit, act ----

    async def _execute(self, verified: Verified, *, nonce: bool = True) -> dict[str, object]:
        """Decide and commit under the node's lock; act under the named vessels' locks only,
        so a slow effect (a program starting) holds up requests on its vessels, not others.

        ``nonce`` False: the request is a call of a batch whose nonce is already consumed.
        """
        if isinstance(verified.request, Batch):
            return await run_batch(verified, self._execute_call,
                                   self._consume_nonce if nonce else _nothing)
        if isinstance(verified.request, m.POOL_REQUESTS):
            if self.pool is None:
                raise errors.NotInPool("this node has no pool vessels")
            return await self.pool.execute(verified, nonce=nonce)
        if not verified.request.mutates:
            now = self.clock()
            outcome = self._decide(verified, now)
            if outcome.change is None and verified.signed and nonce:
                await self._nonces.record(verified.nonce, verified.timestamp, now)
            else:
                self._commit(verified, outcome, now, nonce)
            return await self._act(outcome)
        async with AsyncExitStack() as stack:
            for name in vessel_names(verified.request):
                await stack.enter_async_context(self._vessel_lock(name))
            async with self._lock:
                outcome = self._decide_and_commit(verified, nonce)
            return await self._act(outcome)
        raise AssertionError("unreachable")  # pragma: no cover (mypy: the stack may swallow)

    async def _execute_call(self, verified: Verified) -> dict[str, object]:
        return await self._execute(verified, nonce=False)

    def _consume_nonce(self, verified: Verified) -> None:
        self.state.commit(None, nonce=verified.nonce, ts=verified.timestamp, now=self.clock(),
                          window=self.config.time_window)

    def _decide_and_commit(self, verified: Verified, nonce: bool = True) -> model.Outcome:
        now = self.clock()
        outcome = self._decide(verified, now)
        self._commit(verified, outcome, now, nonce)
        return outcome

    def _decide(self, verified: Verified, now: float) -> model.Outcome:
        status = type(verified.request) is GetNodeStatus
        return api.handle(verified, self.view(now, status=status), now)

    def _commit(self, verified: Verified, outcome: model.Outcome, now: float,
                nonce: bool) -> None:
        """The change and the request's nonce (``nonce`` False: a batch's call), at once."""
        self.state.commit(
            outcome.change, nonce=verified.nonce if verified.signed and nonce else None,
            ts=verified.timestamp, now=now, window=self.config.time_window)

    async def _act(self, outcome: model.Outcome) -> dict[str, object]:
        result = dict(outcome.result)
        for effect in outcome.effects:
            result.update(await self._effects[type(effect)](effect))
        return result

    def _vessel_lock(self, name: str) -> trio.Lock:
        """The lock of vessel ``name`` (locks of vessels gone and idle are dropped)."""
        if len(self._vessel_locks) > 2 * len(self.state.vessels) + 16:
            self._vessel_locks = {n: lock for n, lock in self._vessel_locks.items()
                                  if lock.locked() or n in self.state.vessels}
        return self._vessel_locks.setdefault(name, trio.Lock())

    def view(self, now: float, *, status: bool = True) -> model.NodeView:
        """A snapshot of state plus live supervisor reports, for ``api.handle``.

        Without ``status`` the parts only GetNodeStatus shows (load, port counters, the
        status sources: relay, reachability, updates) are left out: reading them for every
        request cost more than the signature check (issue 27's profile).
        """
        live = LiveReports(self.runner, self.state.vessels)
        view = model.NodeView(
            node=self.node, version=self.config.version, vessels=self.state.vessels, live=live,
            offcut=self.state.offcut, offcuts_held=self.state.offcuts_held,
            next_index=self.state.next_index, started_at=self.started_at,
            programs=self._programs)
        if not status:
            return view
        return replace(
            view, load=os.getloadavg(), programs=dict(self._programs),
            port_limits=self.admission.limits, port_stats=self.admission.statistics(),
            updates=self.status.updates(), reachability=self.status.reach(),
            extras=self.status.extras())

    # ---- effects ----

    async def _start_program(self, effect: model.StartProgram) -> Mapping[str, object]:
        directory = self.store.directory(effect.vessel)
        if not (directory / effect.program).is_file():
            raise errors.FileNotFound(f"program {effect.program!r} is not in {effect.vessel}")
        self._programs[effect.vessel] = (effect.program, tuple(effect.args))
        try:
            with map_runner_errors("StartVessel"):
                await self.runner.start(
                    vessel=effect.vessel, directory=directory, resources=effect.resources,
                    program=effect.program, args=list(effect.args),
                    log_path=self.store.log_path(effect.vessel))
        except errors.StartFailed:
            self._record_end(effect.vessel)  # e.g. Terminated with the compile error
            raise
        self.state.record_status(effect.vessel, "Started")
        generation = self._generation.get(effect.vessel, 0) + 1
        self._generation[effect.vessel] = generation
        assert self._nursery is not None, "serve() owns the watcher nursery"
        self._nursery.start_soon(self._watch, effect.vessel, generation)
        return {"status": "Started"}

    async def _watch(self, vessel: str, generation: int) -> None:
        """Persist the final status when the vessel's program ends (unless reset since)."""
        report = await self.runner.wait(vessel)
        if self._generation.get(vessel) == generation and report.status != "Started":
            live = live_of(report)
            self.state.record_status(vessel, live.status, exit_reason=live.exit_reason,
                                     exit_code=live.exit_code)

    def _record_end(self, vessel: str) -> None:
        live = live_of(self.runner.report(vessel))
        if live.status not in ("Fresh", "Started"):
            self.state.record_status(vessel, live.status, exit_reason=live.exit_reason,
                                     exit_code=live.exit_code)

    async def _stop_program(self, effect: model.StopProgram) -> Mapping[str, object]:
        with map_runner_errors("StopVessel"):
            await self.runner.stop(effect.vessel)
        live = live_of(self.runner.report(effect.vessel))
        self.state.record_status(effect.vessel, live.status, exit_reason=live.exit_reason,
                                 exit_code=live.exit_code)
        return {"status": live.status}

    async def _halt(self, vessel: str) -> None:
        self._generation[vessel] = self._generation.get(vessel, 0) + 1
        if self.runner.report(vessel).status == "Started":
            try:
                with map_runner_errors("stop"):
                    await self.runner.stop(vessel)
            except errors.VesselNotRunning:
                pass
        self.runner.forget(vessel)
        self._programs.pop(vessel, None)

    async def _wipe_vessel(self, effect: model.WipeVessel) -> Mapping[str, object]:
        await self._halt(effect.vessel)
        await trio.to_thread.run_sync(self.store.wipe, effect.vessel)
        return {}

    async def _destroy_vessel(self, effect: model.DestroyVessel) -> Mapping[str, object]:
        await self._halt(effect.vessel)
        await trio.to_thread.run_sync(self.store.destroy, effect.vessel)
        return {}

    async def _create_vessel(self, effect: model.CreateVessel) -> Mapping[str, object]:
        self.store.ensure(effect.vessel)
        return {}

    async def _write_file(self, effect: model.WriteFile) -> Mapping[str, object]:
        await trio.to_thread.run_sync(
            self.store.write, effect.vessel, effect.filename, effect.data, effect.quota)
        return {}

    async def _read_file(self, effect: model.ReadFile) -> Mapping[str, object]:
        data = await trio.to_thread.run_sync(self.store.read, effect.vessel, effect.filename)
        return {"data": data}

    async def _list_files(self, effect: model.ListFiles) -> Mapping[str, object]:
        return {"files": self.store.list(effect.vessel)}

    async def _delete_file(self, effect: model.DeleteFile) -> Mapping[str, object]:
        self.store.delete(effect.vessel, effect.filename)
        return {}

    async def _read_log(self, effect: model.ReadLog) -> Mapping[str, object]:
        piece = self.runner.log_since(effect.vessel, effect.since,
                                      self.store.log_path(effect.vessel))
        return {"log": piece.data, "total": piece.total, "start": piece.start, "run": piece.run}

    async def _note_dial_back(self, effect: model.NoteDialBack) -> Mapping[str, object]:
        if self._dial_back_sink is not None:
            self._dial_back_sink(effect.token)
        return {}

    async def _reannounce(self, effect: model.Reannounce) -> Mapping[str, object]:
        self._bump_adverts()
        return {}
