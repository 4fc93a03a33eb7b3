"""Fixtures to run vessel programs (the helpers themselves live in ``tests.support.vessels``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox import Supervisor
from tests.support.vessels import Outcome, RunProgram, run_in_vessel


@pytest.fixture
def vessel_dir(tmp_path: Path) -> Path:
    path = tmp_path / "v1"
    path.mkdir()  # parents stay 0700 (root's pytest tmp): the vessel uid needs no path to it
    return path.resolve()


@pytest.fixture
def run_program(vessel_dir: Path) -> RunProgram:
    """Run ``source`` as program.py in a vessel; stop it after ``timeout`` seconds."""

    async def run(source: str, **options: Any) -> Outcome:
        async with Supervisor.open() as sup:
            return await run_in_vessel(sup, "v1", vessel_dir, source, **options)

    return run
