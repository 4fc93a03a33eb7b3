"""The experiment API end to end: a loopback testbed of real node managers (sandboxed
vessels), driven through ``Experiment`` (async) and ``BlockingExperiment``, with a node
stopped mid-run; and the all-pairs example producing its CSV and heat map."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from seash.experiment import (
    BlockingExperiment,
    Event,
    Experiment,
    KeepRunning,
    NodeResult,
    Roster,
    Vessel,
    Watcher,
    load_identity,
)
from seash.parse import parse_hostport
from testbed.local import kill_node, load_manifest, start_testbed, stop_all, wait_discoverable
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOOP = 'log("tick", callargs, getmyip())\nwhile True:\n    sleep(0.1)\n'
FAILS = 'log("about to fail")\nraise ValueError("boom")\n'
QUICK = 'handle = openfile("out.txt", True)\nhandle.writeat("result " + callargs[0], 0)\nhandle.close()\n'


@pytest.fixture
async def testbed(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    directory = tmp_path / "tb"
    data = await start_testbed(directory, 3, 2, sandbox=True)
    try:
        key = load_identity(Path(data["demo"]["privatekey"])).public
        await wait_discoverable(data["bootstrap"], key, 3)
        yield data
    finally:
        stop_all(load_manifest(directory)["nodes"])


def programs(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in (("loop.py", LOOP), ("fails.py", FAILS), ("quick.py", QUICK)):
        paths[name] = tmp_path / name
        paths[name].write_text(text)
    return paths


def on_node(vessels: list[Vessel], node: dict[str, Any]) -> set[str]:
    return {v.address for v in vessels if v.node == (node["address"], node["port"])}


async def test_async_api_gives_results_for_the_living_and_a_clear_error_for_a_stopped_node(
        testbed: dict[str, Any], tmp_path: Path) -> None:
    paths = programs(tmp_path)
    identity = load_identity(Path(testbed["demo"]["privatekey"]))
    events: list[Event] = []
    async with Experiment(identity, bootstrap=[parse_hostport(testbed["bootstrap"])],
                          timeout=5) as exp:
        vessels = await exp.find_vessels()
        assert len(vessels) == 6
        loops, fail, quick = vessels[:4], vessels[4], vessels[5]
        watcher = Watcher(exp, vessels, interval=0.3)
        for kind in ("started", "ended", "failed", "unreachable"):
            watcher.on(kind, events.append)
        started = await exp.run(loops, paths["loop.py"], lambda v: [v.name])
        assert [r.status for r in started] == ["ok"] * 4, started
        await watcher.poll()  # loops seen started; the two others fresh
        assert sorted(e.vessel.address for e in events if e.kind == "started") == sorted(
            v.address for v in loops)
        assert [r.ok for r in await exp.run([fail], paths["fails.py"])] == [True]
        assert [r.ok for r in await exp.run([quick], paths["quick.py"], ["7"])] == [True]

        texts = {v.address: "" for v in loops}

        async def logged() -> bool:
            for r in await exp.read_logs(loops):
                texts[r.target] += r.value if r.ok else ""
            return all("tick" in text for text in texts.values())
        await eventually(logged, timeout=30, what="every loop logged")
        for v in loops:  # getmyip() is the node's own address (it listens on 127.N.i.1)
            assert f"tick ['{v.name}'] {v.host}\n" in texts[v.address], texts
        more = await exp.read_logs(loops)  # incremental: nothing new but the same run
        assert all(r.ok and "tick" not in r.value for r in more), more

        victim = next(n for n in testbed["nodes"] if on_node(loops, n))
        dead = on_node(vessels, victim)
        kill_node(victim, crash=False)
        await eventually(lambda: _kinds_seen(watcher, events, dead), timeout=30,
                         what="the watcher's failed, ended and unreachable events")

        stopped = await exp.stop(vessels)
        waited = await exp.wait(vessels, timeout=10)
        files = await exp.download(vessels, "out.txt")
    for results in (stopped, waited):
        for result in results:
            if result.target in dead:
                assert not result.ok and result.error, result
                assert result.error.startswith("node unreachable: "), result
    alive = [r for r in stopped if r.target not in dead]
    assert alive and all(r.ok for r in alive), stopped
    assert {r.target: r.status for r in waited if r.target not in dead} == {
        v.address: ("failed" if v == fail else "ok") for v in vessels if v.address not in dead}
    assert all("boom" in (r.error or "") for r in waited if r.target == fail.address
               and r.target not in dead)
    good = [r for r in files if r.ok]
    assert [r.value for r in good] == ([b"result 7"] if quick.address not in dead else [])


async def _kinds_seen(watcher: Watcher, events: list[Event], dead: set[str]) -> bool:
    await watcher.poll()
    kinds = {(e.kind, e.vessel.address) for e in events}
    unreachable = {address for kind, address in kinds if kind == "unreachable"}
    ended = {kind for kind, _ in kinds if kind in ("ended", "failed")}
    return unreachable == dead and (ended == {"ended", "failed"} or len(ended) == 1)


async def test_blocking_keep_running_replaces_the_vessels_of_a_stopped_node(
        testbed: dict[str, Any], tmp_path: Path) -> None:
    paths = programs(tmp_path)
    identity = load_identity(Path(testbed["demo"]["privatekey"]))
    victim = testbed["nodes"][0]
    lost: list[Event] = []

    def until(roster: Roster) -> bool:  # after each round, in the experiment's thread
        if victim.get("killed") is None:
            victim["killed"] = True
            kill_node(victim, crash=False)
            return False
        return len(roster.active) == 2 and len(roster.retired) == 2

    def scenario() -> tuple[list[Vessel], KeepRunning, list[NodeResult]]:
        with BlockingExperiment(identity, bootstrap=[parse_hostport(testbed["bootstrap"])],
                                timeout=5) as exp:
            found = exp.find_vessels()
            first = sorted(found, key=lambda v: v.node != (victim["address"], victim["port"]))
            keeper = exp.keep_running(2, paths["loop.py"], vessels=first, interval=0.3,
                                      duration=90, until=until,
                                      callbacks={"unreachable": lost.append})
            return found, keeper, exp.status(keeper.roster.active)

    found, keeper, status = await trio.to_thread.run_sync(scenario)
    dead = on_node(found, victim)
    roster = keeper.roster
    assert len(found) == 6 and len(dead) == 2
    assert set(roster.retired) == dead, roster
    assert all(reason.startswith("unreachable") for reason in roster.retired.values()), roster
    assert len(roster.active) == 2 and not {v.address for v in roster.active} & dead
    assert keeper.replaced == 2 and {e.vessel.address for e in lost} == dead
    assert all(r.ok and r.value.status == "Started" for r in status), status


def walkthrough() -> str:
    """The first Python block of docs/experiments.md (its walk-through)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


