"""A trio client for the node manager protocol (used by seash and the tests).

Example::

    async with open_node_client("127.0.0.1", port, identity=alice) as nm:
        info = await nm.get_vessels()
        await nm.add_file("v1", "hello.py", b"log('hi')\\n")
        await nm.start_vessel("v1", "hello.py", ["arg"])

Every call is signed by ``identity`` (if given) and addressed to the node key; the node key
is either given or learnt from an unsigned GetVessels on first use (trust on first use).
A request over 64 KiB on a connection where no signed call has succeeded yet is preceded
by a signed GetNodeStatus: nodes take big frames only on trusted connections (protocol §10).
Every response is verified: signed by that node key and bound to the request's nonce.
An error response raises the matching ``nodemanager.errors.RequestError`` subclass.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from nodemanager.errors import (
    BadPoolRecord,
    BadResponse,
    BadSession,
    ClientError,
    ConnectionFailed,
    UnknownOperation,
    error_for_code,
)
from nodemanager.proto import messages as m
from nodemanager.proto.pool import read_credential, sign_consent
from nodemanager.proto.session import (
    MAX_COUNTER,
    Channel,
    Ephemeral,
    derive_keys,
    parse_frame,
)
from nodemanager.proto.wire import (
    HEADER,
    MAX_FRAME_BYTES,
    NONCE_BYTES,
    PUBLIC_FRAME_BYTES,
    REQUEST_DOMAIN,
    Envelope,
    Signer,
    frame,
    frame_length,
    open_envelope,
    open_response,
    read_response_body,
    request_body,
    seal_request,
)
from sandbox import ResourceTable
from seattlecore import CoreError, KeyPair, PublicKey

DEFAULT_TIMEOUT = 30.0



@dataclass(frozen=True, slots=True, kw_only=True)
class VesselInfo:
    """One vessel as GetVessels reports it."""

    name: str
    status: str
    exit_reason: str | None
    exit_code: int | None
    advertise: bool
    owner: PublicKey
    owner_info: str
    users: tuple[PublicKey, ...]
    usage: Mapping[str, float] = field(default_factory=dict)
    program: str | None = None
    """The program last started (None: none since the node manager started, or reset)."""
    args: tuple[str, ...] = ()
    paused: str | None = None
    """The program is frozen by its donor: manual, battery, schedule or busy (revision 9)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """GetVessels: the node's version, key and vessels."""

    version: str
    node: PublicKey
    vessels: tuple[VesselInfo, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """GetNodeStatus."""

    version: str
    protocol: int
    node: PublicKey
    uptime: float
    revision: int = 1
    """Compatible additions the node speaks (1 when the node predates revisions)."""
    vessels: int
    running: int
    load: tuple[float, ...]
    limits: Mapping[str, float] = field(default_factory=dict)
    """The port's connection and request limits (docs/protocol.md §10)."""
    connections: Mapping[str, int] = field(default_factory=dict)
    """Connection counters: current, trusted, evicted, refused, delayed..."""
    updates: Mapping[str, Any] | None = None
    """Managed installs: running version, latest verified, last check (docs/updates.md)."""
    reachability: Mapping[str, Any] | None = None
    """tcp/udp reachability, observed address and the reason (docs/nat.md)."""
    pool: Mapping[str, Any] | None = None
    """The community pool's vessels and their leases (docs/pool.md), on pool nodes."""
    relay: Mapping[str, Any] = field(default_factory=dict)
    """The relay service: reservations, circuits, limits, counters (protocol §14.5)."""
    relayed: Mapping[str, Any] = field(default_factory=dict)
    """The relay client: reservations this node holds while private (protocol §14.5)."""
    donor: Mapping[str, Any] = field(default_factory=dict)
    """The donor's policy and whether vessels are paused, and why (revision 9)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogChunk:
    """An incremental ReadVesselLog answer: ``data`` covers stream offsets [start, total)."""

    data: bytes
    start: int
    total: int
    since: int
    """The offset asked for."""
    run: str = ""
    """The program run this stream belongs to ("" from nodes before revision 5)."""
    previous_run: str | None = None
    """The run the reader had been following, if it said."""

    @property
    def dropped(self) -> int:
        """Bytes between ``since`` and ``start`` that the node's bounded log did not keep."""
        return max(0, self.start - self.since)

    @property
    def restarted(self) -> bool:
        """A new program run started since the last read (read again from 0): the run name
        changed, or (older nodes) the stream is shorter than ``since``."""
        if self.previous_run is not None and self.run and self.run != self.previous_run:
            return True
        return self.total < self.since


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStats:
    """Counters of one client connection."""

    calls: int
    errors: int


def _vessel_info(raw: Mapping[str, Any]) -> VesselInfo:
    return VesselInfo(
        name=raw["name"], status=raw["status"], exit_reason=raw["exit_reason"],
        exit_code=raw["exit_code"], advertise=raw["advertise"], owner=PublicKey(raw["owner"]),
        owner_info=raw["owner_info"], users=tuple(PublicKey(k) for k in raw["users"]),
        usage=dict(raw["usage"]), **_program_of(raw), paused=_paused_of(raw))


def node_info(raw: Mapping[str, Any]) -> NodeInfo:
    """A GetVessels result as a ``NodeInfo``; BadResponse if it is not one (a node signs
    whatever it answers: a hostile one can sign nonsense)."""
    try:
        vessels = raw["vessels"]
        if type(vessels) is not list:
            raise TypeError("vessels is not a list")
        return NodeInfo(version=raw["version"], node=PublicKey(raw["node"]),
                        vessels=tuple(_vessel_info(v) for v in vessels))
    except (KeyError, TypeError, ValueError, AttributeError, CoreError) as exc:
        raise BadResponse(f"GetVessels: malformed answer ({type(exc).__name__}: {exc})") from exc


def _paused_of(raw: Mapping[str, Any]) -> str | None:
    """Why the donor paused the vessel (revision 9; older nodes never say)."""
    value = raw.get("paused")
    return value if isinstance(value, str) and value else None


def _map(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _program_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``program``/``args`` of a GetVessels entry (absent from older nodes: none)."""
    program, args = raw.get("program"), raw.get("args", [])
    if program is not None and type(program) is not str:
        raise BadResponse("GetVessels: program is not a string")
    if type(args) is not list or not all(type(a) is str for a in args):
        raise BadResponse("GetVessels: args is not a list of strings")
    return {"program": program, "args": tuple(args)}


def _mapping(value: object) -> Mapping[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


class NodeClient:
    """One connection to one node manager; calls on it are serialised."""

    def __init__(
        self, stream: trio.abc.Stream, *, identity: KeyPair | None = None,
        node_key: PublicKey | None = None, timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time, path: str = "direct",
        sessions: bool | None = None,
    ) -> None:
        self._stream = stream
        self.identity = identity
        self._signer = None if identity is None else Signer(identity, REQUEST_DOMAIN)
        self.node_key = node_key
        self.timeout = timeout
        self._clock = clock
        self._lock = trio.Lock()
        self._buffer = bytearray()
        self._calls = 0
        self._errors = 0
        self._broken = False
        self._trusted = False
        """A signed call succeeded here, so the node may trust this connection (§10)."""
        self.sessions = sessions
        """Sessions (protocol §18): None opens one from the second signed call of the
        connection on, True from the first, False never (also set when the node is older
        than revision 10)."""
        self._channel: Channel | None = None
        self.path = path
        """How the stream reaches the node: ``direct``, ``relay HOST:PORT`` or ``punched``
        (nodemanager/nat/dial.py)."""

    @property
    def broken(self) -> bool:
        """True once the connection failed, timed out or a call on it was cancelled before
        its answer was read; open a new client then."""
        return self._broken

    @property
    def in_session(self) -> bool:
        """Whether a session (protocol §18) is open on this connection."""
        return self._channel is not None

    async def aclose(self) -> None:
        await self._stream.aclose()

    def statistics(self) -> ClientStats:
        return ClientStats(calls=self._calls, errors=self._errors)

    # ---- raw exchange ----

    async def _receive_frame(self) -> bytes:
        async def fill(size: int) -> None:
            while len(self._buffer) < size:
                chunk = await self._stream.receive_some(1 << 20)
                if not chunk:
                    raise ConnectionFailed("node closed the connection")
                self._buffer += chunk
        await fill(HEADER.size)
        try:
            length = frame_length(bytes(self._buffer[: HEADER.size]), MAX_FRAME_BYTES)
        except Exception as exc:
            raise BadResponse(f"response frame too large: {exc}") from exc
        await fill(HEADER.size + length)
        payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
        del self._buffer[: HEADER.size + length]
        return payload

    async def exchange(self, payload: bytes) -> bytes:
        """Send one raw frame payload and return the raw response payload (for tests)."""
        async with self._lock:
            return await self._exchange_locked(payload)

    async def _exchange_locked(self, payload: bytes) -> bytes:
        if self._broken:
            raise ConnectionFailed("connection is unusable after an earlier failure")
        answered = False
        try:
            with trio.fail_after(self.timeout):
                await self._stream.send_all(frame(payload))
                response = await self._receive_frame()
            answered = True
            return response
        except trio.TooSlowError as exc:
            self._broken = True
            raise ConnectionFailed(f"no response within {self.timeout} s") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._broken = True
            raise ConnectionFailed(f"connection failed: {exc}") from exc
        except ConnectionFailed:
            self._broken = True
            raise
        finally:
            # Cancelled (Ctrl-C, a caller's deadline) between sending and reading the
            # whole answer: that answer may still arrive and would be read as the next
            # call's, so this connection is done (the pool opens a fresh one).
            self._broken |= not answered

    # ---- calls ----

    async def call(self, request: m.Request, *, sign: bool | None = None,
                   timestamp: float | None = None) -> dict[str, Any]:
        """Send ``request`` and return the verified result map; raise its error otherwise.

        ``sign`` defaults to "signed if this client has an identity". Non-public operations
        must be signed. ``timestamp`` replaces the clock's (a consent signed for it).
        """
        signed = self.identity is not None if sign is None else sign
        if signed and self.identity is None:
            raise ClientError("a signed call needs an identity key pair")
        if not signed and request.right != "public":
            raise ClientError(f"{request.op} must be signed")
        if signed and self.node_key is None:
            # learn the node's key (trust on first use) with an unsigned GetVessels; asked
            # for that very call (public: the same answer either way), it is the answer
            learned = await self.call(m.GetVessels(), sign=False)
            if request == m.GetVessels() and timestamp is None:
                return learned
        if signed and timestamp is None and self._wants_session():
            await self._open_session()
        if signed and timestamp is None and self._channel is not None:
            return await self._session_call(request)
        nonce = os.urandom(NONCE_BYTES)
        payload = seal_request(request, identity=self._signer if signed else None,
                               node=self.node_key, nonce=nonce,
                               timestamp=self._clock() if timestamp is None else timestamp)
        if len(payload) + 64 > MAX_FRAME_BYTES:
            raise ClientError("request is larger than the maximum frame size")
        if signed and not self._trusted and len(payload) > PUBLIC_FRAME_BYTES:
            await self.call(m.GetNodeStatus(), sign=True)  # big frames need trust (§10)
        response = open_response(await self.exchange(payload), node=self.node_key, nonce=nonce)
        self._calls += 1
        if self.node_key is None:
            self.node_key = response.node
        if not response.ok:
            self._errors += 1
            raise error_for_code(response.code or "", response.message or "")
        self._trusted = self._trusted or signed
        assert response.result is not None
        return dict(response.result)

    # ---- sessions (revision 10, protocol §18) ----

    def _wants_session(self) -> bool:
        """Open a session now? Not if told not to or the node is too old; by default only
        from the second signed call of a connection on (a handshake costs as much as one
        signed call, so a connection used once is cheaper without); anew once spent."""
        if self._channel is not None and self._channel.counter >= MAX_COUNTER:
            self._channel = None
        return (self._channel is None and self.sessions is not False
                and (self.sessions is True or self._trusted))

    async def _open_session(self) -> None:
        """The signed handshake. A node before revision 10 answers ``UnknownOperation``
        (signed by it, so no one else can say so): the calls stay signed, as before."""
        assert self._signer is not None and self.node_key is not None
        mine = Ephemeral()
        nonce = os.urandom(NONCE_BYTES)
        body = request_body(m.OpenSession(eph=mine.public), node=self.node_key,
                            requester=self._signer.public, nonce=nonce, timestamp=self._clock())
        raw = await self.exchange(Envelope(body=body, signature=self._signer.sign(body))
                                  .to_payload())
        response = open_response(raw, node=self.node_key, nonce=nonce)
        self._calls += 1
        if not response.ok:
            self._errors += 1
            if response.code == UnknownOperation.code:
                self.sessions = False
                return
            raise error_for_code(response.code or "", response.message or "")
        assert response.result is not None
        try:
            shared = mine.shared(response.result.get("eph"))  # type: ignore[arg-type]
        except BadSession as exc:
            raise BadResponse(f"OpenSession answer: {exc}") from exc
        to_node, to_client = derive_keys(shared, body, open_envelope(raw, BadResponse).body)
        self._channel = Channel(requester=self._signer.public, to_node=to_node,
                                to_client=to_client)
        self._trusted = True

    async def _session_call(self, request: m.Request) -> dict[str, Any]:
        """One call under the session's key: a MAC each way instead of two signatures."""
        assert self._channel is not None and self._signer is not None
        nonce = os.urandom(NONCE_BYTES)
        body = request_body(request, node=self.node_key, requester=self._signer.public,
                            nonce=nonce, timestamp=self._clock())
        if len(body) + 128 > MAX_FRAME_BYTES:
            raise ClientError("request is larger than the maximum frame size")
        channel = self._channel
        async with self._lock:
            counter, payload = channel.seal_request(body)
            raw = await self._exchange_locked(payload)
        self._calls += 1
        try:
            frame = parse_frame(raw)
            if frame is not None:
                response = read_response_body(channel.open_response(frame, counter),
                                              node=self.node_key, nonce=nonce)
            else:  # a signed refusal: the node ended the session and the connection
                self._broken = True
                response = open_response(raw, node=self.node_key, nonce=nonce)
                if response.ok:
                    raise BadResponse("a session call was answered outside the session")
        except BadSession as exc:
            self._broken = True
            raise BadResponse(str(exc)) from exc
        if not response.ok:
            self._errors += 1
            raise error_for_code(response.code or "", response.message or "")
        assert response.result is not None
        return dict(response.result)

    async def get_vessels(self, *, sign: bool | None = None) -> NodeInfo:
        return node_info(await self.call(m.GetVessels(), sign=sign))

    async def get_vessel_resources(self, vessel: str) -> ResourceTable:
        raw = await self.call(m.GetVesselResources(vessel=vessel))
        return ResourceTable.from_dict(raw["resources"])

    async def get_offcut_resources(self) -> ResourceTable:
        raw = await self.call(m.GetOffcutResources())
        return ResourceTable.from_dict(raw["resources"])

    async def get_node_status(self) -> NodeStatus:
        raw = await self.call(m.GetNodeStatus())
        return NodeStatus(version=raw["version"], protocol=raw["protocol"],
                          node=PublicKey(raw["node"]), uptime=raw["uptime"],
                          vessels=raw["vessels"], running=raw["running"],
                          load=tuple(raw["load"]), revision=int(raw.get("revision", 1)),
                          limits=dict(raw.get("limits", {})),
                          connections=dict(raw.get("connections", {})),
                          updates=raw["updates"] if isinstance(raw.get("updates"), dict) else None,
                          reachability=_mapping(raw.get("reachability")),
                          relay=_map(raw, "relay"), relayed=_map(raw, "relayed"),
                          pool=_mapping(raw.get("pool")), donor=_map(raw, "donor"))

    async def start_vessel(self, vessel: str, program: str, args: Sequence[str] = ()) -> str:
        raw = await self.call(m.StartVessel(vessel=vessel, program=program, args=tuple(args)))
        return str(raw["status"])

    async def stop_vessel(self, vessel: str) -> str:
        return str((await self.call(m.StopVessel(vessel=vessel)))["status"])

    async def reset_vessel(self, vessel: str) -> str:
        return str((await self.call(m.ResetVessel(vessel=vessel)))["status"])

    async def add_file(self, vessel: str, filename: str, data: bytes) -> None:
        await self.call(m.AddFileToVessel(vessel=vessel, filename=filename, data=data))

    async def retrieve_file(self, vessel: str, filename: str) -> bytes:
        raw = await self.call(m.RetrieveFileFromVessel(vessel=vessel, filename=filename))
        return bytes(raw["data"])

    async def list_files(self, vessel: str) -> list[str]:
        return list((await self.call(m.ListFilesInVessel(vessel=vessel)))["files"])

    async def delete_file(self, vessel: str, filename: str) -> None:
        await self.call(m.DeleteFileInVessel(vessel=vessel, filename=filename))

    async def read_log(self, vessel: str) -> bytes:
        """The kept tail (16 KiB) of the vessel's log."""
        return bytes((await self.call(m.ReadVesselLog(vessel=vessel)))["log"])

    async def read_log_since(self, vessel: str, since: int, run: str | None = None) -> LogChunk:
        """The kept log bytes from stream offset ``since`` on (pass back ``chunk.total`` and
        ``chunk.run``; ``chunk.restarted`` says the program was started again meanwhile)."""
        raw = await self.call(m.ReadVesselLog(vessel=vessel, since=since))
        data, start, total = raw.get("log"), raw.get("start"), raw.get("total")
        name = raw.get("run", "")
        if type(data) is not bytes or type(start) is not int or type(total) is not int:
            raise BadResponse("ReadVesselLog answer lacks log/start/total (node too old?)")
        if not 0 <= start <= total or start + len(data) != total:
            raise BadResponse("ReadVesselLog answer has inconsistent offsets")
        if type(name) is not str or len(name) > 64:
            raise BadResponse("ReadVesselLog answer has a bad run name")
        return LogChunk(data=data, start=start, total=total, since=since, run=name,
                        previous_run=run)

    async def change_owner(self, vessel: str, owner: PublicKey) -> None:
        await self.call(m.ChangeOwner(vessel=vessel, owner=owner))

    async def change_users(self, vessel: str, users: Sequence[PublicKey]) -> None:
        await self.call(m.ChangeUsers(vessel=vessel, users=tuple(users)))

    async def change_owner_info(self, vessel: str, info: str) -> None:
        await self.call(m.ChangeOwnerInformation(vessel=vessel, info=info))

    async def change_advertise(self, vessel: str, advertise: bool) -> None:
        await self.call(m.ChangeAdvertise(vessel=vessel, advertise=advertise))

    async def split_vessel(self, vessel: str, resources: ResourceTable | str) -> tuple[str, str]:
        text = resources if isinstance(resources, str) else resources.to_text()
        raw = await self.call(m.SplitVessel(vessel=vessel, resources=text))
        first, second = raw["vessels"]
        return str(first), str(second)

    # ---- the community pool (revision 8, docs/pool.md) ----

    async def acquire_vessel(self, vessel: str, credential: bytes, lease: float | None = None,
                             *, work: bytes | None = None, at: float | None = None) -> dict[str, Any]:
        """Lease pool vessel ``vessel`` with ``credential``; the answer has ``deadline``.

        ``work``: an open pool's proof of work, solved for the moment ``at`` (the consent's
        and the request's timestamp; default now)."""
        if self.identity is None:
            raise ClientError("AcquireVessel needs an identity key pair")
        if self.node_key is None:
            await self.get_vessels(sign=False)
        assert self.node_key is not None
        try:
            pool = read_credential(credential).pool
        except BadPoolRecord as exc:
            raise ClientError(f"not a pool credential: {exc}") from exc
        now = self._clock() if at is None else at
        consent = sign_consent(self.identity, pool, self.node_key, vessel, now)
        return await self.call(m.AcquireVessel(vessel=vessel, credential=credential,
                                               consent=consent, lease=lease, work=work),
                               timestamp=now)

    async def renew_lease(self, vessel: str, lease: float | None = None) -> dict[str, Any]:
        return await self.call(m.RenewLease(vessel=vessel, lease=lease), sign=True)

    async def release_vessel(self, vessel: str) -> None:
        await self.call(m.ReleaseVessel(vessel=vessel), sign=True)

    async def join_vessels(self, vessel1: str, vessel2: str) -> str:
        raw = await self.call(m.JoinVessels(vessel1=vessel1, vessel2=vessel2))
        return str(raw["vessel"])


@asynccontextmanager
async def open_node_client(
    host: str, port: int, *, identity: KeyPair | None = None,
    node_key: PublicKey | None = None, timeout: float = DEFAULT_TIMEOUT,
    sessions: bool | None = None,
) -> AsyncIterator[NodeClient]:
    """Connect to a node manager; the connection is closed when the block ends.

    ``sessions``: see ``NodeClient.sessions`` (protocol §18)."""
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise ConnectionFailed(f"cannot connect to {host}:{port}: {exc}") from exc
    client = NodeClient(stream, identity=identity, node_key=node_key, timeout=timeout,
                        sessions=sessions)
    try:
        yield client
    finally:
        await client.aclose()
