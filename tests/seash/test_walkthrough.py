"""docs/researcher.md's walk-through, taken from the document and run unchanged as seash
scripts against real node managers (sandbox on) found through the DHT."""

from __future__ import annotations

import os
import re
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from nodemanager import open_node_client
from seattlecore import KeyPair, load_public, save_keypair
from tests.support.daemons import node_manager
from tests.support.seash import init_node, wait_advertised

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "researcher.md"
PROMPT = re.compile(r"^\s*(?:\S+@\S+\s+)?!>\s(?P<command>.*)$")
HALF = "resource cpu 0.01\nresource memory 10000000\nresource diskused 100000\n"


def walkthrough() -> dict[int, list[str]]:
    """The prompt lines of each numbered section's code blocks, as written."""
    sections: dict[int, list[str]] = {}
    number, in_block = 0, False
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^## (\d+)\.", line)
        if heading:
            number = int(heading.group(1))
        elif line.startswith("```"):
            in_block = not in_block
        elif in_block and (match := PROMPT.match(line)):
            sections.setdefault(number, []).append(match.group("command"))
    return sections


async def run_script(home: Path, script: Path, cwd: Path, *extra: str) -> trio.Process:
    argv = [sys.executable, "-m", "seash", "--home", str(home), *extra, str(script)]
    return await trio.run_process(argv, cwd=cwd, capture_stdout=True, capture_stderr=True,
                                  check=False, env={**os.environ, "SEASH_PASSPHRASE": "walk"})


def test_the_document_has_the_walkthrough() -> None:
    sections = walkthrough()
    assert sections[2][0].startswith("genkeys alice ")
    assert {3, 4, 5, 6, 7} <= set(sections)
    assert any(line.startswith("wait") for line in sections[5])


async def test_walkthrough_runs_unchanged_as_scripts(tmp_path: Path) -> None:
    sections = walkthrough()
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    bob = KeyPair.generate()
    save_keypair(home, "bob", bob)
    (work / "keys.seash").write_text("\n".join(sections[2]) + "\n")
    (work / "session.seash").write_text("\n".join(c for n in range(3, 8) for c in sections[n]) + "\n")
    (work / "hello.py").write_text((ROOT / "examples" / "hello.py").read_text())
    (work / "half.resources").write_text(HALF)

    keys = await run_script(home, work / "keys.seash", work)
    assert keys.returncode == 0, keys.stdout + keys.stderr
    alice = load_public(home / "alice.publickey")
    states = [tmp_path / f"nm{i}" for i in range(2)]
    for state in states:
        init_node(state, alice.to_text(), vessels=2)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(node_manager(states[0], sandbox=True))
        boot = f"127.0.0.1:{first.dht_port}"
        second = await stack.enter_async_context(node_manager(states[1], bootstrap=[boot],
                                                              sandbox=True))
        await wait_advertised(alice, ("127.0.0.1", first.dht_port or 0), want=4)
        session = await run_script(home, work / "session.seash", work, "--bootstrap", boot)
        output = session.stdout.decode() + session.stderr.decode()
        assert session.returncode == 0, output
        assert "hello from a vessel; args = ['world']" in output
        assert len(list((work / "out").glob("greet.127.0.0.1_*"))) == 4
        assert len(list((work / "out").glob("log.127.0.0.1_*"))) == 4
        assert (work / "session.state").exists()
        for daemon in (first, second):
            async with open_node_client("127.0.0.1", daemon.port) as client:
                info = await client.get_vessels(sign=False)
            assert info.vessels and all(v.owner == bob.public for v in info.vessels)
