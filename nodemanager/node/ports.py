"""Stable ports across restarts: listen where the last run listened, if that port is free.

Peers, adverts and testbed records name a node by its address; a node manager started with
port 0 (``--listen HOST:0``) would get a new port on every restart and leave all of them
wrong. So the daemon keeps the ports it got in its state (``NodeState.ports``) and asks for
the same ones at the next start. If one is taken meanwhile, it says so and takes a new
one; the announcer's first round (at once, with a newer ``seq``) replaces the adverts that
named the old address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)

Serve = Callable[..., Awaitable[object]]


def _bind_failure(exc: BaseException) -> bool:
    """True for an OSError (also one alone inside exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return isinstance(exc, OSError)


async def start_on_port(nursery: trio.Nursery, serve: Serve, host: str, port: int,
                        remembered: int | None, what: str) -> tuple[int, bool]:
    """``nursery.start(serve, host, port)``; with ``port`` 0, ``remembered`` is tried first.

    Returns the bound port and whether the remembered one was taken (the caller's peers
    and adverts must learn the new address at once)."""
    if port == 0 and remembered:
        try:
            bound: int = await nursery.start(serve, host, remembered)
            return bound, False
        except BaseException as exc:
            if not _bind_failure(exc):
                raise
            log.warning("%s port %d of the last run is taken on %s (%s); using a new port",
                        what, remembered, host, exc)
            bound = await nursery.start(serve, host, 0)
            return bound, True
    bound = await nursery.start(serve, host, port)
    return bound, False
