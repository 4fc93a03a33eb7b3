"""The status watcher: polls vessels and calls back on changes (started, ended, failed,
became unreachable, paused by its donor). The decisions are ``model.changes`` (pure)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from seash.experiment.core import Experiment
from seash.experiment.model import EVENT_KINDS, Event, EventKind, Seen, Vessel, changes

log = logging.getLogger(__name__)

Callback = Callable[[Event], Awaitable[None] | None]
"""Called with each event; a coroutine function is awaited before the next event."""


class Watcher:
    """Watches ``vessels`` of ``experiment`` every ``interval`` seconds."""

    def __init__(self, experiment: Experiment, vessels: Sequence[Vessel], *,
                 interval: float = 1.0) -> None:
        self.experiment = experiment
        self.vessels = list(vessels)
        self.interval = interval
        self.seen: dict[str, Seen] = {}
        """The last observation of each vessel, by address."""
        self._callbacks: dict[EventKind, list[Callback]] = {kind: [] for kind in EVENT_KINDS}

    def on(self, kind: EventKind, callback: Callback) -> None:
        """Call ``callback(event)`` on each event of ``kind``."""
        if kind not in self._callbacks:
            raise ValueError(f"unknown event {kind!r}: one of {', '.join(EVENT_KINDS)}")
        self._callbacks[kind].append(callback)

    async def poll(self) -> list[Event]:
        """Look at every vessel once; call back and return the changes since the last look."""
        results = await self.experiment.status(self.vessels)
        events: list[Event] = []
        for vessel, result in zip(self.vessels, results, strict=True):
            now = Seen(result.value) if result.ok else Seen(None, result.error)
            events += changes(vessel, self.seen.get(vessel.address), now)
            self.seen[vessel.address] = now
        for event in events:
            for callback in self._callbacks[event.kind]:
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
        return events

    async def run(self, duration: float | None = None,
                  until: Callable[[], bool] | None = None) -> None:
        """Poll until ``duration`` seconds passed or ``until()`` is true (else forever)."""
        with trio.move_on_after(float("inf") if duration is None else duration):
            while True:
                await self.poll()
                if until is not None and until():
                    return
                await trio.sleep(self.interval)
