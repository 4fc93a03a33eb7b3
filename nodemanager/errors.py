"""Errors of the node manager, on both sides of the wire.

    NodeManagerError
    ├── RequestError              the node refused a request (wire-visible, has ``code``)
    │   ├── BadFrame              frame not msgpack / not an envelope           "BadFrame"
    │   ├── FrameTooLarge         length prefix above the maximum               "FrameTooLarge"
    │   ├── UnsupportedVersion    protocol version not spoken                   "UnsupportedVersion"
    │   ├── UnknownOperation      operation name not in the call table          "UnknownOperation"
    │   ├── BadArguments          arguments missing, extra or ill-typed         "BadArguments"
    │   ├── SignatureRequired     a non-public call came unsigned               "SignatureRequired"
    │   ├── BadSignature          signature does not verify                     "BadSignature"
    │   ├── WrongNode             request addressed to another node key         "WrongNode"
    │   ├── OutsideTimeWindow     timestamp too far from the node's clock       "OutsideTimeWindow"
    │   ├── ReplayedNonce         nonce already seen                            "ReplayedNonce"
    │   ├── Forbidden             requester lacks the right on the vessel       "Forbidden"
    │   ├── NoSuchVessel          vessel name unknown                           "NoSuchVessel"
    │   ├── VesselBusy            vessel is running (start, split, join)        "VesselBusy"
    │   ├── VesselNotRunning      stop on a vessel that runs nothing            "VesselNotRunning"
    │   ├── FileNotFound          no such file in the vessel                    "FileNotFound"
    │   ├── FileTooLarge          file above the transfer limit                 "FileTooLarge"
    │   ├── DiskQuotaExceeded     upload would exceed the vessel's diskused     "DiskQuotaExceeded"
    │   ├── HostStorageFull       the donor's disk is full (nothing was changed) "HostStorageFull"
    │   ├── BadResources          resource text unparsable or split too large   "BadResources"
    │   ├── StartFailed           the sandbox could not start the program       "StartFailed"
    │   │   └── CompileFailed     the program does not compile (errors listed)  "CompileFailed"
    │   ├── Overloaded            too many connections                          "Overloaded"
    │   ├── BatchFull             a batch's answer was full: call not carried out "BatchFull"
    │   ├── BadSession            session frame forged, replayed or out of order "BadSession"
    │   ├── PoolError             a pool request refused (docs/pool.md)          (base)
    │   │   ├── BadCredential     forged, other-pool, not-yet-valid credential  "BadCredential"
    │   │   ├── CredentialExpired credential past its expiry                    "CredentialExpired"
    │   │   ├── CredentialRevoked credential serial on the pool's revocations   "CredentialRevoked"
    │   │   ├── QuotaReached      the member holds their quota in the pool      "QuotaReached"
    │   │   ├── VesselTaken       the pool vessel is leased (or being leased)   "VesselTaken"
    │   │   ├── NotInPool         the vessel is not a pool vessel               "NotInPool"
    │   │   ├── LeaseLimit        renewal past the pool's longest lease         "LeaseLimit"
    │   │   └── InsufficientWork  open pool: no, wrong, reused or too cheap work "InsufficientWork"
    │   └── InternalError         anything unexpected (logged, not detailed)    "InternalError"
    ├── BadPoolRecord             a credential file, pool tag or lease record is malformed
    ├── ClientError               local misuse of the client API (bad arguments)
    ├── ResponseError             the node's answer is unusable
    │   ├── BadResponse           not a valid signed response / wrong node / wrong nonce
    │   └── ConnectionFailed      cannot connect, connection lost or timed out
    └── UpdateError               a software update could not be found, verified or staged
        └── MirrorError           a peer's update mirror misbehaved or could not be reached

Wire-visible errors are turned into error responses in one place (``server.py``); the
client turns them back into the same classes with ``error_for_code``.
"""

from __future__ import annotations

from typing import ClassVar


class NodeManagerError(Exception):
    """Base class of every error raised by the node manager package."""


class RequestError(NodeManagerError):
    """Raised when the node refuses a request; ``code`` names the reason on the wire."""

    code: ClassVar[str] = "InternalError"


class BadFrame(RequestError):
    """Raised when a frame is not a well-formed msgpack envelope."""

    code = "BadFrame"


class FrameTooLarge(RequestError):
    """Raised when a frame's length prefix exceeds the maximum frame size."""

    code = "FrameTooLarge"


class UnsupportedVersion(RequestError):
    """Raised when a request's protocol version is not supported."""

    code = "UnsupportedVersion"


class UnknownOperation(RequestError):
    """Raised when a request names an operation that does not exist."""

    code = "UnknownOperation"


class BadArguments(RequestError):
    """Raised when a request's arguments are missing, unexpected or of the wrong type."""

    code = "BadArguments"


class SignatureRequired(RequestError):
    """Raised when a non-public operation arrives without a signature."""

    code = "SignatureRequired"


class BadSignature(RequestError):
    """Raised when a request's signature does not verify against its requester key."""

    code = "BadSignature"


class WrongNode(RequestError):
    """Raised when a request is addressed to a different node key."""

    code = "WrongNode"


class OutsideTimeWindow(RequestError):
    """Raised when a request's timestamp is too far from the node's clock."""

    code = "OutsideTimeWindow"


