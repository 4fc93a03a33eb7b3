"""Programs through seash against a real node manager with the real sandbox: logs print
each byte once (and say what was not kept), compile errors fail the command, ``wait``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seattlecore import KeyPair, save_keypair
from tests.support.daemons import node_manager
from tests.support.seash import RESOURCES, SeashRun, init_node, seash

pytestmark = pytest.mark.slow

LINES = 20_000
BIG = f'i = 0\nwhile i < {LINES}:\n    log("line %06d" % i)\n    i += 1\nlog("DONE")\n'
EXPECTED = "".join(f"line {i:06d}\n" for i in range(LINES)) + "DONE\n"
GAP = re.compile(r"^\[\.\.\. ([\d,]+) bytes not kept \.\.\.\]$")
PROGRAMS = {
    "big.py": BIG,
    "bad.py": "import os\n",
    "loop.py": "while True:\n    sleep(0.05)\n",
    "fail.py": 'log("about to fail")\nraise ValueError("on purpose")\n',
    "hello.py": 'log("hello", callargs)\n',
}


def rebuild(text: str) -> tuple[int, int]:
    """Check ``text`` against EXPECTED: every printed byte in order and once, gaps exact.

    Returns (bytes printed, bytes reported as not kept)."""
    position = printed = dropped = 0
    pieces = re.split(r"(\[\.\.\. [\d,]+ bytes not kept \.\.\.\]\n)", text)
    for piece in pieces:
        gap = GAP.match(piece.rstrip("\n"))
        if gap:
            count = int(gap.group(1).replace(",", ""))
            position += count
            dropped += count
            continue
        if EXPECTED.startswith(piece, position):
            pass
        elif piece.endswith("\n") and EXPECTED.startswith(piece[:-1], position):
            piece = piece[:-1]  # the newline seash adds to end a line cut by a gap
        else:
            raise AssertionError(f"bytes out of order at {position}: {piece[:40]!r}")
        position += len(piece)
        printed += len(piece)
    assert position == len(EXPECTED), (position, len(EXPECTED))
    return printed, dropped


def per_target(run: SeashRun, command: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for result in run.doc(command)["results"]:
        texts[result["target"]] = texts.get(result["target"], "") + (result["value"] or "")
    return texts


async def test_logs_compile_errors_and_wait(tmp_path: Path) -> None:
    home = tmp_path / "home"
    alice = KeyPair.generate()
    save_keypair(home, "alice", alice)
    for name, text in PROGRAMS.items():
        (tmp_path / name).write_text(text)
    state = tmp_path / "nm"
    fast = RESOURCES.replace("resource lograte 30000", "resource lograte 2000000")
    init_node(state, alice.public.to_text(), vessels=2, resources=fast)
    async with node_manager(state, sandbox=True, dht=False) as nm:
        contact = f"loadkeys alice; contact 127.0.0.1:{nm.port}"
        follow = await seash(home, f"{contact}; run big.py; show log --follow; wait; show log",
                             cwd=tmp_path)
        assert follow.returncode == 0, follow.stdout + follow.stderr
        for target, text in per_target(follow, "show log --follow").items():
            printed, dropped = rebuild(text)
            assert printed + dropped == len(EXPECTED) and dropped > 0, target
        for text in per_target(follow, "show log").values():
            assert text.startswith("[... ") and text.endswith("DONE\n")
            rebuild(text)

        bad = await seash(home, f"{contact}; on %1 run bad.py", cwd=tmp_path)
        assert bad.returncode == 1
        row = bad.doc("on %1 run bad.py")["results"][-1]
        assert row["status"] == "failed" and row["error"].startswith("program does not compile: Line 1")

        waits = await seash(home, f"{contact}; on %2 run loop.py slow 1; list; show info; "
                            "on %2 wait --for 1; on %2 stop; on %1 run fail.py; on %1 wait; "
                            "on %1 run hello.py a b; wait", cwd=tmp_path)
        assert waits.returncode == 1
        listing = {r["target"]: r["value"] for r in waits.doc("list")["results"]}
        assert listing["%2"]["program"] == "loop.py" and listing["%2"]["args"] == ["slow", "1"]
        info = {row["id"]: row for row in waits.doc("show info")["tables"][0]["rows"]}
        assert info["%2"]["program"] == "loop.py slow 1"
        [slow] = waits.doc("on %2 wait --for 1")["results"]
        assert slow["status"] == "timeout" and "still runs after 1 s" in slow["error"]
        [failed] = waits.doc("on %1 wait")["results"]
        assert failed["status"] == "failed" and "fail.py failed" in failed["error"]
        assert [r["status"] for r in waits.doc("wait")["results"]] == ["ok", "ok"]
        assert waits.doc("wait")["ok"] is True
