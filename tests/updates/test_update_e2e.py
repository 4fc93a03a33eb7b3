"""Signed peer-to-peer updates between real managed installs (private venvs, launchers).

Two donors run version V1 (this checkout's version) from a self-contained installer. Version
2 is published at donor A only; B finds A through the DHT, verifies everything with TUF, and
both switch, restart, prove health and restart the running program with its arguments. Then
version 3, which crashes at start, is published at A: A stages it, its launcher rolls back to
2 and marks 3 bad, and A keeps serving on 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from installer.donor.procs import read_int_file
from installer.packing.wheels import Wheelhouse, project_source
from installer.release.commands import publish_repo
from nodemanager import open_node_client
from seattlecore import KeyPair, save_keypair
from testbed.local import start_testbed, stop_all
from testbed.updates import (
    Repo,
    build_installer,
    create_repo,
    events,
    install_nodes,
    read_node,
    release,
    stop_node,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.slow
INTERVAL = 2.0

CRASH = ('\nimport sys as _sys\n'
         'if "--updates" in _sys.argv:\n'
         '    raise SystemExit("this release crashes at start")\n')


def crash_at_start(source: Path) -> None:
    main = source / "nodemanager" / "__main__.py"
    main.write_text(main.read_text().replace("\ndef main(", CRASH + "\ndef main(", 1))


async def node_answers(prefix: Path, keys: KeyPair) -> tuple[str, dict[str, object] | None, bytes]:
    """Signed GetNodeStatus and the v1 log: (version, updates map, log)."""
    port = read_int_file(prefix / "state" / "nodemanager.port")
    assert port is not None
    async with open_node_client("127.0.0.1", port, identity=keys, timeout=10) as client:
        status = await client.get_node_status()
        log = await client.read_log("v1")
    return status.version, dict(status.updates or {}), log


async def test_update_spreads_and_a_crashing_release_rolls_back(
        tmp_path: Path, wheelhouse: Wheelhouse, donor_env: dict[str, str]) -> None:
    repo = create_repo(tmp_path / "release")
    planner = KeyPair.generate()
    save_keypair(tmp_path, "planner", planner)
    seed = await start_testbed(tmp_path / "seed", 1, vessels=1, sandbox=False)
    prefixes = [tmp_path / "a", tmp_path / "b"]
    try:
        with trio.fail_after(270):  # ends before pytest's timeout, so finally cleans up
            await scenario(tmp_path, wheelhouse, donor_env, repo, planner, seed, prefixes)
    finally:
        for prefix in prefixes:
            await trio.to_thread.run_sync(stop_node, prefix)
        stop_all(seed["nodes"])


async def scenario(tmp_path: Path, wheelhouse: Wheelhouse, donor_env: dict[str, str], repo: Repo,
                   planner: KeyPair, seed: dict[str, Any], prefixes: list[Path]) -> None:
    source = project_source()
    assert source is not None
    pyz = build_installer(tmp_path, wheelhouse, planner, root=repo.root,
                          bootstrap=[seed["bootstrap"]])
    await install_nodes(pyz, tmp_path / "planner.publickey", prefixes, interval=INTERVAL,
                        env=donor_env)
    v1 = wheelhouse.version
    assert all(read_node(p).current == v1 for p in prefixes)
    for prefix in prefixes:  # a program with arguments, to be restarted after the switch
        port = read_int_file(prefix / "state" / "nodemanager.port")
        assert port is not None
        async with open_node_client("127.0.0.1", port, identity=planner) as client:
            await client.add_file("v1", "tick.py", b"log('args=' + ','.join(callargs) + '\\n')\n"
                                  b"while True:\n    sleep(0.5)\n")
            await client.add_file("v1", "kept.txt", b"vessel state survives\n")
            await client.start_vessel("v1", "tick.py", ["alpha", "beta"])

    await trio.to_thread.run_sync(lambda: release(repo, "2", wheelhouse, source))
    publish_repo(repo.repo, prefixes[0])
    await eventually(lambda: all(read_node(p).healthy_on == "2" for p in prefixes),
                     timeout=240, interval=0.25, what="both on 2")
    for prefix in prefixes:
        version, updates, log = await node_answers(prefix, planner)
        assert version.endswith(" 2") and updates is not None
        assert updates["running"] == "2" and updates["latest_verified"] == "2"
        assert b"args=alpha,beta" in log
        port = read_int_file(prefix / "state" / "nodemanager.port")
        assert port is not None
        async with open_node_client("127.0.0.1", port, identity=planner) as client:
            (vessel,) = [v for v in (await client.get_vessels()).vessels if v.name == "v1"]
        assert vessel.status == "Started"  # restarted (with its arguments) by version 2
        port = read_int_file(prefix / "state" / "nodemanager.port")
        assert port is not None
        async with open_node_client("127.0.0.1", port, identity=planner) as client:
            assert await client.retrieve_file("v1", "kept.txt") == b"vessel state survives\n"
        assert [e["event"] for e in events(prefix)][-2:] == ["staged", "healthy"]
    served_b = read_node(prefixes[0]).status.get("served_bytes", 0)
    assert isinstance(served_b, int) and served_b > 0  # B fetched from A, not from the inbox

    await trio.to_thread.run_sync(stop_node, prefixes[1])  # A alone tries the bad release
    await trio.to_thread.run_sync(
        lambda: release(repo, "3", wheelhouse, source, patch=crash_at_start))
    publish_repo(repo.repo, prefixes[0])
    await eventually(lambda: "3" in read_node(prefixes[0]).bad and read_node(prefixes[0]).healthy_on == "2",
                     timeout=240, interval=0.25, what="3 marked bad")
    for prefix in prefixes[:1]:
        rollbacks = [e for e in events(prefix) if e["event"] == "rollback"]
        assert rollbacks and rollbacks[-1]["from"] == "3" and rollbacks[-1]["to"] == "2"
        assert os.readlink(prefix / "current") == "versions/2"

        async def answers(prefix: Path = prefix) -> bool:
            try:
                version, _, _ = await node_answers(prefix, planner)
            except Exception:  # restarting: not answering yet
                return False
            return version.endswith(" 2")

        await eventually(answers, timeout=60, interval=0.5, what="the node answers on 2")
