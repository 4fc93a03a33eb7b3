"""``seattle-dht`` end to end: a child process runs DHT nodes, the CLI runs as a subprocess."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import trio
from rich.console import Console

from overlay import DhtConfig, LookupResult, dht_loop, open_dht_node, query_status
from overlay.__main__ import lookup_document, main, render_lookup
from seattlecore import KeyPair
from tests.support.dht import ROOT, read_nodes, reap, spawn
from tests.support.polling import eventually


async def run_cli(*argv: str) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = await trio.run_process(
        [sys.executable, "-m", "overlay", *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return proc.returncode, proc.stdout.decode()


@pytest.mark.slow
async def test_cli_against_live_nodes() -> None:
    user = KeyPair.generate().public
    proc = spawn(user.to_text(), [])
    try:
        nodes = await trio.to_thread.run_sync(read_nodes, proc)
        node = f"127.0.0.1:{nodes[0]['port']}"

        async def knows_the_others() -> bool:
            return (await query_status(("127.0.0.1", int(nodes[0]["port"]))))["stats"]["peers"] == 2  # type: ignore[call-overload]

        await eventually(knows_the_others, timeout=10)
        code, out = await run_cli("--json", "lookup", user.to_text(), "--bootstrap", node)
        assert code == 0, out
        doc = json.loads(out)
        assert {c["node_key"] for c in doc["candidates"]} == {n["node_key"] for n in nodes}
        assert doc["rejected"] == [] and len(doc["peers_answered"]) == 3
        assert doc["complete"] is True and doc["queries"] >= 3
        code, out = await run_cli("lookup", user.to_text(), "--bootstrap", node)
        assert code == 0 and "3 verified adverts" in out
        code, out = await run_cli("--json", "status", "--node", node)
        assert code == 0
        assert json.loads(out)["stats"]["peers"] == 2
        code, out = await run_cli("status", "--node", node)
        assert code == 0 and "routing table" in out and "counters" in out
        code, out = await run_cli("--json", "peers", "--node", node)
        assert code == 0 and len(json.loads(out)["peers"]) == 2
        code, out = await run_cli("--json", "crawl", "--bootstrap", node)
        assert code == 0 and json.loads(out)["live"] == 3
        code, out = await run_cli("crawl", "--bootstrap", node)
        assert code == 0 and "live nodes: 3" in out
        code, out = await run_cli("--json", "peers", "--bootstrap", node)  # what crawl finds,
        assert code == 0, out                                              # not the client's table
        walked = json.loads(out)["peers"]
        assert sorted(p["address"] for p in walked) == sorted(f"127.0.0.1:{n['port']}" for n in nodes)
        assert len({p["id"] for p in walked}) == 3
    finally:
        reap(proc)


def test_cli_status_from_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def run_node() -> None:
        async with dht_loop(), open_dht_node(DhtConfig(state_dir=tmp_path)):
            pass

    trio.run(run_node)
    assert main(["--json", "status", "--state", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["peers"] == 0


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lookup", "nothex"]) == 2
    assert main(["status"]) == 2
    assert main(["status", "--state", "/nonexistent/dir"]) == 2


def test_partial_lookup_is_flagged() -> None:
    """A lookup cut by its deadline says so (--json "complete": false; the table says partial)."""
    result = LookupResult(candidates=(), rejected=(), peers_answered=("127.0.0.1:9",), elapsed=5.0,
                          complete=False, queries=7)
    doc = lookup_document(result)
    assert doc["complete"] is False and doc["queries"] == 7
    out = io.StringIO()
    render_lookup(Console(file=out, width=200), doc)
    assert "partial" in out.getvalue()