async def test_walkthrough_and_allpairs_example(testbed: dict[str, Any], tmp_path: Path) -> None:
    """docs/experiments.md's walk-through as written, then examples/allpairs.py: a CSV
    row for every ordered pair, every pair answered, and a PNG."""
    directory = Path(testbed["demo"]["privatekey"]).parents[1]
    (tmp_path / "walk.py").write_text(walkthrough())
    with trio.fail_after(120):
        walk = await trio.run_process([sys.executable, "walk.py"], cwd=tmp_path,
                                      env={**os.environ, "TESTBED": str(directory)},
                                      capture_stdout=True, capture_stderr=True, check=False)
    printed = walk.stdout.decode()
    assert walk.returncode == 0, printed + walk.stderr.decode()
    assert printed.startswith("6 vessels: ") and printed.count(" ok Started") == 6, printed
    assert printed.count(": Terminated") == 6 and printed.count('"hello [') == 6, printed
    assert all(f"b'result {v}'" in printed for v in ("v1", "v2")), printed

    out = tmp_path / "out"
    with trio.fail_after(300):
        run = await trio.run_process(
            [sys.executable, str(EXAMPLES / "allpairs.py"), "--testbed", str(directory),
             "--out", str(out),
             "--seconds", "60"], capture_stdout=True, capture_stderr=True, check=False)
    assert run.returncode == 0, (run.stdout + run.stderr).decode()
    with (out / "latency.csv").open() as source:
        rows = list(csv.DictReader(source))
    vessels = {r["source"] for r in rows}
    assert len(vessels) == 6
    assert {(r["source"], r["destination"]) for r in rows} == {
        (a, b) for a in vessels for b in vessels if a != b}
    answered = [r for r in rows if r["status"] == "ok"]
    assert len(answered) == 30, [r for r in rows if r["status"] != "ok"]
    assert all(float(r["median_ms"]) > 0 and int(r["received"]) >= 1 for r in answered)
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
