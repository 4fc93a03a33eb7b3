"""Keeping N vessels running a program: a vessel whose program ended, failed or that
vanished (no answer, no such vessel) is set aside and replaced by a spare vessel, or by one
leased from the community pool when the experiment has a pool credential."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from seash.experiment.core import Experiment
from seash.experiment.model import Event, EventKind, Vessel
from seash.experiment.watch import Callback, Watcher

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Roster:
    """Which vessels run the program, which may be used next, which were set aside (pure)."""

    count: int
    spares: list[Vessel]
    active: list[Vessel] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)
    """Vessels set aside, by address: why (never used again)."""

    @property
    def missing(self) -> int:
        return max(0, self.count - len(self.active))

    def take(self) -> list[Vessel]:
        """Spares to start now (at most ``missing``), removed from the spares."""
        chosen, self.spares = self.spares[:self.missing], self.spares[self.missing:]
        return chosen

    def add_spares(self, vessels: Sequence[Vessel]) -> None:
        known = {v.address for v in [*self.active, *self.spares]} | set(self.retired)
        for vessel in vessels:
            if vessel.address not in known:
                known.add(vessel.address)
                self.spares.append(vessel)

    def started(self, vessel: Vessel) -> None:
        self.active.append(vessel)

    def retire(self, vessel: Vessel, reason: str) -> None:
        self.active = [v for v in self.active if v.address != vessel.address]
        self.spares = [v for v in self.spares if v.address != vessel.address]
        self.retired[vessel.address] = reason


class KeepRunning:
    """Keeps ``count`` of ``vessels`` (and pool vessels, with a credential) running
    ``program`` with ``args``; ``on(kind, callback)`` as for the ``Watcher``."""

    def __init__(self, experiment: Experiment, count: int, program: Path,
                 args: Sequence[str] | Callable[[Vessel], Sequence[str]] = (), *,
                 vessels: Sequence[Vessel] = (), interval: float = 1.0,
                 pool_kind: str = "any") -> None:
        self.experiment = experiment
        self.program = program
        self.args = args
        self.pool_kind = pool_kind
        self.roster = Roster(count, list(vessels))
        self.watcher = Watcher(experiment, [], interval=interval)
        self.replaced = 0
        """How many vessels were started in place of one set aside."""
        for kind in ("ended", "failed", "unreachable"):
            self.watcher.on(kind, self._retire)

    def on(self, kind: EventKind, callback: Callback) -> None:
        self.watcher.on(kind, callback)

    async def _retire(self, event: Event) -> None:
        log.info("%s %s: %s", event.vessel.address, event.kind, event.reason)
        self.roster.retire(event.vessel, f"{event.kind}: {event.reason}")

    async def fill(self) -> None:
        """Start the program on spares (leasing more if needed) until ``count`` run, or
        nothing is left to try."""
        roster = self.roster
        while roster.missing:
            if len(roster.spares) < roster.missing and self.experiment.credential is not None:
                roster.add_spares(await self.experiment.acquire(
                    roster.missing - len(roster.spares), kind=self.pool_kind))
            chosen = roster.take()
            if not chosen:
                log.warning("keep running: %d vessels short, no spare left", roster.missing)
                return
            replacing = bool(roster.retired)
            results = await self.experiment.run(chosen, self.program, self.args)
            for vessel, result in zip(chosen, results, strict=True):
                if result.ok:
                    roster.started(vessel)
                    self.replaced += replacing
                else:
                    roster.retire(vessel, f"start failed: {result.error}")

    async def step(self) -> None:
        """One round: look at the running vessels, then replace those set aside."""
        self.watcher.vessels = list(self.roster.active)
        await self.watcher.poll()
        await self.fill()

    async def run(self, duration: float | None = None,
                  until: Callable[[Roster], bool] | None = None) -> None:
        """Keep them running for ``duration`` seconds or until ``until(roster)`` is true
        after a round (else forever)."""
        await self.fill()
        with trio.move_on_after(float("inf") if duration is None else duration):
            while until is None or not until(self.roster):
                await trio.sleep(self.watcher.interval)
                await self.step()
