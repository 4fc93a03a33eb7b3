"""Resource tables in Seattle's format, and the split/join arithmetic (pure).

A resource file has one rule per line, ``resource NAME VALUE``; ``#`` starts a comment.
``cpu``, ``memory`` and ``diskused`` must be present; other missing kinds are 0. Port kinds
(``messport``, ``connport``) may repeat, one port per line, and accumulate into a set.
(Seattle's format: docs/seattle.md, Resource files.)

Invariant of split/join (docs/seattle.md, Offcut, split and join):
``leftover + requested + offcut == original`` and ``join(a, b) == a + b + offcut``, so
numbers summed over vessels and offcuts never change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from sandbox.errors import ResourceMathError, ResourceParseError

RENEWABLE: tuple[str, ...] = (
    "cpu", "filewrite", "fileread", "netsend", "netrecv",
    "loopsend", "looprecv", "lograte", "random",
)
"""Rates, metered per second (cpu as a fraction of one core)."""
QUANTITY: tuple[str, ...] = ("memory", "diskused")
"""Amounts measured from outside (bytes)."""
ITEMS: tuple[str, ...] = ("events", "filesopened", "insockets", "outsockets")
"""Counts with a cap."""
PORTS: tuple[str, ...] = ("messport", "connport")
"""Allowed local UDP / TCP ports."""
NUMERIC: tuple[str, ...] = RENEWABLE + QUANTITY + ITEMS
KINDS: tuple[str, ...] = NUMERIC + PORTS
REQUIRED: tuple[str, ...] = ("cpu", "memory", "diskused")

ResourceKind = Literal[
    "cpu", "filewrite", "fileread", "netsend", "netrecv", "loopsend", "looprecv", "lograte",
    "random", "memory", "diskused", "events", "filesopened", "insockets", "outsockets",
    "messport", "connport",
]

MAX_VALUE = 1e15


def _number(kind: str, value: float) -> float:
    """Normalise: rates to millionths (so sums conserve exactly), others to integers."""
    if kind in RENEWABLE:
        return round(float(value), 6)
    return float(int(value))


@dataclass(frozen=True, slots=True)
class ResourceTable:
    """One vessel's limits: 15 numeric kinds and 2 port sets."""

    values: Mapping[str, float]
    messport: frozenset[int] = field(default_factory=frozenset)
    connport: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        full = {kind: 0.0 for kind in NUMERIC}
        for kind, value in self.values.items():
            if kind not in NUMERIC:
                raise ResourceParseError(f"unknown resource kind {kind!r}")
            number = float(value)
            if not math.isfinite(number) or number < 0 or number > MAX_VALUE:
                raise ResourceParseError(f"resource {kind} must be a finite number >= 0")
            full[kind] = _number(kind, number)
        object.__setattr__(self, "values", full)
        for name in PORTS:
            ports = frozenset(getattr(self, name))
            if any(type(p) is not int or not 0 < p < 65536 for p in ports):
                raise ResourceParseError(f"{name} entries must be ports 1..65535")
            object.__setattr__(self, name, ports)

    def __getitem__(self, kind: str) -> float:
        return self.values[kind]

    def ports(self, kind: str) -> frozenset[int]:
        """The allowed ports of ``messport`` or ``connport``."""
        if kind not in PORTS:
            raise KeyError(kind)
        result: frozenset[int] = getattr(self, kind)
        return result

    def to_text(self) -> str:
        """Render in Seattle's resource file format (parseable by ``parse_resources``)."""
        lines = []
        for kind in NUMERIC:
            value = self.values[kind]
            text = repr(value) if kind in RENEWABLE else str(int(value))
            lines.append(f"resource {kind} {text}")
        for kind in PORTS:
            lines.extend(f"resource {kind} {port}" for port in sorted(self.ports(kind)))
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, float | list[int]]:
        """A plain dict for wire formats: numbers, and sorted port lists."""
        out: dict[str, float | list[int]] = dict(self.values)
        for kind in PORTS:
            out[kind] = sorted(self.ports(kind))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ResourceTable:
        """Inverse of ``as_dict``; raises ResourceParseError on bad shapes or inexact values."""
        values: dict[str, float] = {}
        ports: dict[str, frozenset[int]] = {}
        for kind, value in data.items():
            if kind in PORTS:
                if not isinstance(value, list | tuple):
                    raise ResourceParseError(f"{kind} must be a list of ports")
                ports[kind] = frozenset(value)
            elif kind in NUMERIC and type(value) in (int, float):
                number = float(value)  # type: ignore[arg-type]
                if math.isfinite(number) and _number(kind, number) != number:
                    raise ResourceParseError(f"{kind} {value} would be rounded")
                values[kind] = number
            else:
                raise ResourceParseError(f"bad resource entry {kind!r}")
        return cls(values, ports.get("messport", frozenset()), ports.get("connport", frozenset()))

    def __add__(self, other: ResourceTable) -> ResourceTable:
        return ResourceTable(
            {k: self.values[k] + other.values[k] for k in NUMERIC},
            self.messport | other.messport,
            self.connport | other.connport,
        )

    def minus(self, other: ResourceTable, *, what: str) -> ResourceTable:
        """``self - other``; raise ResourceMathError naming ``what`` if anything goes negative."""
        values = {}
        for kind in NUMERIC:
            left = self.values[kind] - other.values[kind]
            if left < -1e-9:
                raise ResourceMathError(f"{what}: {kind} would be negative")
            values[kind] = max(left, 0.0)
        for kind in PORTS:
            if not other.ports(kind) <= self.ports(kind):
                raise ResourceMathError(f"{what}: {kind} ports are not a subset of the vessel's")
        return ResourceTable(values, self.messport - other.messport, self.connport - other.connport)


LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
SPACE_RE = re.compile(r"[ \t]+")
NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""An unsigned decimal number: ``10``, ``0.25``, ``.5``, ``1e6`` (no sign, ``_``, inf, nan)."""


def _exact_value(kind: str, text: str) -> float:
    """The number ``text`` stands for, if the table keeps it exactly; else ResourceParseError.

    Rates are kept to 6 decimal places, other kinds as whole numbers (``_number``); a value
    that would be rounded on the way in is refused rather than silently changed.
    """
    if not NUMBER_RE.fullmatch(text):
        raise ResourceParseError(f"{text!r} is not an unsigned decimal number")
    value = float(text)
    if not value <= MAX_VALUE:
        raise ResourceParseError(f"{kind} {text} is above the maximum {MAX_VALUE:.0e}")
    kept = _number(kind, value)
    if Decimal(repr(kept)) != Decimal(text):
        rule = ("at most 6 decimal places and 15 significant digits" if kind in RENEWABLE
                else "a whole number")
        raise ResourceParseError(f"{kind} {text} would be rounded to {kept!r}: use {rule}")
    return kept


def _parse_rule(parts: list[str], values: dict[str, float], ports: dict[str, set[int]]) -> None:
    if len(parts) != 3 or parts[0] != "resource":
        raise ResourceParseError("expected 'resource NAME VALUE'")
    kind, text = parts[1], parts[2]
    if kind not in KINDS:
        raise ResourceParseError(f"unknown resource {kind[:40]!r}")
    if kind in PORTS:
        port = _exact_value("port", text)
        if not 0 < port < 65536:
            raise ResourceParseError(f"{kind} needs a port 1..65535")
        if int(port) in ports[kind]:
            raise ResourceParseError(f"{kind} {int(port)} given twice")
        ports[kind].add(int(port))
        return
    if kind in values:
        raise ResourceParseError(f"{kind} given twice")
    values[kind] = _exact_value(kind, text)


def parse_resources(text: str) -> ResourceTable:
    """Parse a resource file; raise ResourceParseError with the line number on any error.

    Grammar (docs/protocol.md, "Resource text"): ``resource KIND VALUE`` per line, ``#``
    comments, ``call ...`` lines ignored; each numeric kind at most once, each port once.
    """
    values: dict[str, float] = {}
    ports: dict[str, set[int]] = {kind: set() for kind in PORTS}
    for number, raw in enumerate(LINE_BREAK_RE.split(text), start=1):
        line = raw.split("#", 1)[0].strip(" \t")
        if not line:
            continue
        parts = SPACE_RE.split(line)
        if parts[0] == "call":
            continue  # Repy V1 per-call rules: accepted and ignored, as Seattle did
        try:
            _parse_rule(parts, values, ports)
        except ResourceParseError as exc:
            raise ResourceParseError(f"line {number}: {exc}") from None
    missing = [kind for kind in REQUIRED if kind not in values]
    if missing:
        raise ResourceParseError(f"missing required resource(s): {', '.join(missing)}")
    return ResourceTable(values, frozenset(ports["messport"]), frozenset(ports["connport"]))


DEFAULT_OFFCUT = ResourceTable(
    {
        "cpu": 0.002, "memory": 1_000_000, "diskused": 100_000, "events": 2,
        "filewrite": 1000, "fileread": 1000, "filesopened": 1, "lograte": 100,
    }
)
"""Seattle's offcut: the management overhead of one vessel (docs/seattle.md, Offcut)."""


def split_resources(
    original: ResourceTable, requested: ResourceTable, offcut: ResourceTable = DEFAULT_OFFCUT
) -> tuple[ResourceTable, ResourceTable]:
    """Return ``(leftover, requested)`` with ``leftover = original - offcut - requested``."""
    leftover = original.minus(offcut, what="vessel too small to split").minus(
        requested, what="proposed vessel is too large"
    )
    return leftover, requested


def join_resources(
    first: ResourceTable, second: ResourceTable, offcut: ResourceTable = DEFAULT_OFFCUT
) -> ResourceTable:
    """Return ``first + second + offcut`` (the offcut freed by joining comes back)."""
    return first + second + offcut


def total(tables: Iterable[ResourceTable]) -> ResourceTable:
    """Sum of many tables (ports unioned)."""
    result = ResourceTable({})
    for table in tables:
        result = result + table
    return result
