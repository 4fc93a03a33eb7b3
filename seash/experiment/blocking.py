"""The blocking facade, for scripts and notebooks: the same calls as ``Experiment``
without ``await``. One thread runs trio for the experiment (its connections live there)
until ``close``; each call waits for its answer. Callbacks of ``watch``/``keep_running``
run in that thread."""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from nodemanager import NodeClient
from seash.client import Job, NodeResult
from seash.experiment.core import Experiment
from seash.experiment.keep import KeepRunning, Roster
from seash.experiment.model import EventKind, ExperimentError, Vessel
from seash.experiment.watch import Callback, Watcher
from seattlecore import KeyPair, PublicKey

T = TypeVar("T")
Args = Sequence[str] | Callable[[Vessel], Sequence[str]]


class BlockingExperiment:
    """``Experiment`` for code that does not run trio; use as a context manager or
    ``close()`` it. Takes ``Experiment``'s arguments."""

    def __init__(self, identity: KeyPair, **options: Any) -> None:
        self._options = options
        self._identity = identity
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._closing: trio.Event | None = None
        self._experiment: Experiment | None = None
        self._thread = threading.Thread(target=self._main, name="experiment", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise ExperimentError(f"cannot start the experiment: {self._failed}")

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the constructor or by close()
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._closing = trio.Event()
        async with Experiment(self._identity, **self._options) as experiment:
            self._experiment = experiment
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._closing.wait()

    @property
    def experiment(self) -> Experiment:
        """The async experiment behind this facade (use it only from its thread)."""
        if self._experiment is None:
            raise ExperimentError("the experiment is closed")
        return self._experiment

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._token is None or not self._thread.is_alive():
            raise ExperimentError("the experiment is closed")
        return trio.from_thread.run(function, *args, trio_token=self._token)

    def close(self) -> None:
        """Close every connection and end the experiment's thread."""
        if self._token is not None and self._thread.is_alive() and self._closing is not None:
            trio.from_thread.run_sync(self._closing.set, trio_token=self._token)
        self._thread.join()
        self._token = None

    def __enter__(self) -> BlockingExperiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the same operations as Experiment ----

    def do(self, vessels: Sequence[Vessel], op: Callable[[NodeClient, Job], Awaitable[Any]],
           deadline: float | None = None) -> list[NodeResult]:
        return self._call(lambda: self.experiment.do(vessels, op, deadline=deadline))

    def find_vessels(self, key: PublicKey | None = None) -> list[Vessel]:
        return self._call(self.experiment.find_vessels, key)

    def contact(self, host: str, port: int) -> list[Vessel]:
        return self._call(self.experiment.contact, host, port)

    def acquire(self, count: int, kind: str = "any", spread: bool = False,
                rng: random.Random | None = None) -> list[Vessel]:
        return self._call(lambda: self.experiment.acquire(count, kind=kind, spread=spread, rng=rng))

    def release(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        return self._call(self.experiment.release, vessels)

    def upload(self, vessels: Sequence[Vessel], name: str, data: bytes | Path) -> list[NodeResult]:
        return self._call(self.experiment.upload, vessels, name, data)

    def download(self, vessels: Sequence[Vessel], name: str) -> list[NodeResult]:
        return self._call(self.experiment.download, vessels, name)

    def start(self, vessels: Sequence[Vessel], program: str, args: Args = ()) -> list[NodeResult]:
        return self._call(self.experiment.start, vessels, program, args)

    def run(self, vessels: Sequence[Vessel], program: Path, args: Args = ()) -> list[NodeResult]:
        return self._call(self.experiment.run, vessels, program, args)

    def stop(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        return self._call(self.experiment.stop, vessels)

    def status(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        return self._call(self.experiment.status, vessels)

    def wait(self, vessels: Sequence[Vessel], timeout: float | None = None) -> list[NodeResult]:
        return self._call(self.experiment.wait, vessels, timeout)

    def read_logs(self, vessels: Sequence[Vessel]) -> list[NodeResult]:
        return self._call(self.experiment.read_logs, vessels)

    def watch(self, vessels: Sequence[Vessel], callbacks: dict[EventKind, Callback], *,
              interval: float = 1.0, duration: float | None = None,
              until: Callable[[], bool] | None = None) -> None:
        """Watch ``vessels`` (``{"failed": f, ...}``) for ``duration`` s or until ``until()``."""
        async def watch() -> None:
            watcher = Watcher(self.experiment, vessels, interval=interval)
            for kind, callback in callbacks.items():
                watcher.on(kind, callback)
            await watcher.run(duration, until)
        self._call(watch)

    def keep_running(self, count: int, program: Path, args: Args = (), *,
                     vessels: Sequence[Vessel] = (), interval: float = 1.0,
                     duration: float | None = None, until: Callable[[Roster], bool] | None = None,
                     callbacks: dict[EventKind, Callback] | None = None) -> KeepRunning:
        """Keep ``count`` vessels running ``program`` for ``duration`` s or until
        ``until(roster)``; returns the ``KeepRunning`` (its ``roster`` says who ran, who was set
        aside and why)."""
        keeper = KeepRunning(self.experiment, count, program, args, vessels=vessels,
                             interval=interval)
        for kind, callback in (callbacks or {}).items():
            keeper.on(kind, callback)
        self._call(lambda: keeper.run(duration, until))
        return keeper
