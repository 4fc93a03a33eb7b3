"""Helpers to run vessel programs through the same path a node manager uses."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from sandbox import ProgramStartError, ResourceTable, Supervisor, VesselReport, parse_resources

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


def table(**overrides: float) -> ResourceTable:
    """The small test table with some kinds changed."""
    base = parse_resources(SMALL)
    values = dict(base.values)
    values.update(overrides)
    return ResourceTable(values, base.messport, base.connport)


@dataclass
class Outcome:
    report: VesselReport
    log: str


RunProgram = Callable[..., Awaitable[Outcome]]


@pytest.fixture
def vessel_dir(tmp_path: Path) -> Path:
    path = tmp_path / "v1"
    path.mkdir()  # parents stay 0700 (root's pytest tmp): the vessel uid needs no path to it
    return path.resolve()



@pytest.fixture
def run_program(vessel_dir: Path) -> RunProgram:
    """Run ``source`` as program.py in a vessel; stop it after ``timeout`` seconds."""

    async def run(
        source: str,
        *,
        resources: ResourceTable | None = None,
        args: tuple[str, ...] = (),
        timeout: float = 20.0,
        restricted: bool = True,
        name: str = "program.py",
    ) -> Outcome:
        (vessel_dir / name).write_text(source)
        async with Supervisor.open() as sup:
            try:
                await sup.start("v1", vessel_dir, resources or table(), name, args,
                                vessel_dir.parent / "v1.log", restricted=restricted)
            except ProgramStartError:
                pass  # the report tells the story (compile errors, exit reason)
            with trio.move_on_after(timeout):
                await sup.wait("v1")
            if sup.report("v1").status == "Started":
                await sup.stop("v1")
            report = sup.report("v1")
            return Outcome(report, sup.read_log("v1").decode("utf-8", "replace"))

    return run


def require_root() -> None:
    """Skip a root-only test when not root, but fail it under CI=true (CI runs as root)."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("this test needs root, and CI runs as root")
    pytest.skip("needs root")
