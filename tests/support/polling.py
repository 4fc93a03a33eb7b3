"""Wait for a condition, not for a fixed time: ``eventually`` polls until a check passes.

    await eventually(lambda: (state / "nodemanager.port").exists(), timeout=10)
    port = await eventually(read_port_or_none)          # returns the first truthy value

The check may be a plain or an async callable; it may return a value (the first truthy one is
returned) or raise ``AssertionError`` (retried; the last one is re-raised at the deadline, so
a failure says what was still wrong). Deadlines are on trio's clock, so under the autojump
clock a wait costs no wall time.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")
DEFAULT_TIMEOUT = 20.0
DEFAULT_INTERVAL = 0.02


class NotYet(AssertionError):
    """The condition still did not hold at the deadline."""


async def eventually(check: Callable[[], T | Awaitable[T]], *, timeout: float = DEFAULT_TIMEOUT,
                     interval: float = DEFAULT_INTERVAL, what: str = "") -> T:
    """Call ``check`` until it returns a truthy value (returned) or ``timeout`` passes (raise)."""
    deadline = trio.current_time() + timeout
    last: AssertionError | None = None
    while True:
        try:
            value: Any = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[no-any-return]
            last = None
        except AssertionError as exc:
            last = exc
        if trio.current_time() >= deadline:
            raise NotYet(f"not true after {timeout} s: {what or _name(check)}"
                         + (f" (last: {last})" if last else "")) from last
        await trio.sleep(interval)


def eventually_sync(check: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT,
                    interval: float = DEFAULT_INTERVAL, what: str = "") -> T:
    """``eventually`` for plain (non-trio) tests, on the monotonic clock."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise NotYet(f"not true after {timeout} s: {what or _name(check)}"
                         + (f" (last: {last})" if last else "")) from last
        time.sleep(interval)


def _name(check: Callable[..., Any]) -> str:
    return getattr(check, "__qualname__", repr(check))
