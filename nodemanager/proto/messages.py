"""The node manager's operations: one frozen dataclass per request, and its wire schema.

Each request class declares ``op`` (its wire name), ``right`` (who may call it: ``public``,
``user`` or ``owner``; docs/seattle.md, Rights) and ``mutates`` (whether it changes vessel state, so the
server serialises it). Arguments travel as a msgpack map with str keys; ``SCHEMAS`` gives each
argument's checker, which both validates values built locally (in ``__post_init__``) and
converts values decoded from the wire. ``REQUESTS`` maps ``(version, op)`` to the class.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from nodemanager.errors import BadArguments, UnknownOperation
from seattlecore import PublicKey

PROTOCOL_VERSION = 1
PROTOCOL_REVISION = 11
"""Compatible additions within version 1 (docs/protocol.md §8): 2 = incremental logs,
3 = GetVessels reports each vessel's program and arguments, ..., 7 = ``Batch``, 8 = the
community pool's AcquireVessel, RenewLease and ReleaseVessel (docs/pool.md), 9 = a vessel's
``paused`` (the donor's controls) and GetNodeStatus ``donor``, 10 = ``OpenSession`` (§18),
11 = AcquireVessel ``work`` for open pools and the pool status's revocations (§19)."""
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILENAME = 120
MAX_OWNER_INFO = 256
MAX_USERS = 64
MAX_ARGS = 64
TOKEN_BYTES = 16
MAX_ARG_CHARS = 1024
MAX_RESOURCE_TEXT = 16 * 1024
RESERVED_PREFIX = "private_"

Right = Literal["public", "user", "owner"]

FILENAME_RE = re.compile(r"[a-z0-9._-]{1,120}")
VESSEL_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_filename(value: object) -> str:
    """A Repy file name: ``[a-z0-9._-]``, 1..120 chars, not '.'/'..', no leading dot."""
    if type(value) is not str:
        raise BadArguments("filename must be a string")
    if not FILENAME_RE.fullmatch(value) or value.startswith("."):
        raise BadArguments(
            f"illegal filename {value[:130]!r}: 1-120 of a-z 0-9 . _ - with no leading dot"
        )
    if value.startswith(RESERVED_PREFIX):
        raise BadArguments(f"the {RESERVED_PREFIX!r} prefix is reserved")
    return value


def check_vessel(value: object) -> str:
    if type(value) is not str or not VESSEL_RE.fullmatch(value):
        raise BadArguments("vessel must be a name of 1-64 letters, digits, '_' or '-'")
    return value


def check_key(value: object) -> PublicKey:
    if isinstance(value, PublicKey):
        return value
    if type(value) is not bytes or len(value) != 32:
        raise BadArguments("a public key is 32 raw bytes")
    return PublicKey(value)


def check_token(value: object) -> bytes:
    if type(value) is not bytes or len(value) != TOKEN_BYTES:
        raise BadArguments(f"token must be {TOKEN_BYTES} raw bytes")
    return value


def check_keys(value: object) -> tuple[PublicKey, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_USERS:
        raise BadArguments(f"users must be a list of at most {MAX_USERS} keys")
    keys = tuple(check_key(item) for item in value)
    return tuple(dict.fromkeys(keys))


def check_program(value: object) -> str:
    name = check_filename(value)
    return name


def check_args(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_ARGS:
        raise BadArguments(f"args must be a list of at most {MAX_ARGS} strings")
    for item in value:
        if type(item) is not str or len(item) > MAX_ARG_CHARS or "\x00" in item:
            raise BadArguments(f"each arg must be a string of at most {MAX_ARG_CHARS} chars")
    return tuple(value)


def check_data(value: object) -> bytes:
    if type(value) is not bytes:
        raise BadArguments("data must be bytes")
    if len(value) > MAX_FILE_BYTES:
        raise BadArguments(f"data is larger than {MAX_FILE_BYTES} bytes")
    return value


CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
"""Characters refused in text that is shown to people: C0/C1 controls (terminal escapes,
newlines), line/paragraph separators and bidirectional overrides (spoofed display order)."""


def check_owner_info(value: object) -> str:
    if type(value) is not str or len(value) > MAX_OWNER_INFO:
        raise BadArguments(f"owner info must be a string of at most {MAX_OWNER_INFO} chars")
    bad = CONTROL_RE.search(value)
    if bad is not None:
        raise BadArguments(
            f"owner info may not contain control characters (found U+{ord(bad.group()):04X})")
    return value


def check_bool(value: object) -> bool:
    if type(value) is not bool:
        raise BadArguments("expected a boolean")
    return value


def check_offset(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value < 1 << 63:
        raise BadArguments("since must be a non-negative integer (a log stream offset)")
    return value


def check_resource_text(value: object) -> str:
    if type(value) is not str or len(value) > MAX_RESOURCE_TEXT:
        raise BadArguments(f"resources must be resource-file text of at most {MAX_RESOURCE_TEXT}")
    return value


Checker = Callable[[object], Any]


def dump_value(value: object) -> object:
    """The wire form of an argument value (keys as raw bytes, tuples as lists, the calls of
    a batch as ``{"op", "args"}`` maps)."""
    if isinstance(value, Request):
        return {"op": value.op, "args": value.to_args()}
    if isinstance(value, PublicKey):
        return value.raw
    if isinstance(value, tuple):
        return [dump_value(item) for item in value]
    return value


class Request:
    """Base of all request dataclasses (a marker; see ``REQUESTS``)."""

    op: ClassVar[str]
    right: ClassVar[Right]
    mutates: ClassVar[bool] = False
    __slots__ = ()

    def __post_init__(self) -> None:
        for name, checker in SCHEMAS[type(self)].items():
            object.__setattr__(self, name, checker(getattr(self, name)))

    def to_args(self) -> dict[str, object]:
        """The argument map as sent on the wire."""
        optional = OPTIONAL.get(type(self), frozenset())
        return {name: dump_value(getattr(self, name)) for name in SCHEMAS[type(self)]
                if not (name in optional and getattr(self, name) is None)}

    @property
    def vessels(self) -> tuple[str, ...]:
        """Vessels this request acts on (for authorization); empty for node-wide calls."""
        return ()


class VesselRequest(Request):
    """A request whose first argument is the vessel it acts on."""

    __slots__ = ()
    vessel: str

    @property
    def vessels(self) -> tuple[str, ...]:
        return (self.vessel,)




@dataclass(frozen=True, slots=True, kw_only=True)
class GetVessels(Request):
    """Node identity and every vessel's status, keys and flags (Seattle's hello)."""

    op: ClassVar[str] = "GetVessels"
    right: ClassVar[Right] = "public"


@dataclass(frozen=True, slots=True, kw_only=True)
class GetVesselResources(VesselRequest):
    """The resource table of one vessel."""

    op: ClassVar[str] = "GetVesselResources"
    right: ClassVar[Right] = "public"
    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GetOffcutResources(Request):
    """The offcut table (management overhead paid per split) and how many are held."""

    op: ClassVar[str] = "GetOffcutResources"
    right: ClassVar[Right] = "public"


@dataclass(frozen=True, slots=True, kw_only=True)
class GetNodeStatus(Request):
    """Version, uptime, vessel counts and load, for operators and installers."""

    op: ClassVar[str] = "GetNodeStatus"
    right: ClassVar[Right] = "public"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialBack(Request):
    """A peer's reachability test reached this port: ``token`` is the node's own nonce
    (docs/protocol.md section 13); the node notes it and answers an empty result."""

    op: ClassVar[str] = "DialBack"
    right: ClassVar[Right] = "public"
    token: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StartVessel(VesselRequest):
    """Run ``program`` (a file already in the vessel) with ``args`` in the sandbox."""

    op: ClassVar[str] = "StartVessel"
    right: ClassVar[Right] = "user"
    mutates: ClassVar[bool] = True
    vessel: str
    program: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StopVessel(VesselRequest):
    """Kill the vessel's program; status becomes Stopped."""

    op: ClassVar[str] = "StopVessel"
    right: ClassVar[Right] = "user"
    mutates: ClassVar[bool] = True
    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetVessel(VesselRequest):
    """Stop if running, delete files and log; status becomes Fresh."""

    op: ClassVar[str] = "ResetVessel"
    right: ClassVar[Right] = "user"
    mutates: ClassVar[bool] = True
    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddFileToVessel(VesselRequest):
    """Create or overwrite one file (atomically), within the vessel's ``diskused``."""

    op: ClassVar[str] = "AddFileToVessel"
    right: ClassVar[Right] = "user"
    mutates: ClassVar[bool] = True
    vessel: str
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveFileFromVessel(VesselRequest):
    """The bytes of one file."""

    op: ClassVar[str] = "RetrieveFileFromVessel"
    right: ClassVar[Right] = "user"
    vessel: str
    filename: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilesInVessel(VesselRequest):
    """Sorted file names (``private_*`` hidden)."""

    op: ClassVar[str] = "ListFilesInVessel"
    right: ClassVar[Right] = "user"
    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteFileInVessel(VesselRequest):
    """Remove one file."""

    op: ClassVar[str] = "DeleteFileInVessel"
    right: ClassVar[Right] = "user"
    mutates: ClassVar[bool] = True
    vessel: str
    filename: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadVesselLog(VesselRequest):
    """The program's log: the kept tail, or the kept bytes from stream offset ``since`` on."""

    op: ClassVar[str] = "ReadVesselLog"
    right: ClassVar[Right] = "user"
    vessel: str
    since: int | None = None
    """Stream offset to read from (the ``total`` of the previous answer); None: the tail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeOwner(VesselRequest):
    """New owner key; clears owner info and sets advertise (Seattle's behaviour)."""

    op: ClassVar[str] = "ChangeOwner"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel: str
    owner: PublicKey


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeUsers(VesselRequest):
    """Replace the user key list (duplicates dropped, order kept)."""

    op: ClassVar[str] = "ChangeUsers"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel: str
    users: tuple[PublicKey, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeOwnerInformation(VesselRequest):
    """Set the free-text owner information (at most 256 chars, no control characters)."""

    op: ClassVar[str] = "ChangeOwnerInformation"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel: str
    info: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAdvertise(VesselRequest):
    """Turn advertising of this vessel in the overlay on or off."""

    op: ClassVar[str] = "ChangeAdvertise"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel: str
    advertise: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitVessel(VesselRequest):
    """Cut ``resources`` out of the vessel: two new vessels (leftover, requested)."""

    op: ClassVar[str] = "SplitVessel"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel: str
    resources: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinVessels(Request):
    """Merge two vessels of the same owner into one new vessel (``r1 + r2 + offcut``)."""

    op: ClassVar[str] = "JoinVessels"
    right: ClassVar[Right] = "owner"
    mutates: ClassVar[bool] = True
    vessel1: str
    vessel2: str

    @property
    def vessels(self) -> tuple[str, ...]:
        return (self.vessel1, self.vessel2)


# ---- revision 8: the community pool (docs/pool.md) ----

MAX_CREDENTIAL = 512
MAX_WORK = 16
MAX_LEASE_SECONDS = 7 * 86400.0


def check_credential_blob(value: object) -> bytes:
    if type(value) is not bytes or not 0 < len(value) <= MAX_CREDENTIAL:
        raise BadArguments(f"credential must be 1-{MAX_CREDENTIAL} bytes")
    return value


def check_signature(value: object) -> bytes:
    if type(value) is not bytes or len(value) != 64:
        raise BadArguments("consent must be a 64-byte signature")
    return value


def check_work(value: object) -> bytes | None:
    if value is None:
        return None
    if type(value) is not bytes or not 0 < len(value) <= MAX_WORK:
        raise BadArguments(f"work must be 1-{MAX_WORK} bytes")
    return value


def check_lease(value: object) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 < value <= MAX_LEASE_SECONDS:  # type: ignore[operator]
        raise BadArguments(f"lease must be seconds in (0, {MAX_LEASE_SECONDS:.0f}]")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class AcquireVessel(VesselRequest):
    """Lease a free pool vessel: the signer becomes its user until the lease's deadline.

    ``credential`` is the planner's membership credential, ``consent`` the signer's
    signature over (pool, node, vessel, the request's timestamp); ``lease`` asks for a
    shorter first lease than the pool's default (seconds)."""

    op: ClassVar[str] = "AcquireVessel"
    right: ClassVar[Right] = "public"
    mutates: ClassVar[bool] = True
    vessel: str
    credential: bytes
    consent: bytes
    lease: float | None = None
    work: bytes | None = None
    """Revision 11: an open pool's proof of work (docs/pool.md, Open pool)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewLease(VesselRequest):
    """Move the lessee's deadline to now + ``lease`` (default: the pool's lease), capped at
    the pool's longest lease counted from the acquisition."""

    op: ClassVar[str] = "RenewLease"
    right: ClassVar[Right] = "public"
    mutates: ClassVar[bool] = True
    vessel: str
    lease: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseVessel(VesselRequest):
    """End the lessee's lease now: stop, wipe files and log, remove the user, free it."""

    op: ClassVar[str] = "ReleaseVessel"
    right: ClassVar[Right] = "public"
    mutates: ClassVar[bool] = True
    vessel: str


POOL_REQUESTS: tuple[type[Request], ...] = (AcquireVessel, RenewLease, ReleaseVessel)


SCHEMAS: dict[type[Request], dict[str, Checker]] = {
    GetVessels: {},
    GetVesselResources: {"vessel": check_vessel},
    GetOffcutResources: {},
    GetNodeStatus: {},
    DialBack: {"token": check_token},
    StartVessel: {"vessel": check_vessel, "program": check_program, "args": check_args},
    StopVessel: {"vessel": check_vessel},
    ResetVessel: {"vessel": check_vessel},
    AddFileToVessel: {"vessel": check_vessel, "filename": check_filename, "data": check_data},
    RetrieveFileFromVessel: {"vessel": check_vessel, "filename": check_filename},
    ListFilesInVessel: {"vessel": check_vessel},
    DeleteFileInVessel: {"vessel": check_vessel, "filename": check_filename},
    ReadVesselLog: {"vessel": check_vessel, "since": check_offset},
    ChangeOwner: {"vessel": check_vessel, "owner": check_key},
    ChangeUsers: {"vessel": check_vessel, "users": check_keys},
    ChangeOwnerInformation: {"vessel": check_vessel, "info": check_owner_info},
    ChangeAdvertise: {"vessel": check_vessel, "advertise": check_bool},
    SplitVessel: {"vessel": check_vessel, "resources": check_resource_text},
    JoinVessels: {"vessel1": check_vessel, "vessel2": check_vessel},
    AcquireVessel: {"vessel": check_vessel, "credential": check_credential_blob,
                    "consent": check_signature, "lease": check_lease, "work": check_work},
    RenewLease: {"vessel": check_vessel, "lease": check_lease},
    ReleaseVessel: {"vessel": check_vessel},
}
"""Each request class's arguments, in wire order, with their checkers."""

OPTIONAL: dict[type[Request], frozenset[str]] = {
    StartVessel: frozenset({"args"}), ReadVesselLog: frozenset({"since"}),
    AcquireVessel: frozenset({"lease", "work"}), RenewLease: frozenset({"lease"}),
}
"""Arguments that may be left out on the wire (they take the dataclass default)."""

REQUESTS: dict[tuple[int, str], type[Request]] = {
    (PROTOCOL_VERSION, cls.op): cls for cls in SCHEMAS
}
"""Decoder table: (protocol version, operation name) -> request class."""


def decode_request(version: int, op: str, args: object) -> Request:
    """Build the request for ``op`` from a wire argument map; raise BadArguments if ill-typed."""
    cls = REQUESTS.get((version, op))
    if cls is None:
        raise UnknownOperation(f"unknown operation {op[:64]!r}")
    if not isinstance(args, Mapping):
        raise BadArguments("args must be a map")
    schema = SCHEMAS[cls]
    unknown = set(args) - set(schema)
    if unknown:
        raise BadArguments(f"{op}: unexpected argument(s) {sorted(map(str, unknown))[:8]}")
    missing = set(schema) - set(args) - OPTIONAL.get(cls, frozenset())
    if missing:
        raise BadArguments(f"{op}: missing argument(s) {sorted(missing)}")
    try:
        return cls(**{str(name): value for name, value in args.items()})
    except TypeError as exc:  # pragma: no cover - guarded by the key checks above
        raise BadArguments(f"{op}: {exc}") from exc


# ---- revision 7: Batch, several calls on vessels of one node under one signature ----------
# (docs/protocol.md §16; issue 27). Kept apart from the table above so later revisions can
# add their own blocks.

MAX_BATCH_CALLS = 64
"""Calls in one Batch at most."""


def batchable(cls: type[Request]) -> bool:
    """Operations a Batch may carry: those that act on named vessels."""
    return issubclass(cls, VesselRequest) or cls is JoinVessels


def _batch_call(index: int, item: object) -> Request:
    if isinstance(item, Request):
        if not batchable(type(item)):
            raise BadArguments(f"call {index}: {item.op} cannot be batched")
        return item
    if not isinstance(item, Mapping) or set(item) != {"op", "args"}:
        raise BadArguments(f"call {index}: each call is a map with exactly 'op' and 'args'")
    op, args = item["op"], item["args"]
    if type(op) is not str or len(op) > 64:
        raise BadArguments(f"call {index}: op must be a short string")
    cls = REQUESTS.get((PROTOCOL_VERSION, op))
    if cls is None or not batchable(cls):
        raise BadArguments(f"call {index}: {op[:64]!r} cannot be batched "
                           "(only operations on named vessels)")
    try:
        return decode_request(PROTOCOL_VERSION, op, args)
    except BadArguments as exc:
        raise BadArguments(f"call {index}: {exc}") from exc


def check_calls(value: object) -> tuple[Request, ...]:
    """1..MAX_BATCH_CALLS calls, each an operation on named vessels (no nested batches)."""
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_BATCH_CALLS:
        raise BadArguments(f"calls must be a list of 1 to {MAX_BATCH_CALLS} calls")
    return tuple(_batch_call(index, item) for index, item in enumerate(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch(Request):
    """Several calls on vessels of this node, signed once (revision 7).

    The node checks the batch as one request (signature, window, nonce: consumed once the
    batch is accepted), then carries the calls out in order, each checked exactly as if it
    had come alone (its vessel, the requester's right on it, its preconditions), and
    answers ``{"results": [{"ok", "result", "error"}, ...]}``, one entry per call.
    """

    op: ClassVar[str] = "Batch"
    right: ClassVar[Right] = "user"
    """Must be signed; the rights are checked per call."""
    calls: tuple[Request, ...]


SCHEMAS[Batch] = {"calls": check_calls}
REQUESTS[(PROTOCOL_VERSION, Batch.op)] = Batch


# ---- revision 10: OpenSession, one signed handshake per connection, then MACs -------------
# (docs/protocol.md §18; issue 27).

EPHEMERAL_BYTES = 32


def check_ephemeral(value: object) -> bytes:
    if type(value) is not bytes or len(value) != EPHEMERAL_BYTES:
        raise BadArguments(f"eph must be an X25519 public key of {EPHEMERAL_BYTES} raw bytes")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenSession(Request):
    """Open a session on this connection with ephemeral X25519 key ``eph`` (revision 10).

    Must be signed; the session speaks for the signer only, and every request on it is
    checked against the signer's rights exactly as a signed request would be.
    """

    op: ClassVar[str] = "OpenSession"
    right: ClassVar[Right] = "user"
    """Must be signed; rights are checked per request of the session."""
    eph: bytes


SCHEMAS[OpenSession] = {"eph": check_ephemeral}
REQUESTS[(PROTOCOL_VERSION, OpenSession.op)] = OpenSession
