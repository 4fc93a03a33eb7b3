"""End to end: real node managers and DHT nodes on loopback, seash driven by scripts."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from seattlecore import load_public
from tests.support.seash import Daemon, daemon, init_node, seash, wait_advertised

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HALF = ("resource cpu 0.05\nresource memory 20000000\nresource diskused 500000\n"
        "resource events 5\nresource filewrite 10000\nresource fileread 10000\n"
        "resource filesopened 3\nresource lograte 5000\n")
LOOP = "while True:\n    sleep(0.05)\n"
PASS = {"SEASH_PASSPHRASE": "test passphrase"}


async def test_researcher_session(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    keys = await seash(home, "genkeys alice; genkeys bob", cwd=work, json_output=False)
    assert keys.returncode == 0, keys.stderr
    alice = load_public(home / "alice.publickey")
    (work / "hello.py").write_text((EXAMPLES / "hello.py").read_text())
    (work / "loop.py").write_text(LOOP)
    (work / "half.resources").write_text(HALF)
    (work / "note.txt").write_text("from bob\n")

    states = [tmp_path / f"nm{i}" for i in range(3)]
    for state in states:
        init_node(state, alice.to_text(), vessels=2)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(daemon(states[0], [], sandbox=True))
        boot = f"127.0.0.1:{first.dht_port}"
        daemons: list[Daemon] = [first]
        for state in states[1:]:
            daemons.append(await stack.enter_async_context(daemon(state, [boot], sandbox=True)))
        await wait_advertised(alice, ("127.0.0.1", first.dht_port), want=6)

        run = await seash(home, """
            loadkeys alice; loadpub bob
            browse
            list
            run hello.py world
            show log --for 2.5
            download greeting.txt greeting
            on %1 split half.resources
            on split2 set users bob
            on split2 run loop.py
            on split2 stop
            savestate session.state
        """, cwd=work, bootstrap=boot, env=PASS)
        assert run.returncode == 0, run.stdout + run.stderr
        browse = run.doc("browse")
        assert browse["summaries"][0]["ok"] == 3
        listing = run.doc("list")
        assert len(listing["results"]) == 6
        assert all(r["status"] == "ok" for r in listing["results"])
        assert {r["address"].rsplit(":", 1)[0] for r in listing["results"]} == {
            f"127.0.0.1:{d.port}" for d in daemons}
        assert [s["ok"] for s in run.doc("run hello.py world")["summaries"]] == [6, 6]
        logs: dict[str, str] = {}
        for result in run.doc("show log --for 2.5")["results"]:
            logs[result["target"]] = logs.get(result["target"], "") + (result["value"] or "")
        assert len(logs) == 6 and all("hello from a vessel" in text and "world" in text
                                      for text in logs.values()), logs
        downloads = sorted(p.name for p in work.glob("greeting.*"))
        assert len(downloads) == 6
        assert all((work / name).read_text() == "written inside the vessel\n" for name in downloads)
        split = run.doc("on %1 split half.resources")
        assert split["results"][0]["status"] == "ok" and "split1" in split["text"][0]
        assert run.doc("on split2 stop")["results"][0]["status"] == "ok"

        # bob, now a user of the split-off vessel, finds and uses exactly that vessel
        await wait_advertised(load_public(home / "bob.publickey"), ("127.0.0.1", first.dht_port), 1)
        bob = await seash(home, "loadkeys bob; browse; list; update; upload note.txt; "
                          "cat note.txt; split half.resources", cwd=work, bootstrap=boot)
        assert bob.returncode == 1  # split: a user is not the owner
        assert len(bob.doc("list")["results"]) == 1
        assert bob.doc("update")["summaries"][0]["command"] == "update"  # its own summary
        assert bob.doc("cat note.txt")["results"][0]["value"] == "from bob\n"
        denied = bob.doc("split half.resources")["results"][0]
        assert denied["status"] == "failed" and denied["error"].startswith("permission denied")

        # a paused node times out; the others answer at once and the state reloads
        daemons[1].pause()
        start = trio.current_time()
        later = await seash(home, "loadstate session.state; set timeout 1.5; list", cwd=work,
                            env=PASS)
        elapsed = trio.current_time() - start
        daemons[1].resume()
        assert later.returncode == 1
        results = later.doc("list")["results"]
        assert len(results) == 7  # 6 vessels, one of them split in two
        paused = f"127.0.0.1:{daemons[1].port}:"
        for result in results:
            expected = "timeout" if result["address"].startswith(paused) else "ok"
            assert result["status"] == expected, later.stdout
        assert elapsed < 8


async def test_clear_errors_never_tracebacks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cases = {
        "loadkeys nobody": "no key file nobody.privatekey",
        "browse": "no identity loaded",
        "genkeys a; browse": "no DHT bootstrap configured",
        "genkeys b; set bootstrap 127.0.0.1:9; set timeout 1; browse": "DHT unreachable",
        "genkeys c; contact 127.0.0.1:9": "node unreachable",
        "genkeys d; list": "has no vessels",
        "on %7": "no vessel %7",
        "upload missing.txt": "cannot read missing.txt",
        "savestate x": "no passphrase",
    }
    for script, message in cases.items():
        result = await seash(home, script, cwd=tmp_path, json_output=False,
                             env={"SEASH_PASSPHRASE": ""} if "savestate" in script else None)
        output = result.stdout + result.stderr
        assert result.returncode == 1, script
        assert message in output, (script, output)
        assert "Traceback" not in output, output
    assert os.path.exists(home / "a.publickey")
