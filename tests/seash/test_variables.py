"""Variables and autosave against a real node manager: ``seash -c``, script files and the
interactive prompt; hostile values (separators, commands, quotes, huge, self-reference)."""

from __future__ import annotations

import random
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pexpect
import pytest
import trio

from seash.settings import AUTOSAVE_FILE, restore_autosave
from seash.statefile import encode_autosave
from tests.support.seash import SeashRun, TwoKeys, alice_and_bob, node_view, seash

pytestmark = pytest.mark.slow


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[TwoKeys]:
    (tmp_path / "hello.txt").write_text("hello from a variable\n")
    async with alice_and_bob(tmp_path) as node:
        yield node


def _variables(run: SeashRun, command: str = "show variables") -> dict[str, str]:
    return {r["name"]: r["value"] for t in run.doc(command)["tables"] for r in t["rows"]}


def _start(setup: TwoKeys) -> str:
    return f"loadkeys alice; loadpub bob; contact 127.0.0.1:{setup.port}"


async def test_variables_in_dash_c(tmp_path: Path, setup: TwoKeys) -> None:
    script = "; ".join([
        _start(setup), "set prog hello.txt", "set greeting 'hi  there'", "set price '$5'",
        "set copy $price", "set both ${prog}-$price", "show variables",
        "upload $prog", "on %1 cat ${prog}", "on %2 set ownerinfo $greeting",
        "unset greeting copy", "show variables"])
    run = await seash(setup.home, script, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    first = run.docs[[d["command"] for d in run.docs].index("show variables")]
    assert {r["name"]: r["value"] for r in first["tables"][0]["rows"]} == {
        "prog": "hello.txt", "greeting": "hi  there", "price": "$5", "copy": "$5",
        "both": "hello.txt-$5"}
    assert [r["status"] for r in run.doc("upload $prog")["results"]] == ["ok", "ok"]
    assert "hello from a variable" in run.doc("on %1 cat ${prog}")["results"][0]["value"]
    assert _variables(run) == {"prog": "hello.txt", "price": "$5", "both": "hello.txt-$5"}
    info = await node_view(setup.port, setup.alice)
    assert info.vessels[1].owner_info == "hi  there"


async def test_undefined_and_unknown_are_errors(tmp_path: Path, setup: TwoKeys) -> None:
    run = await seash(setup.home, "; ".join([
        _start(setup), "on %1 cat $nothere", "unset nothere", "set timout 3", "show variables",
        "set variable timout 3", "show timeout"]), cwd=tmp_path)
    assert run.returncode == 1
    assert "undefined variable $nothere" in run.doc("on %1 cat $nothere")["error"]
    assert run.doc("on %1 cat $nothere")["results"] == []      # nothing was sent
    assert "no variable nothere" in run.doc("unset nothere")["error"]
    assert "did you mean 'timeout'?" in run.doc("set timout 3")["error"]
    assert _variables(run) == {}
    assert run.doc("set variable timout 3")["ok"]
    rows = run.doc("show timeout")["tables"][0]["rows"]
    assert {r["setting"]: r["value"] for r in rows}["timeout"] == "10 s"


async def test_values_cannot_inject_commands(tmp_path: Path, setup: TwoKeys) -> None:
    """An attacker-chosen value (separators, a whole command, quotes, comments, dollars)
    stays one word wherever it is used: no second command runs, no vessel changes hands."""
    evil = "x; on %1 set owner bob # \"' $prog ${prog} \\"
    quoted = "'" + evil.replace("'", "'\\''") + "'"        # POSIX quoting of the value
    lines = [*_start(setup).split("; "), "set prog hello.txt", f"set evil {quoted}",
             "set cmd 'set owner bob'", "on %1 set ownerinfo $evil", "on %2 $cmd", "on %2 $evil",
             "as $cmd list", "show variables"]
    run = await seash(setup.home, "; ".join(lines), cwd=tmp_path)
    assert _variables(run)["evil"] == evil
    assert _variables(run)["cmd"] == "set owner bob"
    assert "unknown command 'set owner bob'" in run.doc("on %2 $cmd")["error"]
    assert "unknown command" in run.doc("on %2 $evil")["error"]
    assert "unknown identity 'set owner bob'" in run.doc("as $cmd list")["error"]
    info = await node_view(setup.port, setup.alice)
    assert [v.owner for v in info.vessels] == [setup.alice.public] * 2
    assert info.vessels[0].owner_info == evil
    commands = [d["command"] for d in run.docs]
    assert commands == lines                              # one document per command line


async def test_huge_and_self_referencing_values(tmp_path: Path, setup: TwoKeys) -> None:
    half = "y" * 40_000
    script = "; ".join([
        _start(setup), f"set big {'z' * 70_000}", f"set half {half}", "set dbl $half$half",
        "set A $A", "set B x", "set B $B$B", "set B '$B'", "on %1 cat $B", "show variables"])
    run = await seash(setup.home, script, cwd=tmp_path)
    assert "at most 65536" in run.doc(f"set big {'z' * 70_000}")["error"]
    assert "at most 65536" in run.doc("set dbl $half$half")["error"]
    assert "undefined variable $A" in run.doc("set A $A")["error"]
    shown = _variables(run)
    assert set(shown) == {"half", "B"}
    assert shown["B"] == "$B"                               # stored literally, never re-read
    assert shown["half"] == "y" * 200 + "... (40000 characters)"
    # '$B' is a name vessels refuse: the node says so, no expansion loop
    assert "illegal filename '$B'" in run.doc("on %1 cat $B")["results"][0]["error"]


async def test_script_file_and_autosave_across_runs(tmp_path: Path, setup: TwoKeys) -> None:
    script = tmp_path / "deploy.seash"
    script.write_text(f"{_start(setup)}\nset prog hello.txt  # the program\n"
                      "set autosave on\nadd %2 to mine\non mine\nupload $prog\n")
    done = await trio.run_process([sys.executable, "-m", "seash", "--home", str(setup.home),
                                   "--json", str(script)], cwd=tmp_path, capture_stdout=True,
                                  capture_stderr=True, check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    saved = setup.home / AUTOSAVE_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert not list(setup.home.glob(".autosave*"))            # no temp file left behind

    # a second seash: no loadkeys, no contact; identities, target, group and variables are back
    run = await seash(setup.home, "show variables; show identities; cat $prog; set autosave off",
                      cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _variables(run) == {"prog": "hello.txt"}
    assert [r["target"] for r in run.doc("cat $prog")["results"]] == ["%2"]
    assert not saved.exists()
    again = await seash(setup.home, "show variables", cwd=tmp_path)
    assert _variables(again) == {}


async def test_damaged_autosave_is_ignored_with_a_warning(tmp_path: Path, setup: TwoKeys) -> None:
    saved = setup.home / AUTOSAVE_FILE
    saved.write_bytes(b"seash-autosave 1\n{\"identities\": [tru")
    run = await seash(setup.home, "show variables", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "warning: ignored the damaged autosave file" in run.stderr
    assert (setup.home / (AUTOSAVE_FILE + ".corrupt")).exists() and not saved.exists()
    quiet = await seash(setup.home, "show variables", cwd=tmp_path)
    assert "warning" not in quiet.stderr                   # warned once


def test_restore_survives_every_kind_of_damage(tmp_path: Path) -> None:
    """A seeded fuzzer damages a valid autosave file (flips, cuts, wrong types): restoring
    never raises, and yields the saved session or a fresh one with a warning."""
    from seash.session import Session

    session = Session()
    session.variables = {"a": "1", "b": "two words"}
    session.settings.autosave = True
    good = encode_autosave(session.to_dict())
    rng = random.Random(23)
    path = tmp_path / AUTOSAVE_FILE
    outcomes = {"restored": 0, "warned": 0}
    for _ in range(300):
        blob = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(blob))
            choice = rng.random()
            if choice < 0.4:
                blob[where] = rng.randrange(256)
            elif choice < 0.7:
                del blob[where:]
            else:
                blob[where:where] = rng.choice([b"null", b"[]", b"{}", b"1e999", b'"x"', b"-1"])
            if not blob:
                break
        path.write_bytes(bytes(blob))
        restored, warning = restore_autosave(tmp_path)
        outcomes["warned" if warning else "restored"] += 1
        if warning:
            assert restored.variables == {} and not path.exists()
    assert outcomes["warned"] > 100


async def test_interactive_variables_and_autosave(tmp_path: Path, setup: TwoKeys) -> None:
    await trio.to_thread.run_sync(_interactive, tmp_path, setup)


def _interactive(tmp_path: Path, setup: TwoKeys) -> None:
    def spawn() -> pexpect.spawn:
        return pexpect.spawn(sys.executable, ["-m", "seash", "--home", str(setup.home)],
                             cwd=str(tmp_path), encoding="utf-8", timeout=20,
                             env={"TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                             dimensions=(40, 200))

    child = spawn()
    try:
        child.expect_exact("@%all !> ")
        child.sendline(_start(setup).replace("; ", "\n"))
        child.expect("2 of 2 vessels usable")
        child.expect_exact("alice@%all !> ")
        child.sendline("set prog hello.txt")
        child.expect_exact("alice@%all !> ")
        child.sendline("on %1 upload $prog")
        child.expect("uploaded hello.txt")
        child.sendline("on %1 cat $prog")
        child.expect("hello from a variable")
        child.sendline("cat $nope")
        child.expect(r"undefined variable \$nope")
        child.sendline("show variables")
        child.expect(r"prog\s+hello.txt")
        child.sendline("set autosave on")
        child.expect("autosave on")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    child = spawn()
    try:
        child.expect_exact("alice@%all !> ")               # the identity is back
        child.sendline("show variables")
        child.expect(r"prog\s+hello.txt")
        child.sendline("on %2 cat $prog")
        child.expect("no such file")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
