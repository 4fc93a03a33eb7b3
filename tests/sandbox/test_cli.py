"""``seattle-sandbox`` as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

ROOT = Path(__file__).parents[2]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=cwd, capture_output=True, text=True,
        timeout=60, check=False,
    )


def test_runs_example_and_exits_zero() -> None:
    result = _run("run", "examples/hello.py", "alpha", "beta")
    assert result.returncode == 0, result.stderr
    assert "hello from a vessel; args = ['alpha', 'beta']" in result.stdout


def test_compile_error_is_one_line_and_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\nimport os\n")
    result = _run("run", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "seattle-sandbox: Terminated: compile error: Line 2: import statements are not "
        "allowed in vessels; the Repy API is built in."
    )
    assert "Traceback" not in result.stderr


def test_limit_stop_and_policy_violation(tmp_path: Path) -> None:
    res = tmp_path / "tiny.resources"
    res.write_text("resource cpu 0.5\nresource memory 10000000\nresource diskused 100000\n")
    hog = tmp_path / "hog.py"
    hog.write_text("x = []\nwhile True:\n    x.append('y' * 1000000)\n")
    result = _run("run", "--resources", str(res), str(hog))
    assert result.returncode == 1
    assert "memory limit" in result.stderr
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("log.planted = 1\n")
    result = _run("run", str(sneaky))
    assert result.returncode == 1 and "uncaught" in result.stderr


def test_timeout_stops_a_running_program(tmp_path: Path) -> None:
    loop = tmp_path / "loop.py"
    loop.write_text("while True:\n    sleep(0.1)\n")
    result = _run("run", "--timeout", "1", str(loop))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "seattle-sandbox: timed out after 1 s"


def test_bad_resource_file_is_a_clear_error(tmp_path: Path) -> None:
    res = tmp_path / "bad.resources"
    res.write_text("resource cpu lots\n")
    result = _run("run", "--resources", str(res), "examples/hello.py")
    assert result.returncode == 2
    assert "line 1" in result.stderr and "Traceback" not in result.stderr
    res.write_text("resource cpu 0.5\nresource memory 150000000.5\nresource diskused 1000000\n")
    result = _run("run", "--resources", str(res), "examples/hello.py")
    assert result.returncode == 2 and "line 2: memory 150000000.5 would be rounded" in result.stderr


def test_check_subcommand(tmp_path: Path) -> None:
    assert _run("check", "examples/hello.py").returncode == 0
    bad = tmp_path / "bad.py"
    bad.write_text("().__class__\n")
    result = _run("check", str(bad))
    assert result.returncode == 1 and "Line 1" in result.stderr


def test_run_streams_all_output_past_the_ring(tmp_path: Path) -> None:
    """200 KiB of output (12x the kept ring) then DONE: every line printed, once, in order."""
    chatty = tmp_path / "chatty.py"
    chatty.write_text(
        "for i in range(4000):\n"
        "    log('line %05d %s\\n' % (i, 'x' * 40))\n"
        "log('DONE\\n')\n")
    res = tmp_path / "fast.resources"
    res.write_text((ROOT / "sandbox" / "default.resources").read_text()
                   .replace("resource lograte", "#") + "\nresource lograte 100000000\n")
    result = _run("run", "--resources", str(res), str(chatty))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines[-1] == "DONE"
    assert lines[:-1] == [f"line {i:05d} {'x' * 40}" for i in range(4000)]
    assert len(result.stdout) > 200_000


def test_run_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    endless = tmp_path / "endless.py"
    endless.write_text("while True:\n    log('y' * 100 + '\\n')\n    sleep(0.001)\n")
    shell = f"{sys.executable} -m sandbox run {endless} | head -n 3; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.stdout.startswith("y" * 100) and set(result.stdout) == {"y", "\n"}
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode == 0, result.stderr  # quietly: the reader chose to stop


def test_an_unreadable_program_is_bad_usage(tmp_path: Path) -> None:
    """docs/sandbox.md: 2 for an unreadable program (or resource file), one line, for
    ``run`` and ``check`` alike."""
    for argv in (["run", "nope.py"], ["check", "nope.py"],
                 ["run", "--resources", str(tmp_path / "none.resources"), "examples/hello.py"]):
        result = _run(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.count("\n") == 1 and "No such file or directory" in result.stderr


def test_exitall_is_a_normal_end(tmp_path: Path) -> None:
    early = tmp_path / "early.py"
    early.write_text("log('bye\\n')\nexitall()\nlog('never\\n')\n")
    result = _run("run", str(early))
    assert result.returncode == 0, result.stderr
    assert "bye" in result.stdout and "never" not in result.stdout
