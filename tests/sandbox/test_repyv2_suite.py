"""Seattle's Repy V2 API tests (``ut_repyv2api_*``), ported, as the executable spec.

All 78 that stay on loopback run in real sandboxed vessels, three at a time, once per
session (see ``tests.support.repyv2``); each is then judged by Seattle's pass rule. The 80th,
``openconnectiontimeout``, resolves and connects to a host on the internet and is never
run. Seattle's ``commandlineargs`` checked ``repy.py`` itself; its port checks
``seattle-sandbox run`` below.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.support.repyv2 import (
    NEEDS_INTERNET,
    SUITE,
    Outcome,
    judge,
    parse_pragmas,
    run_suite,
    runnable_tests,
)

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

TESTS = runnable_tests()


@pytest.fixture(scope="session")  # once: its group runs in one worker (tests/support/groups.py)
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return trio.run(run_suite, TESTS, tmp_path_factory.mktemp("repyv2"))


def test_the_whole_suite_is_here() -> None:
    names = {p.name for p in SUITE.glob("ut_*.r2py")}
    assert len(names) == 79 and names >= NEEDS_INTERNET
    assert len(TESTS) == 78


@pytest.mark.parametrize("test", TESTS, ids=lambda p: p.stem.removeprefix("ut_repyv2api_"))
def test_seattle_api_test(test: Path, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[test.name]
    assert outcome.failure is None, outcome.failure


def test_pass_rule_catches_output_and_crashes() -> None:
    """The judge itself: silence passes; output, crashes and missing pragma text fail."""
    plain = parse_pragmas("#pragma repy\n")
    assert judge(plain, 0, "Terminated", "") is None
    assert judge(plain, 200, "Terminated", "") is None  # exitall()
    assert judge(plain, 0, "Terminated", "oops\n") is not None
    assert judge(plain, 6, "Terminated", "") is not None
    out = parse_pragmas("#pragma out first\n#pragma out second\n#pragma repy restrictions.fixed a b\n")
    assert (out.restrictions, out.args) == ("restrictions.fixed", ("a", "b"))
    assert judge(out, 0, "Terminated", "the first\nthen second\n") is None
    assert judge(out, 0, "Terminated", "second\nfirst\n") is not None
    error = parse_pragmas("#pragma error NameError\n")
    assert judge(error, 6, "Terminated", "NameError: x\n") is None
    assert judge(error, 0, "Terminated", "NameError: x\n") is not None


def test_commandlineargs_reach_the_program(tmp_path: Path) -> None:
    """Seattle's ut_repyv2api_commandlineargs: `--logfile X` after the program is the
    program's argument, not the sandbox's (no log file appears)."""
    program = tmp_path / "noop_program_for_repy_callarg_test.r2py"
    program.write_text("log('args', callargs)\n")
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "run", "--dir", str(tmp_path), str(program),
         "--logfile", "REPY_CALLARG_TEST"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "args ['--logfile', 'REPY_CALLARG_TEST']" in result.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("REPY_CALLARG_TEST")]
