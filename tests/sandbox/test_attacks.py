"""Every hostile program (the corpus in attacks/corpus and our own) run through the vessel path.

``# expect: blocked``: no ``ESCAPED:`` line, nothing written outside the vessel.
``# expect: limited``: no ``SURVIVED:`` line: a limit throttled it until the deadline, or
stopped it, or the policy refused it before it could start.

The programs are independent: a module fixture runs them all as one batch, ``PARALLEL`` at a
time, each in its own vessel, on its own loopback address and with its own escape marker;
each test then judges its own program.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from tests.support.net import ip
from tests.support.requires import skip_or_fail
from tests.support.vessels import Job, Outcome, on_host, run_batch

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

HERE = Path(__file__).parent
SHARED = HERE / "attacks" / "corpus"
OURS = HERE / "attacks"
MARKER = "/tmp/vessel_escape_marker.txt"
"""The path the corpus tries to write; each program gets its own (``marker``)."""
TIMEOUT = 4.0
PARALLEL = 4
"""Sized for 2 cores: most programs sleep, wait on a limit or die at once."""


def _programs() -> list[Path]:
    shared = sorted(SHARED.glob("*.py")) if SHARED.is_dir() else []
    if not shared and os.environ.get("CI"):
        raise RuntimeError(f"the attack corpus is missing at {SHARED}")
    return shared + sorted(OURS.glob("*.py"))


PROGRAMS = _programs()


def marker(program: Path) -> Path:
    return Path(f"/tmp/vessel_escape_marker-{os.getpid()}-{program.stem}.txt")


def prepared(program: Path, index: int, root: Path) -> Job:
    """``program`` in its own vessel, aimed at its own marker and loopback address."""
    vessel = root / program.stem
    vessel.mkdir()
    text = program.read_text()
    if "escape_link" in text:
        (vessel / "escape_link").symlink_to("/etc/passwd")
    marker(program).unlink(missing_ok=True)
    source = on_host(text.replace(MARKER, str(marker(program))), ip(f"127.32.{index}.1"))
    return Job(program.stem, vessel.resolve(), source, timeout=TIMEOUT)


@pytest.fixture(scope="session")  # once: its group runs in one worker (tests/support/groups.py)
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Attacked]:
    return attack_all(tmp_path_factory.mktemp("attacks"))


@dataclass(frozen=True)
class Attacked:
    outcome: Outcome
    wrote_marker: bool


def attack_all(root: Path) -> dict[str, Attacked]:
    jobs = [prepared(program, index, root) for index, program in enumerate(PROGRAMS)]
    ran = trio.run(run_batch, jobs, PARALLEL)
    results = {}
    for program in PROGRAMS:
        results[program.stem] = Attacked(ran[program.stem], marker(program).exists())
        marker(program).unlink(missing_ok=True)
    return results


def test_corpus_present() -> None:
    if not SHARED.is_dir():
        skip_or_fail(f"no attack corpus at {SHARED}")
    assert len(list(SHARED.glob("*.py"))) >= 40


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_attack(program: Path, outcomes: dict[str, Attacked]) -> None:
    text = program.read_text()
    expect = text.splitlines()[0].removeprefix("# expect:").strip()
    assert expect in ("blocked", "limited")
    out = outcomes[program.stem].outcome
    report = out.report
    assert "ESCAPED:" not in out.log, out.log[-2000:]
    assert "SURVIVED:" not in out.log, out.log[-2000:]
    assert not outcomes[program.stem].wrote_marker, f"{program.name} wrote {marker(program)}"
    assert report.exit_reason, "every end has a recorded reason"
    if expect == "limited":
        stopped = report.status == "Stopped" or report.exit_code != 0
        assert stopped, f"{program.name} ended normally: {report}"
    else:
        assert report.exit_reason != "stopped by request", "a blocked program must not hang"