class ReplayedNonce(RequestError):
    """Raised when a signed request reuses a nonce the node has already accepted."""

    code = "ReplayedNonce"


class Forbidden(RequestError):
    """Raised when the requester is neither the owner nor (for user calls) a user."""

    code = "Forbidden"


class NoSuchVessel(RequestError):
    """Raised when a request names a vessel this node does not have."""

    code = "NoSuchVessel"


class VesselBusy(RequestError):
    """Raised when an operation needs a vessel that is not running, and it is."""

    code = "VesselBusy"


class VesselNotRunning(RequestError):
    """Raised when StopVessel targets a vessel that runs nothing."""

    code = "VesselNotRunning"


class FileNotFound(RequestError):
    """Raised when a vessel file does not exist."""

    code = "FileNotFound"


class FileTooLarge(RequestError):
    """Raised when a file is larger than the per-transfer limit."""

    code = "FileTooLarge"


class DiskQuotaExceeded(RequestError):
    """Raised when an upload would take the vessel's disk use above ``diskused``."""

    code = "DiskQuotaExceeded"


class HostStorageFull(RequestError):
    """Raised when the donor machine's disk cannot take a write; the old state is kept."""

    code = "HostStorageFull"


class BadResources(RequestError):
    """Raised when resource text is malformed or a split/join is impossible."""

    code = "BadResources"


class StartFailed(RequestError):
    """Raised when the sandbox cannot start a vessel's program."""

    code = "StartFailed"


class CompileFailed(StartFailed):
    """The program does not compile under the sandbox policy (errors in the message)."""

    code = "CompileFailed"


class Overloaded(RequestError):
    """Raised when the node has too many open connections."""

    code = "Overloaded"


class BatchFull(RequestError):
    """A call of a Batch was not carried out: the batch's answer had no room left (send it
    again, in a later batch or alone; docs/protocol.md §16)."""

    code = "BatchFull"


class BadSession(RequestError):
    """Raised when a session frame (protocol §18) has no session, a tag that does not verify,
    a counter that is not the next one, or names another requester; the node then closes
    the connection."""

    code = "BadSession"


class InternalError(RequestError):
    """Raised (and sent) when handling failed unexpectedly; details stay in the node log."""

    code = "InternalError"


# ---- the community pool (docs/pool.md) ----

class PoolError(RequestError):
    """Raised when a pool request (AcquireVessel, RenewLease, ReleaseVessel) is refused."""

    code = "PoolError"


class BadCredential(PoolError):
    """Raised for a credential that is forged, of another pool or researcher, or malformed."""

    code = "BadCredential"


class CredentialExpired(PoolError):
    """Raised for a credential past its expiry."""

    code = "CredentialExpired"


class CredentialRevoked(PoolError):
    """Raised for a credential the pool's planner revoked."""

    code = "CredentialRevoked"


class QuotaReached(PoolError):
    """Raised when the member already holds their credential's number of leases."""

    code = "QuotaReached"


class VesselTaken(PoolError):
    """Raised when the pool vessel is leased (or being leased) by someone else."""

    code = "VesselTaken"


class NotInPool(PoolError):
    """Raised when the named vessel is not a pool vessel of this node."""

    code = "NotInPool"


class LeaseLimit(PoolError):
    """Raised when a renewal would take a lease past the pool's longest lease."""

    code = "LeaseLimit"


class InsufficientWork(PoolError):
    """Raised when an open pool's acquisition lacks its proof of work, or it is too cheap,
    wrong or used already."""

    code = "InsufficientWork"


class BadPoolRecord(NodeManagerError):
    """Raised when a credential, a pool advert's tag or a lease record cannot be decoded."""


class ClientError(NodeManagerError):
    """Raised when the client API is misused locally (bad arguments, no identity)."""


class ResponseError(NodeManagerError):
    """Raised when a node's answer cannot be used."""


class BadResponse(ResponseError):
    """Raised when a response is malformed, unsigned by the expected node, or not ours."""


class ConnectionFailed(ResponseError):
    """Raised when the connection cannot be made, breaks, or times out."""


REQUEST_ERRORS: tuple[type[RequestError], ...] = (
    BadFrame, FrameTooLarge, UnsupportedVersion, UnknownOperation, BadArguments,
    SignatureRequired, BadSignature, WrongNode, OutsideTimeWindow, ReplayedNonce, Forbidden,
    NoSuchVessel, VesselBusy, VesselNotRunning, FileNotFound, FileTooLarge, DiskQuotaExceeded,
    HostStorageFull,
    BadResources, StartFailed, CompileFailed, Overloaded, InternalError, BatchFull, BadSession,
    PoolError, BadCredential, CredentialExpired, CredentialRevoked, QuotaReached, VesselTaken,
    NotInPool, LeaseLimit, InsufficientWork,
)
ERRORS_BY_CODE: dict[str, type[RequestError]] = {cls.code: cls for cls in REQUEST_ERRORS}


def error_for_code(code: str, message: str) -> RequestError:
    """The exception a client raises for an error response (unknown codes -> RequestError)."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        error = RequestError(f"{code}: {message}")
        return error
    return cls(message)


class UpdateError(NodeManagerError):
    """Raised when a software update cannot be found, verified or staged (updater.py)."""


class MirrorError(UpdateError):
    """Raised when a peer's update mirror is unreachable, slow, or answers out of protocol."""
