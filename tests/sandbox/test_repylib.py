"""The shipped seattlelib_v2 libraries and dylink, each exercised by a program in a vessel.

Programs in ``repylib/`` follow Seattle's pass rule (silence unless a pragma says
otherwise); the helper modules beside them are uploaded to each vessel, so ``dylink``
finds them there and the shipped libraries in the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from sandbox.vessel.dylink import SHIPPED, module_name
from tests.support.repyv2 import Outcome, run_suite, runnable_tests

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

LIBRARY_TESTS = runnable_tests(Path(__file__).parent / "repylib")


@pytest.fixture(scope="session")  # once: its group runs in one worker (tests/support/groups.py)
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return trio.run(run_suite, LIBRARY_TESTS, tmp_path_factory.mktemp("repylib"))


@pytest.mark.parametrize("test", LIBRARY_TESTS, ids=lambda p: p.stem.removeprefix("ut_lib_"))
def test_library_program(test: Path, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[test.name]
    assert outcome.failure is None, outcome.failure


def test_every_shipped_library_is_exercised() -> None:
    text = "".join(p.read_text() for p in LIBRARY_TESTS)
    untested = [name for name in SHIPPED if name != "dylink" and f'"{name}.r2py"' not in text]
    assert not untested
    assert {"dylink", "random", "serialize", "session", "semaphore"} <= set(SHIPPED)


def test_module_names_strip_seattle_extensions() -> None:
    assert module_name("time.r2py") == module_name("time.repy") == module_name("time") == "time"
    assert module_name("x.py.repy") == "x"


def test_the_worked_porting_example_ports_and_runs(tmp_path: Path) -> None:
    """docs/repy.md's example: `port` converts the Python 2 original cleanly, and the
    ported copy (two lines fixed by hand for bytes) runs under `seattle-sandbox run`."""
    import socket
    import subprocess
    import sys

    examples = Path(__file__).parents[2] / "examples"
    ported = subprocess.run(
        [sys.executable, "-m", "sandbox", "port", str(examples / "seattle" / "pingpong.r2py")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert ported.returncode == 0, ported.stderr
    assert "8 change(s), ready to run" in ported.stderr
    port = _free_port_pair(socket)
    resources = tmp_path / "pingpong.resources"
    resources.write_text((Path(__file__).parents[2] / "sandbox" / "default.resources").read_text()
                         + f"resource connport {port}\nresource connport {port + 1}\n")
    run = subprocess.run(
        [sys.executable, "-m", "sandbox", "run", "--resources", str(resources),
         str(examples / "pingpong_ported.r2py"), str(port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "round trips: 5" in run.stdout


def _free_port_pair(socket: Any) -> int:
    """A port p with p and p + 1 both free on loopback (the example uses two)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            try:
                b.bind(("127.0.0.1", a.getsockname()[1] + 1))
            except OSError:
                continue
            return int(a.getsockname()[1])
    raise RuntimeError("no two adjacent free ports on loopback")
