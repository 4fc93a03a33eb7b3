"""The interactive prompt under a pseudo-terminal: prompt, tab completion, Ctrl-C, exit."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest

pytestmark = pytest.mark.slow


def test_prompt_completion_and_history(tmp_path: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "seash", "--home", str(tmp_path / "home")],
                          cwd=str(tmp_path), encoding="utf-8", timeout=15,
                          env={"TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          dimensions=(40, 200))
    try:
        child.expect_exact("@%all !> ")
        child.sendline("genkeys alice")
        child.expect("generated alice")
        child.expect_exact("alice@%all !> ")
        child.send("sho\t")                      # unique: completes to 'show '
        child.send("ident\t")                    # -> 'show identities '
        child.sendline("")
        child.expect(r"\* alice")
        child.expect_exact("alice@%all !> ")
        child.send("show lo\t--fo\t\t")           # two candidates: --follow / --for
        child.expect("--follow")
        child.expect("--for")
        child.sendcontrol("u")
        child.sendline("")
        child.expect_exact("alice@%all !> ")
        child.send("as al\t")
        child.sendline("")
        child.expect_exact("alice@%all !> ")
        child.sendline("on %3")
        child.expect("no vessel %3")
        child.send("\x1b[A")                      # readline history: the previous line
        child.sendcontrol("a")
        child.send("help ")
        child.sendline("")
        child.expect("usage: on TARGET")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert (tmp_path / "home" / "history").exists()
