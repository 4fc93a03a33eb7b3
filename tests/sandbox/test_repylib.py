"""The shipped seattlelib_v2 libraries and dylink, each exercised by a program in a vessel.

Programs in ``repylib/`` follow Seattle's pass rule (silence unless a pragma says
otherwise); the helper modules beside them are uploaded to each vessel, so ``dylink``
finds them there and the shipped libraries in the sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from sandbox.dylink import SHIPPED, module_name
from tests.sandbox.repyv2_suite import Outcome, run_suite, runnable_tests

LIBRARY_TESTS = runnable_tests(Path(__file__).parent / "repylib")


@pytest.fixture(scope="module")
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
