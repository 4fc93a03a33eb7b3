"""Vessel lifecycle through real daemons with the real sandbox: kill -9 and restart, uids
across node managers, incremental logs, honest starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
import trio

from nodemanager import NodeClient, open_node_client
from nodemanager.errors import CompileFailed
from nodemanager.node.model import Vessel
from nodemanager.node.spec import NodeSpec, init_node
from sandbox import DEFAULT_OFFCUT, ResourceTable
from seattlecore import KeyPair
from tests.support.daemons import read_port
from tests.support.files import traversable
from tests.support.net import ip
from tests.support.nodes import lone_daemon, wait_log, wait_stopped
from tests.support.polling import eventually
from tests.support.processes import processes_in, wait_until_gone
from tests.support.worlds import SMALL

pytestmark = pytest.mark.slow

OWNER = KeyPair.generate()
ROOT = Path(__file__).parents[2]
FAST_LOG = ResourceTable({**SMALL.values, "lograte": 400_000.0}, SMALL.messport, SMALL.connport)
SPIN = b"x = 0\nwhile True:\n    x += 1\n"
THREADS = b"""
def nap():
    sleep(30)
for i in range(5):
    createthread(nap)
log('threads ok')
sleep(30)
"""


def make_node(state: Path, count: int, resources: ResourceTable = SMALL) -> None:
    traversable(state.parent)
    vessels = tuple(Vessel(name=f"v{i}", owner=OWNER.public, resources=resources)
                    for i in range(1, count + 1))
    init_node(state, NodeSpec(vessels=vessels, offcut=DEFAULT_OFFCUT))


def client(state: Path) -> open_node_client:  # type: ignore[valid-type]
    return open_node_client("127.0.0.1", read_port(state), identity=OWNER)


def vessel_dir(state: Path, vessel: str) -> Path:
    return state / "vessels" / vessel


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Uid:"))


async def wait_for_processes(dirs: Iterable[Path]) -> dict[Path, list[int]]:
    def running() -> dict[Path, list[int]] | None:
        found = {d: processes_in(d) for d in dirs}
        return found if all(found.values()) else None

    return await eventually(running, timeout=30, interval=0.05, what="a process in every vessel dir")


async def test_kill_9_and_restart_leaves_no_orphans_and_right_states(tmp_path: Path) -> None:
    state = tmp_path / "node"
    make_node(state, 4)
    names = ["v1", "v2", "v3", "v4"]
    dirs = [vessel_dir(state, name) for name in names]
    async with lone_daemon(state, sandbox=True) as process:
        async with client(state) as nm:
            for name in names:
                await nm.add_file(name, "spin.py", SPIN)
                assert await nm.start_vessel(name, "spin.py") == "Started"
        await wait_for_processes(dirs)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        assert [wait_until_gone(d, 2.0) for d in dirs] == [[]] * 4
    async with lone_daemon(state, sandbox=True), client(state) as nm:
        info = await nm.get_vessels()
        assert [(v.status, v.exit_reason) for v in info.vessels] == \
            [("Terminated", "node manager restarted")] * 4
        assert all(processes_in(d) == [] for d in dirs)
        assert await nm.start_vessel("v1", "spin.py") == "Started"
        assert len((await wait_for_processes(dirs[:1]))[dirs[0]]) == 1
    assert wait_until_gone(dirs[0], 2.0) == []


async def test_two_node_managers_and_a_local_run_get_distinct_uids(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root; CI runs as root")
        pytest.skip("vessel uids need root")
    states = [tmp_path / "a", tmp_path / "b"]
    for state in states:
        make_node(state, 2)
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    (local_dir / "threads.py").write_bytes(THREADS)
    async with lone_daemon(states[0], sandbox=True), lone_daemon(states[1], sandbox=True):
        for state in states:
            async with client(state) as nm:
                for name in ("v1", "v2"):
                    await nm.add_file(name, "threads.py", THREADS)
                    assert await nm.start_vessel(name, "threads.py") == "Started"
        local = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "run", "--dir", str(local_dir), "--timeout", "60",
             str(local_dir / "threads.py")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for state in states:
                async with client(state) as nm:
                    for name in ("v1", "v2"):
                        await wait_log(nm, name, b"threads ok")
            dirs = [vessel_dir(s, n) for s in states for n in ("v1", "v2")] + [local_dir]
            async def dropped() -> list[int] | None:  # the local run may still be starting
                uids = await vessel_uids(dirs)
                return uids if all(u >= 61000 for u in uids) else None

            uids = await eventually(dropped, timeout=30, interval=0.05, what="every uid dropped")
            assert len(set(uids)) == 5, uids
        finally:
            local.kill()
            _, err = local.communicate()
        assert b"can't start new thread" not in err


async def vessel_uids(dirs: list[Path]) -> list[int]:
    found = await wait_for_processes(dirs)
    try:
        return [uid_of(pids[0]) for pids in found.values()]
    except (OSError, StopIteration):
        return [-1]


def check_pieces(pieces: list[tuple[int, int, bytes]], final_total: int) -> tuple[int, list[int]]:
    """Each piece (since, start, data) follows the last; returns (dropped, numbers seen)."""
    expected = 0
    dropped = 0
    numbers: list[int] = []
    for since, start, data in pieces:
        assert since == expected, "the follower passes back the previous total"
        assert start >= since
        dropped += start - since
        expected = start + len(data)
        numbers += [int(word) for word in data.split() if word.isdigit() and len(word) == 6]
    assert expected == final_total
    assert numbers == sorted(set(numbers)), "no byte twice, all in order"
    return dropped, numbers


async def follow(nm: NodeClient, vessel: str, pause: float) -> tuple[list[tuple[int, int, bytes]], int]:
    pieces: list[tuple[int, int, bytes]] = []
    since = 0
    with trio.fail_after(60):
        while True:
            chunk = await nm.read_log_since(vessel, since)
            pieces.append((since, chunk.start, chunk.data))
            since = chunk.total
            if b"DONE" in chunk.data:
                return pieces, since
            await trio.sleep(pause)


async def test_followers_get_every_byte_once_and_the_dropped_count(tmp_path: Path) -> None:
    state = tmp_path / "node"
    make_node(state, 2, FAST_LOG)
    lines = 200 * 1024 // 8
    program = f"for i in range({lines}):\n    log('%06d ' % i)\nlog('DONE')\n".encode()
    async with lone_daemon(state, sandbox=True) as process:
        async with client(state) as nm:
            for name in ("v1", "v2"):
                await nm.add_file(name, "chatty.py", program)
                await nm.start_vessel(name, "chatty.py")
            async with trio.open_nursery() as nursery:
                results: dict[str, tuple[list[tuple[int, int, bytes]], int]] = {}

                async def run(name: str, pause: float) -> None:
                    results[name] = await follow(nm, name, pause)

                nursery.start_soon(run, "v1", 0.0)
                nursery.start_soon(run, "v2", 0.3)
            fast_dropped, fast_numbers = check_pieces(*results["v1"])
            if fast_dropped == 0:
                assert fast_numbers == list(range(lines))
            slow_dropped, slow_numbers = check_pieces(*results["v2"])
            assert slow_dropped > 0 and slow_numbers[-1] == lines - 1
            total = results["v2"][1]
            assert total >= lines * 7
            run = (await nm.read_log_since("v2", total)).run
            assert run and run != (await nm.read_log_since("v1", 0)).run
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with lone_daemon(state, sandbox=True), client(state) as nm:  # the log survives a restart
        chunk = await nm.read_log_since("v2", total, run)
        assert (chunk.data, chunk.total, chunk.run, chunk.restarted) == (b"", total, run, False)
        chunk = await nm.read_log_since("v2", 0)
        assert chunk.dropped == total - 16 * 1024 and chunk.data.rstrip().endswith(b"DONE")
        assert await nm.read_log("v2") == chunk.data  # old clients: the kept tail
        # Run the same program again: the new stream ends at the same offset, so only the
        # run name tells a follower that what it reads now is another run.
        await nm.start_vessel("v2", "chatty.py")
        await wait_log(nm, "v2", b"DONE")
        chunk = await nm.read_log_since("v2", total, run)
        assert chunk.total == total and chunk.run != run and chunk.restarted


async def test_start_answers_only_once_the_program_compiled(tmp_path: Path) -> None:
    state = tmp_path / "node"
    make_node(state, 1)
    async with lone_daemon(state, sandbox=True), client(state) as nm:
        await nm.add_file("v1", "hello.py", b"log('old program')\n")
        await nm.start_vessel("v1", "hello.py")
        await wait_log(nm, "v1", b"old program")
        await wait_stopped(nm, "v1")  # the log line comes before the program's exit
        await nm.add_file("v1", "bad.py", b"x = 1\nimport os\n")
        with pytest.raises(CompileFailed) as caught:
            await nm.start_vessel("v1", "bad.py")
        assert "Line 2: import statements are not allowed" in str(caught.value)
        (vessel,) = (await nm.get_vessels()).vessels
        assert vessel.status == "Terminated"
        assert vessel.exit_reason is not None and "compile error" in vessel.exit_reason
        assert await nm.read_log("v1") == b"", "a new start clears the previous log"
        await nm.add_file("v1", "syntax.py", b"def f(:\n")
        with pytest.raises(CompileFailed, match="Line 1"):
            await nm.start_vessel("v1", "syntax.py")
        assert await nm.start_vessel("v1", "hello.py") == "Started"


async def test_a_vessel_learns_the_address_its_node_listens_on(tmp_path: Path) -> None:
    """``getmyip()`` answers the node's own address (a testbed node listens on its own
    127.x.y.1, as a machine on a network would), not 127.0.0.1, so a program can tell peers
    where to reach it."""
    state = tmp_path / "node"
    make_node(state, 1)
    address = ip("127.3.7.1")
    async with lone_daemon(state, sandbox=True, extra=["--listen", f"{address}:0"]), \
            open_node_client(address, read_port(state), identity=OWNER) as nm:
        await nm.add_file("v1", "ip.py", b"log('ip', getmyip())\n")
        await nm.start_vessel("v1", "ip.py")
        assert (await wait_log(nm, "v1", b"ip ")).split() == [b"ip", address.encode()]
