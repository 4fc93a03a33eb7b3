"""The node's data model (pure): vessels, the view a handler decides on, changes and effects.

``api.handle`` reads a ``NodeView`` and returns an ``Outcome``: a ``Change`` that the server
commits in one SQLite transaction (together with the request's nonce), then ``effects`` that
the server performs (files, programs, re-announcement). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from nodemanager.node.admission import PortLimits, PortStats
from sandbox import ResourceTable
from seattlecore import PublicKey

Status = Literal["Fresh", "Started", "Stopped", "Terminated"]
STATUSES: tuple[Status, ...] = ("Fresh", "Started", "Stopped", "Terminated")



@dataclass(frozen=True, slots=True, kw_only=True)
class Vessel:
    """One vessel as persisted: keys, flags, resources and last known status."""

    name: str
    owner: PublicKey
    users: tuple[PublicKey, ...] = ()
    owner_info: str = ""
    advertise: bool = True
    resources: ResourceTable
    status: Status = "Fresh"
    exit_reason: str | None = None
    exit_code: int | None = None

    def may_use(self, key: PublicKey | None) -> bool:
        """True for the owner and the users (Seattle's user calls)."""
        return key is not None and (key == self.owner or key in self.users)


@dataclass(frozen=True, slots=True, kw_only=True)
class Live:
    """What the sandbox supervisor currently says about a vessel's program."""

    status: Status
    exit_reason: str | None = None
    exit_code: int | None = None
    usage: Mapping[str, float] = field(default_factory=dict)
    paused: str | None = None
    """Why the donor's side paused the program (manual, battery, schedule, busy), or None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """Everything a handler may read."""

    node: PublicKey
    version: str
    vessels: Mapping[str, Vessel]
    live: Mapping[str, Live]
    """Supervisor reports for vessels it knows about (absent: use the persisted status)."""
    offcut: ResourceTable
    offcuts_held: int
    next_index: int
    started_at: float
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    updates: Mapping[str, object] | None = None
    """The updater's status (running/latest verified version, last check), if it runs."""
    extras: Mapping[str, object] = field(default_factory=dict)
    """More GetNodeStatus entries (``relay``, ``relayed``), added as they are."""
    programs: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """The program and arguments last started in each vessel since the daemon started."""
    port_limits: PortLimits | None = None
    """The limits the port enforces (None where no port is served, e.g. unit tests)."""
    port_stats: PortStats | None = None
    reachability: Mapping[str, object] | None = None
    """What the node knows about its reachability (nodemanager/nat/reachability.py)."""

    def status_of(self, name: str) -> Live:
        report = self.live.get(name)
        if report is not None and report.status != "Fresh":
            return report
        vessel = self.vessels[name]
        return Live(status=vessel.status, exit_reason=vessel.exit_reason,
                    exit_code=vessel.exit_code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A state change, committed atomically: upsert ``put``, remove ``delete``, counters."""

    put: tuple[Vessel, ...] = ()
    delete: tuple[str, ...] = ()
    next_index: int | None = None
    offcuts_held: int | None = None


# ---- effects: performed by the server after the change is committed, in order ----

@dataclass(frozen=True, slots=True, kw_only=True)
class StartProgram:
    """Start ``program`` in the vessel under its resource table."""

    vessel: str
    program: str
    args: tuple[str, ...]
    resources: ResourceTable


@dataclass(frozen=True, slots=True, kw_only=True)
class StopProgram:
    """Kill the vessel's program."""

    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WipeVessel:
    """Stop the program if any, delete every non-private file and the log (ResetVessel)."""

    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DestroyVessel:
    """Stop the program if any and remove the vessel's directory and log (split/join)."""

    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateVessel:
    """Create the (empty) directory of a new vessel."""

    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteFile:
    """Atomically write a file, refusing it if disk use would exceed ``quota``."""

    vessel: str
    filename: str
    data: bytes
    quota: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadFile:
    """Return ``{"data": bytes}``."""

    vessel: str
    filename: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFiles:
    """Return ``{"files": [names]}`` (private files hidden)."""

    vessel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteFile:
    """Remove a file."""

    vessel: str
    filename: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLog:
    """Return ``{"log": bytes, "total": int, "start": int}`` (see ``ReadVesselLog``)."""

    vessel: str
    since: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reannounce:
    """Advertised (vessel, key) pairs may have changed: re-announce now."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteDialBack:
    """A reachability test's token reached the port: hand it to the prober."""

    token: bytes


Effect = (
    StartProgram | StopProgram | WipeVessel | DestroyVessel | CreateVessel | WriteFile
    | ReadFile | ListFiles | DeleteFile | ReadLog | Reannounce | NoteDialBack
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A handler's decision: the result map, the state change and the effects."""

    result: Mapping[str, object] = field(default_factory=dict)
    change: Change | None = None
    effects: tuple[Effect, ...] = ()
