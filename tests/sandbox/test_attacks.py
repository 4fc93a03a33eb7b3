"""Every hostile program (the corpus in attacks/corpus and our own) run through the vessel path.

``# expect: blocked``: no ``ESCAPED:`` line, nothing written outside the vessel.
``# expect: limited``: no ``SURVIVED:`` line: a limit throttled it until the deadline, or
stopped it, or the policy refused it before it could start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sandbox.conftest import RunProgram
from tests.support.requires import skip_or_fail

HERE = Path(__file__).parent
SHARED = HERE / "attacks" / "corpus"
OURS = HERE / "attacks"
MARKER = Path("/tmp/vessel_escape_marker.txt")


def _programs() -> list[Path]:
    shared = sorted(SHARED.glob("*.py")) if SHARED.is_dir() else []
    if not shared and os.environ.get("CI"):
        raise RuntimeError(f"the attack corpus is missing at {SHARED}")
    return shared + sorted(OURS.glob("*.py"))


def test_corpus_present() -> None:
    if not SHARED.is_dir():
        skip_or_fail(f"no attack corpus at {SHARED}")
    assert len(list(SHARED.glob("*.py"))) >= 40


@pytest.mark.parametrize("program", _programs(), ids=lambda p: p.stem)
async def test_attack(program: Path, run_program: RunProgram, vessel_dir: Path) -> None:
    text = program.read_text()
    expect = text.splitlines()[0].removeprefix("# expect:").strip()
    assert expect in ("blocked", "limited")
    MARKER.unlink(missing_ok=True)
    if "escape_link" in text:
        (vessel_dir / "escape_link").symlink_to("/etc/passwd")
    out = await run_program(text, timeout=4.0)
    report = out.report
    assert "ESCAPED:" not in out.log, out.log[-2000:]
    assert "SURVIVED:" not in out.log, out.log[-2000:]
    assert not MARKER.exists()
    assert report.exit_reason, "every end has a recorded reason"
    if expect == "limited":
        stopped = report.status == "Stopped" or report.exit_code != 0
        assert stopped, f"{program.name} ended normally: {report}"
    else:
        assert report.exit_reason != "stopped by request", "a blocked program must not hang"
