"""docs/researcher.md's walk-through, taken from the document and run unchanged as seash
scripts against real node managers (sandbox on) found through the DHT."""

from __future__ import annotations

import os
import re
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from installer import complete_shares
from installer.donor.plan import MachineProfile, donated_resources, max_resources, vessel_tables
from installer.planner.spec import VesselShare
from nodemanager import open_node_client
from sandbox import DEFAULT_OFFCUT
from seattlecore import KeyPair, PublicKey, load_public, save_keypair
from tests.support.daemons import init_node as init_spec
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


def planner_spec(alice: PublicKey, carol: PublicKey, planner: PublicKey) -> dict[str, Any]:
    """A node as docs/planner.md builds it: alice's 40 % vessel (carol a user), carol's
    30 %, the planner's reserved 30 %, cut from a fixed machine by the installer's own rule."""
    shares = complete_shares([VesselShare(percent=40, owner=alice, users=(carol,)),
                              VesselShare(percent=30, owner=carol)], planner)
    machine = MachineProfile(cores=2, memory=4 << 30, disk_free=10 << 30, fd_limit=3000)
    tables = vessel_tables(shares, donated_resources(max_resources(machine), 10))
    return {"offcut": DEFAULT_OFFCUT.to_text(),
            "vessels": [{"name": f"v{i}", "owner": share.owner.to_text(),
                         "users": [u.to_text() for u in share.users], "resources": table.as_dict()}
                        for i, (share, table) in enumerate(zip(shares, tables, strict=True), 1)]}


@pytest.mark.parametrize("layout", ["planner", "two-each"])
async def test_walkthrough_runs_unchanged_as_scripts(tmp_path: Path, layout: str) -> None:
    """On a planner-built network (one vessel of alice per node) and on two per node."""
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
    per_node = 1 if layout == "planner" else 2
    states = [tmp_path / f"nm{i}" for i in range(2)]
    for state in states:
        if layout == "planner":
            init_spec(state, planner_spec(alice, KeyPair.generate().public,
                                          KeyPair.generate().public))
        else:
            init_node(state, alice.to_text(), vessels=2)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(node_manager(states[0], sandbox=True))
        boot = f"127.0.0.1:{first.dht_port}"
        second = await stack.enter_async_context(node_manager(states[1], bootstrap=[boot],
                                                              sandbox=True))
        await wait_advertised(alice, ("127.0.0.1", first.dht_port or 0), want=2 * per_node)
        session = await run_script(home, work / "session.seash", work, "--bootstrap", boot)
        output = session.stdout.decode() + session.stderr.decode()
        assert session.returncode == 0, output
        assert "hello from a vessel; args = ['world']" in output
        assert "joined into" in output
        assert len(list((work / "out").glob("greet.127.0.0.1_*"))) == 2 * per_node
        assert len(list((work / "out").glob("log.127.0.0.1_*"))) == 2 * per_node
        assert (work / "session.state").exists()
        for daemon in (first, second):
            async with open_node_client("127.0.0.1", daemon.port) as client:
                info = await client.get_vessels(sign=False)
            owners = [v.owner for v in info.vessels]
            assert alice not in owners and owners.count(bob.public) >= 1, owners
