"""Every ``set`` subcommand against a real node manager: with ``-c`` and in the interactive
shell, which must survive each one (it once died of a TypeError after ``set owner``)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pexpect
import pytest
import trio

from nodemanager import NodeInfo
from seattlecore import KeyPair
from tests.support.seash import TwoKeys, alice_and_bob, node_view, seash

pytestmark = pytest.mark.slow

SETS = [
    "on %1 set ownerinfo course 101",
    "on %1 set advertise off",
    "on %2 set advertise yes",
    "on %1 set users bob",
    "on %2 set owner bob",
    "set timeout 3",
    "set uploadrate 5000",
    "set concurrency 4",
    "set bootstrap 127.0.0.1:9 127.0.0.1:10",
]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[TwoKeys]:
    async with alice_and_bob(tmp_path) as node:
        yield node


def _check_applied(info: NodeInfo, bob: KeyPair) -> None:
    v1, v2 = info.vessels
    assert v1.owner_info == "course 101" and not v1.advertise and v1.users == (bob.public,)
    assert v2.advertise and v2.owner == bob.public


async def test_every_set_with_dash_c(tmp_path: Path, setup: TwoKeys) -> None:
    script = "; ".join(["loadkeys alice", "loadpub bob", f"contact 127.0.0.1:{setup.port}",
                        "list", *SETS, "show info", "show timeout"])
    run = await seash(setup.home, script, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    for line in SETS[:5]:
        assert [r["status"] for r in run.doc(line)["results"]] == ["ok"], line
    info = {row["id"]: row for row in run.doc("show info")["tables"][0]["rows"]}
    assert info["%1"]["ownerinfo"] == "course 101" and info["%1"]["advertise"] == "off"
    assert info["%1"]["users"] == "bob" and info["%2"]["owner"] == "bob"
    settings = {r["setting"]: r["value"] for r in run.doc("show timeout")["tables"][0]["rows"]}
    assert settings == {"timeout": "3 s", "uploadrate": "5000 B/s", "concurrency": "4",
                        "bootstrap": "127.0.0.1:9 127.0.0.1:10"}
    _check_applied(await node_view(setup.port, setup.alice), setup.bob)


def _interactive(home: Path, cwd: Path, port: int) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "seash", "--home", str(home)], cwd=str(cwd),
                          encoding="utf-8", timeout=20, dimensions=(40, 200),
                          env={"TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    try:
        child.expect_exact("@%all !> ")
        for line in ["loadkeys alice", "loadpub bob", f"contact 127.0.0.1:{port}", "list",
                     "add %1 to mine"]:
            child.sendline(line)
            child.expect_exact("alice@%all !> ")
        for line in SETS:
            child.sendline(line)
            child.expect_exact("alice@%all !> ")
            assert "Traceback" not in (child.before or ""), child.before
            assert "error" not in (child.before or ""), (line, child.before)
        child.sendline("show groups")      # the session (and its groups) survived every set
        child.expect(r"mine\s+%1")
        child.expect_exact("alice@%all !> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


async def test_every_set_in_the_interactive_shell(tmp_path: Path, setup: TwoKeys) -> None:
    await trio.to_thread.run_sync(_interactive, setup.home, tmp_path, setup.port)
    _check_applied(await node_view(setup.port, setup.alice), setup.bob)
