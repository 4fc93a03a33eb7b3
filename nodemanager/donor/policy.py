"""The donor's policy (pure): when vessels run, pause, and how much CPU they get.

``decide(policy, state, now, readings)`` takes the time (an aware or local ``datetime``)
and what the shell measured (``Readings``: other programs' CPU use, battery, input idle
time) and returns a ``Decision`` (pause and why, or run at a fraction of the share) with
the next ``PolicyState`` (the hysteresis). Reasons, strongest first: ``manual`` (the
donor's pause, possibly with an end), ``battery``, ``schedule``, ``busy``.

The busy rule has hysteresis so vessels do not flap: vessels pause once other programs
used more than ``busy_above`` % of the machine for ``busy_for`` seconds, and run again only
after ``resume_after`` seconds below ``busy_below`` %.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from nodemanager.errors import NodeManagerError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REASONS = ("manual", "battery", "schedule", "busy")
_WINDOW = re.compile(
    r"(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<h1>\d{1,2}):(?P<m1>\d{2})-(?P<h2>\d{1,2}):(?P<m2>\d{2})"
    r"(?:\s+off)?")


class PolicyError(NodeManagerError):
    """A donor policy value or schedule line that does not parse (the message says which)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly window when vessels may not run: ``days`` (0 = Monday), minutes of the day.

    ``start > end`` wraps past midnight (``Fri 22:00-06:00`` covers Saturday morning).
    """

    days: tuple[int, ...]
    start: int
    end: int

    def covers(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        day = when.weekday()
        if self.start <= self.end:
            return day in self.days and self.start <= minute < self.end
        if minute >= self.start:
            return day in self.days
        return (day - 1) % 7 in self.days and minute < self.end

    def text(self) -> str:
        first, last = DAYS[self.days[0]].title(), DAYS[self.days[-1]].title()
        span = first if first == last else f"{first}-{last}"
        return (f"{span} {self.start // 60:02d}:{self.start % 60:02d}-"
                f"{self.end // 60:02d}:{self.end % 60:02d} off")


def parse_window(text: str) -> Window:
    """``Mon-Fri 09:00-18:00 off`` (or ``Sat 00:00-24:00``) -> Window; PolicyError if not."""
    match = _WINDOW.fullmatch(text.strip().lower())
    if match is None:
        raise PolicyError(f"schedule line {text!r}: expected e.g. 'Mon-Fri 09:00-18:00 off'")
    try:
        d1 = DAYS.index(match["d1"])
        d2 = DAYS.index(match["d2"] or match["d1"])
    except ValueError:
        raise PolicyError(f"schedule line {text!r}: days are Mon Tue Wed Thu Fri Sat Sun") from None
    h1, m1, h2, m2 = (int(match[k]) for k in ("h1", "m1", "h2", "m2"))
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise PolicyError(f"schedule line {text!r}: times are 00:00 to 24:00")
    days = tuple((d1 + i) % 7 for i in range((d2 - d1) % 7 + 1))
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise PolicyError(f"schedule line {text!r}: the window is empty")
    return Window(days, start, end)


@dataclass(frozen=True, slots=True)
class DonorPolicy:
    """What the donor chose. Defaults change nothing: vessels always run at their share."""

    busy_above: float | None = None
    """Other programs' CPU use (% of the whole machine) that pauses vessels; None: never."""
    busy_below: float | None = None
    """Resume below this % (default: half of ``busy_above``)."""
    busy_for: float = 1.0
    resume_after: float = 10.0
    in_use_share: float = 1.0
    """Fraction of each vessel's CPU share while the donor uses the machine."""
    idle_share: float = 1.0
    """... and while the machine is idle (no input for ``idle_after`` s, CPU below ``idle_cpu``)."""
    idle_after: float = 300.0
    idle_cpu: float = 10.0
    schedule: tuple[Window, ...] = ()
    on_battery: bool = False
    """Keep running on battery power (False: pause on battery)."""
    net_send: float | None = None
    """Cap on all vessels' network send rate together, bytes/s (None: only their own limits)."""
    net_recv: float | None = None
    paused: bool = False
    """The donor's own pause (``seattle-installer pause``)."""
    paused_until: float | None = None
    """When a timed pause ends (epoch seconds); None: until ``resume``."""

    def __post_init__(self) -> None:
        for name in ("in_use_share", "idle_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise PolicyError(f"{name} must be between 0 and 1, not {value}")
        for name in ("busy_above", "busy_below", "idle_cpu"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 100.0:
                raise PolicyError(f"{name} must be a percentage (0-100), not {value}")
        for name in ("busy_for", "resume_after", "idle_after"):
            if not 0.0 <= getattr(self, name) <= 7 * 86400:
                raise PolicyError(f"{name} must be between 0 s and a week")
        for name in ("net_send", "net_recv"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PolicyError(f"{name} must be a positive rate in bytes/s")

    @property
    def resume_below(self) -> float:
        if self.busy_below is not None:
            return self.busy_below
        return (self.busy_above or 0.0) / 2

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schedule"] = [w.text() for w in self.schedule]
        return data


_FIELDS = {name for name in DonorPolicy.__dataclass_fields__}


def policy_from_json(data: Mapping[str, Any]) -> DonorPolicy:
    """A DonorPolicy from its JSON form; unknown keys and bad values raise PolicyError."""
    if not isinstance(data, Mapping):
        raise PolicyError("a donor policy is a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise PolicyError(f"unknown policy setting(s): {', '.join(sorted(unknown))}")
    values = dict(data)
    schedule = values.pop("schedule", [])
    if not isinstance(schedule, list) or not all(isinstance(s, str) for s in schedule):
        raise PolicyError("schedule must be a list of lines like 'Mon-Fri 09:00-18:00 off'")
    for name, value in values.items():
        kind = DonorPolicy.__dataclass_fields__[name].type
        if "bool" in str(kind):
            if type(value) is not bool:
                raise PolicyError(f"{name} must be true or false")
        elif (type(value) not in (int, float)) if value is not None else "None" not in str(kind):
            raise PolicyError(f"{name} must be a number")
    return DonorPolicy(**values, schedule=tuple(parse_window(s) for s in schedule))


@dataclass(frozen=True, slots=True)
class Readings:
    """What the shell measured this tick; None where the host cannot tell."""

    other_cpu: float | None = None
    """CPU use of everything but the vessels, % of the whole machine."""
    on_battery: bool | None = None
    input_idle: float | None = None
    """Seconds since the last interactive input (None: no login sessions to ask)."""


@dataclass(frozen=True, slots=True)
class PolicyState:
    """The busy rule's memory: since when above, since when below, and whether busy."""

    busy: bool = False
    above_since: float | None = None
    below_since: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Pause every vessel (``paused`` says why) or run them at ``cpu_factor`` of their share."""

    paused: str | None
    cpu_factor: float
    idle: bool
    until: float | None = None
    """When a timed manual pause ends (epoch seconds)."""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _busy_step(policy: DonorPolicy, state: PolicyState, t: float, cpu: float | None) -> PolicyState:
    if policy.busy_above is None or cpu is None:
        return PolicyState()
    if not state.busy:
        if cpu > policy.busy_above:
            since = state.above_since if state.above_since is not None else t
            return PolicyState(busy=t - since >= policy.busy_for, above_since=since)
        return PolicyState()
    if cpu < policy.resume_below:
        since = state.below_since if state.below_since is not None else t
        if t - since >= policy.resume_after:
            return PolicyState()
        return replace(state, below_since=since)
    return replace(state, below_since=None)


def decide(policy: DonorPolicy, state: PolicyState, now: datetime,
           readings: Readings) -> tuple[Decision, PolicyState]:
    """What vessels do now, and the state for the next call (pure)."""
    t = now.timestamp()
    state = _busy_step(policy, state, t, readings.other_cpu)
    idle = (readings.input_idle is None or readings.input_idle >= policy.idle_after) and (
        readings.other_cpu is not None and readings.other_cpu < policy.idle_cpu)
    factor = policy.idle_share if idle else policy.in_use_share
    manual = policy.paused and (policy.paused_until is None or t < policy.paused_until)
    if manual:
        until = policy.paused_until
        detail = "paused by the donor" + ("" if until is None else " for a while")
        return Decision("manual", factor, idle, until=until, detail=detail), state
    if readings.on_battery and not policy.on_battery:
        return Decision("battery", factor, idle, detail="the machine runs on battery"), state
    for window in policy.schedule:
        if window.covers(now):
            return Decision("schedule", factor, idle, detail=window.text()), state
    if state.busy:
        return Decision("busy", factor, idle,
                        detail=f"other programs use over {policy.busy_above:g} % CPU"), state
    return Decision(None, factor, idle), state
