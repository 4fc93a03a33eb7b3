"""The experiment API's values and decisions (pure): vessels, how a program ended, and
the status events a watcher reports.

A ``Vessel`` names one vessel (``host:port:name``, its node's key once known). Every
operation on many vessels answers with one ``NodeResult`` per vessel (seash's own result
type): ``ok`` with a value, ``failed`` with the reason seash prints, or ``timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nodemanager import VesselInfo
from seash.client import Job, NodeResult, Status
from seash.errors import SeashError
from seattlecore import PublicKey


class ExperimentError(SeashError):
    """Raised by the experiment API for a whole call gone wrong (no identity, no vessels,
    DHT unreachable); one vessel's failure is a failed ``NodeResult``, never raised."""


@dataclass(frozen=True, slots=True)
class Vessel:
    """One vessel: its node's address, its name there and (once known) the node's key."""

    host: str
    port: int
    name: str
    node_key: PublicKey | None = None

    @property
    def address(self) -> str:
        """``host:port:name``: the ``target`` of this vessel's results."""
        return f"{self.host}:{self.port}:{self.name}"

    @property
    def node(self) -> tuple[str, int]:
        return self.host, self.port

    def job(self, deadline: float | None = None) -> Job:
        """The fan-out job addressing this vessel."""
        return Job(self.address, self.host, self.port, self.name, self.node_key, deadline)


def program_text(info: VesselInfo) -> str:
    """``hello.py world`` for a vessel's last started program and arguments ("" for none)."""
    return " ".join([info.program, *info.args]) if info.program else ""


def running(info: VesselInfo) -> bool:
    """Its program runs and is not frozen by its donor."""
    return info.status == "Started" and not info.paused


def ending(result: NodeResult, limit: float | None = None) -> NodeResult:
    """How one vessel's program ended, from its status (a ``VesselInfo`` result), as the
    result ``wait`` gives: ok (ended well, nothing started, or paused by its donor), failed
    (an error exit or a kill, with its reason) or timeout (still running at the deadline)."""
    if not result.ok:
        return result
    info: VesselInfo = result.value
    what = program_text(info) or "program"
    if info.status == "Started" and info.paused:  # frozen by its donor: not a failure
        return _as(result, "ok", value=f"{what}: paused by its donor ({info.paused}); "
                                      "it goes on when the donor's machine allows")
    if info.status == "Started":
        after = f" after {limit:g} s" if limit is not None else ""
        return _as(result, "timeout", error=f"{what} still runs{after}")
    if info.status == "Terminated" and info.exit_code != 0:
        reason = info.exit_reason or f"exit code {info.exit_code}"
        return _as(result, "failed", error=f"{what} failed: {reason}")
    if info.status == "Fresh":
        return _as(result, "ok", value="nothing started")
    return _as(result, "ok", value=f"{what}: {info.status}")


def _as(result: NodeResult, status: Status, *, value: str | None = None,
        error: str | None = None) -> NodeResult:
    return NodeResult(result.target, result.address, status, value=value, error=error,
                      elapsed=result.elapsed, path=result.path)


EventKind = Literal["started", "ended", "failed", "unreachable", "paused"]
EVENT_KINDS: tuple[EventKind, ...] = ("started", "ended", "failed", "unreachable", "paused")


@dataclass(frozen=True, slots=True)
class Event:
    """A change of one vessel seen by the status watcher."""

    kind: EventKind
    vessel: Vessel
    info: VesselInfo | None
    """The vessel's status when the change was seen (None for ``unreachable``)."""
    reason: str = ""
    """Why: the exit reason of ``failed``, the error of ``unreachable``, the donor's reason
    of ``paused``."""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the watcher last saw of a vessel: its status, or that it did not answer."""

    info: VesselInfo | None
    error: str | None = None


def changes(vessel: Vessel, before: Seen | None, now: Seen) -> list[Event]:
    """The events between two observations of ``vessel`` (pure). The first observation is
    compared with a reachable vessel that runs nothing, so a program found running is
    ``started`` and one found ended is ``ended``/``failed``."""
    if now.info is None:
        if before is not None and before.info is None:
            return []
        return [Event("unreachable", vessel, None, now.error or "no answer")]
    info = now.info
    old = before.info if before is not None else None
    events: list[Event] = []
    was_started = old is not None and old.status == "Started"
    same_run = was_started and old is not None and (old.program, old.args) == (info.program, info.args)
    if info.status == "Started" and not same_run:
        events.append(Event("started", vessel, info))
    if info.status == "Started" and info.paused and (old is None or not old.paused or not same_run):
        events.append(Event("paused", vessel, info, info.paused))
    if info.status in ("Terminated", "Stopped") and (old is None or old.status == "Started"
                                                     or old.status == "Fresh"):
        if info.status == "Terminated" and info.exit_code != 0:
            events.append(Event("failed", vessel, info,
                                info.exit_reason or f"exit code {info.exit_code}"))
        else:
            events.append(Event("ended", vessel, info, info.exit_reason or info.status))
    return events
