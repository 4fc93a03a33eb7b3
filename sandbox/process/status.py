"""The runner -> supervisor status channel: one JSON object per line (pure, both sides).

The runner writes events with ``encode_event``; the supervisor splits the byte stream with
``StatusLines`` and turns each line into a typed event with ``parse_event``. The child is
hostile once the program runs, so parsing never raises: malformed, oversized or ill-typed
lines are dropped, strings are truncated and lists bounded.

Events (``{"event": NAME, ...}``):
    ready          protection: str, rss: int     the program is about to run
    compile_error  errors: [str]                 the program did not compile (then exit)
    usage          usage: {kind: number}         nanny totals, on request
    exit           code: int, reason: str        how the runner is about to exit
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_LINE = 64 * 1024
MAX_TEXT = 500
MAX_ERRORS = 50


@dataclass(frozen=True, slots=True)
class Ready:
    protection: str
    rss: int


@dataclass(frozen=True, slots=True)
class CompileError:
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: dict[str, float]


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    reason: str


Event = Ready | CompileError | UsageReport | Exit


def encode_event(event: str, **fields: Any) -> bytes:
    """One status line (runner side)."""
    return (json.dumps({"event": event, **fields}) + "\n").encode()


def _ready(raw: dict[str, Any]) -> Event | None:
    protection, rss = raw.get("protection"), raw.get("rss")
    if not isinstance(protection, str):
        return None
    return Ready(protection[:200], rss if type(rss) is int and rss > 0 else 0)


def _compile_error(raw: dict[str, Any]) -> Event | None:
    errors = raw.get("errors")
    if not isinstance(errors, list):
        return None
    kept = tuple(str(e)[:MAX_TEXT] for e in errors[:MAX_ERRORS])
    return CompileError(kept or ("compile error",))


def _usage(raw: dict[str, Any]) -> Event | None:
    usage = raw.get("usage")
    if not isinstance(usage, dict):
        return None
    return UsageReport({k: float(v) for k, v in usage.items()
                        if isinstance(k, str) and type(v) in (int, float)})


def _exit(raw: dict[str, Any]) -> Event | None:
    code = raw.get("code")
    if type(code) is not int:
        return None
    return Exit(code, str(raw.get("reason", ""))[:MAX_TEXT])


_PARSERS = {"ready": _ready, "compile_error": _compile_error, "usage": _usage, "exit": _exit}


def parse_event(line: bytes) -> Event | None:
    """The event on one line, or None for anything malformed (supervisor side)."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        return None
    name = raw.get("event") if isinstance(raw, dict) else None
    parser = _PARSERS.get(name) if isinstance(name, str) else None
    return parser(raw) if parser is not None else None


class StatusLines:
    """Splits the channel's bytes into lines; a line over ``MAX_LINE`` is dropped whole."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, rest = (self._buffer + chunk).split(b"\n")
        if self._skipping and lines:
            lines, self._skipping = lines[1:], False
        if len(rest) > MAX_LINE:
            rest, self._skipping = b"", True
        self._buffer = rest
        return [line for line in lines if len(line) <= MAX_LINE]
