"""Run vessel programs through the same path a node manager uses, one or a batch at a time.

    out = await run_in_vessel(sup, "v1", vessel_dir, "log('hi')\\n")
    outcomes = trio.run(run_batch, [Job("a", dir_a, source_a), ...], 3)

Programs that use the network bind ``HOST`` (a per-xdist-worker loopback address, see
``tests.support.net``), never 127.0.0.1: write ``'127.0.0.1'`` in the program and pass it
through ``on_host``, so two workers (or two programs of one batch) never share an address.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from sandbox import ProgramStartError, ResourceTable, Supervisor, VesselReport, parse_resources
from tests.support.net import ip

SMALL = """
resource cpu 0.5
resource memory 40000000
resource diskused 2000000
resource events 6
resource filewrite 10000000
resource fileread 10000000
resource filesopened 4
resource insockets 3
resource outsockets 3
resource netsend 100000
resource netrecv 100000
resource loopsend 10000000
resource looprecv 10000000
resource lograte 1000000
resource random 100000
resource messport 63100
resource messport 63101
resource connport 63100
resource connport 63101
resource connport 63104
resource connport 63105
"""

HOST = ip("127.31.0.1")
"""The loopback address this worker's single vessel programs use."""


def table(**overrides: float) -> ResourceTable:
    """The small test table with some kinds changed."""
    base = parse_resources(SMALL)
    values = dict(base.values)
    values.update(overrides)
    return ResourceTable(values, base.messport, base.connport)


def on_host(source: str, host: str = HOST) -> str:
    """``source`` with every quoted ``'127.0.0.1'`` replaced by ``host``."""
    return source.replace("'127.0.0.1'", repr(host))


@dataclass
class Outcome:
    report: VesselReport
    log: str


RunProgram = Callable[..., Awaitable[Outcome]]
"""The ``run_program`` fixture: ``await run_program(source, *, resources, args, timeout, ...)``."""


async def run_in_vessel(
    sup: Supervisor,
    key: str,
    vessel_dir: Path,
    source: str,
    *,
    resources: ResourceTable | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 20.0,
    restricted: bool = True,
    name: str = "program.py",
) -> Outcome:
    """Run ``source`` as ``name`` in ``vessel_dir``; stop it after ``timeout`` seconds."""
    (vessel_dir / name).write_text(source)
    try:
        await sup.start(key, vessel_dir, resources or table(), name, args,
                        vessel_dir.parent / f"{key}.log", restricted=restricted)
    except ProgramStartError:
        pass  # the report tells the story (compile errors, exit reason)
    with trio.move_on_after(timeout):
        await sup.wait(key)
    if sup.report(key).status == "Started":
        await sup.stop(key)
    return Outcome(sup.report(key), sup.read_log(key).decode("utf-8", "replace"))


@dataclass(frozen=True)
class Job:
    """One program of a batch: it runs as vessel ``key`` in its own ``vessel_dir``."""

    key: str
    vessel_dir: Path
    source: str
    timeout: float = 20.0
    resources: ResourceTable | None = field(default=None, compare=False)


async def run_batch(jobs: Iterable[Job], parallel: int) -> dict[str, Outcome]:
    """Run independent programs, ``parallel`` at a time (each one's timeout starts when it does)."""
    limiter = trio.CapacityLimiter(parallel)
    results: dict[str, Outcome] = {}

    async def one(sup: Supervisor, job: Job) -> None:
        async with limiter:
            results[job.key] = await run_in_vessel(sup, job.key, job.vessel_dir, job.source,
                                                   resources=job.resources, timeout=job.timeout)

    async with Supervisor.open() as sup, trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(one, sup, job)
    return results


def require_root() -> None:
    """Skip a root-only test when not root, but fail it under CI=true (CI runs as root)."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("this test needs root, and CI runs as root")
    pytest.skip("needs root")
