"""Vessels forked by the supervisor's fork server: nothing shared, nothing inherited.

A forked vessel child must hold nothing of another vessel (memory, descriptors,
environment) and nothing of the fork server's privileges; the fork server must never see a
vessel's data; losing the fork server must not touch running vessels, and starts must go on
(cold) until it is back. The hostile-wire test speaks the control protocol by hand.
"""

from __future__ import annotations

import array
import json
import logging
import os
import secrets
import signal
import socket
from pathlib import Path

import pytest
import trio

from sandbox import Supervisor
from sandbox.process import launcher
from sandbox.process.launcher import ForkServer
from sandbox.process.spawn import ChildPipes, parent_of
from tests.support.polling import eventually
from tests.support.vessels import require_root, table

pytestmark = pytest.mark.slow  # starts vessel processes (not in the quick tier)

HOLDER = """
SECRET = 'SECRET-' + callargs[0]
kept = [SECRET * 2, callargs[0]]
log('up')
while True:
    sleep(0.05)
"""
"""Vessel A: keeps its secret (from its args) in memory and runs until stopped."""

PROBE = r"""
import ctypes, json, os, random, sys
out = {"forked": "sandbox.process.forkserver" in sys.modules, "trio": "trio" in sys.modules,
       "pid": os.getpid(),
       "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
       "environ": dict(os.environ), "random": random.random()}
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink("/proc/self/fd/" + name)
    except OSError:
        pass  # the listing's own descriptor, closed by now
out["fds"] = fds
with open("/proc/self/status") as handle:
    out["status"] = dict(line.split(":", 1) for line in handle.read().splitlines())
needle = ("SEC" + "RET-").encode()
mine = needle + callargs[0].encode()  # the control: the scan must find this one
found = set()
with open("/proc/self/maps") as handle:
    maps = handle.read().splitlines()
for line in maps:
    parts = line.split()
    if not parts[1].startswith("r") or parts[4] != "0" or (len(parts) > 5 and parts[5] != "[heap]"
                                                           and parts[5] != "[stack]"):
        continue  # anonymous readable memory only (heap, arenas, stacks)
    low, high = (int(x, 16) for x in parts[0].split("-"))
    for addr in range(low, high, 1 << 20):
        chunk = ctypes.string_at(addr, min((1 << 20) + 64, high - addr))
        at = chunk.find(needle)
        while at >= 0:
            found.add(chunk[at + 7:at + 39].decode("latin-1"))
            at = chunk.find(needle, at + 1)
out["found"] = sorted(found)
def signal_result(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno
    return 0
out["kill_fork_server"] = signal_result(int(callargs[1])) if callargs[1].isdigit() else None
out["kill_supervisor"] = signal_result(os.getppid())
log("PROBE " + json.dumps(out))
"""
"""Vessel B, unrestricted Python after the OS layers: reports what it can see of itself."""


def scan_memory(pid: int, needle: bytes) -> set[bytes]:
    """The 32 bytes after each ``needle`` in ``pid``'s anonymous memory (read as its parent/root)."""
    found: set[bytes] = set()
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            if not parts[1].startswith("r") or parts[4] != "0" or parts[-1] == "[vvar]":
                continue
            low, high = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(low)
                data = mem.read(high - low)
            except OSError:
                continue
            at = data.find(needle)
            while at >= 0:
                found.add(data[at + len(needle):at + len(needle) + 32])
                at = data.find(needle, at + 1)
    return found


def pipe_inodes(pid: int) -> set[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    links = {os.readlink(fd_dir / name) for name in os.listdir(fd_dir)}
    return {link for link in links if link.startswith("pipe:")}


async def wait_log(sup: Supervisor, vessel: str, needle: bytes) -> bytes:
    async def seen() -> bytes:
        return needle in sup.read_log(vessel) and sup.read_log(vessel)

    return await eventually(seen, timeout=20, what=f"{vessel} logged {needle!r}")


def make_vessel(root: Path, name: str, source: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "program.py").write_text(source)
    return directory.resolve()


async def probe(sup: Supervisor, root: Path, name: str, secret: str) -> dict[str, object]:
    directory = make_vessel(root, name, PROBE)
    big = table(memory=400_000_000, cpu=1.0)
    await sup.start(name, directory, big, "program.py",
                    [secret, str(sup.launcher.server_pid)], restricted=False)
    report = await sup.wait(name)
    text = sup.read_log(name).decode()
    assert report.exit_code == 0, (report, text)
    result: dict[str, object] = json.loads(text.split("PROBE ", 1)[1])
    return result


async def test_forked_vessel_has_nothing_of_another_vessel_or_the_fork_server(tmp_path: Path) -> None:
    require_root()
    tmp_path.chmod(0o711)
    secret_a, secret_b = secrets.token_hex(16), secrets.token_hex(16)
    async with Supervisor.open(run_dir=tmp_path / "run") as sup:
        dir_a = make_vessel(tmp_path, "a", HOLDER)
        await sup.start("a", dir_a, table(), "program.py", [secret_a])
        await wait_log(sup, "a", b"up")
        server_pid = sup.launcher.server_pid
        assert server_pid is not None
        a_pid = int((tmp_path / "run" / "a.pid").read_text().split()[0])
        # The control: A's secret is in A's memory, so the scans can see one.
        assert secret_a.encode() in scan_memory(a_pid, b"SECRET-")
        # The fork server never held it: it never sees a vessel's config, args or program.
        assert secret_a.encode() not in scan_memory(server_pid, b"SECRET-")
        a_pipes = pipe_inodes(a_pid)

        b = await probe(sup, tmp_path, "b", secret_b)
        c = await probe(sup, tmp_path, "c", secrets.token_hex(16))
        await sup.stop("a")

    assert b["forked"] and c["forked"], "the probes must come from the fork server"
    assert not b["trio"], "the fork server imported trio (the supervisor's, not a runner's)"
    # Memory: B finds its own secret (the scan works) and nothing of A's.
    assert secret_b in b["found"] and secret_a not in b["found"]
    # Descriptors: its four pipes and its own files; no socket (the control socket), none of A's.
    fds = b["fds"]
    assert isinstance(fds, dict)
    assert {n for n, link in fds.items() if link.startswith("pipe:")} == {"0", "1", "2", "3"}
    assert not [link for link in fds.values() if link.startswith(("socket:", "anon_inode:"))]
    assert not a_pipes & set(fds.values())
    others = [link for n, link in fds.items() if int(n) > 3]
    assert all(link == str((tmp_path / "b").resolve()) or link.startswith("/proc/")
               for link in others), fds
    assert set(b["environ"]) <= {"LC_CTYPE"}, b["environ"]  # only CPython's own C-locale coercion
    # Its own process group and session, the supervisor as parent (not the fork server).
    assert b["ppid"] == os.getpid() and b["pgid"] == b["pid"] and b["sid"] == b["pid"]
    # No privilege of the fork server's: own uid, no capabilities, nnp, seccomp on.
    status = b["status"]
    assert isinstance(status, dict)
    uids = status["Uid"].split()
    assert len(set(uids)) == 1 and int(uids[0]) >= 61000
    assert status["Groups"].strip() == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    # It cannot even signal the fork server or the supervisor.
    assert b["kill_fork_server"] == b["kill_supervisor"] == 1  # EPERM
    # Fresh randomness per child.
    assert b["random"] != c["random"]


async def test_running_vessels_survive_the_fork_server_and_starts_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp_path.chmod(0o711)
    caplog.set_level(logging.INFO, logger="sandbox.process.launcher")
    # The restart waits 2 x 1.5 s (it died young): time enough to see a cold start first.
    monkeypatch.setattr(launcher, "RESTART_DELAYS", (1.5, 30.0))
    async with Supervisor.open() as sup:
        await sup.start("a", make_vessel(tmp_path, "a", HOLDER), table(), "program.py", ["x" * 32])
        first = await eventually(lambda: sup.launcher.server_pid, what="a fork server")
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: sup.launcher.server_pid != first, what="the fork server's death seen")
        # A vessel started while there is no fork server starts cold, and says so.
        await sup.start("b", make_vessel(tmp_path, "b", "log('cold')\n"), table(), "program.py")
        assert (await sup.wait("b")).exit_code == 0 and sup.read_log("b") == b"cold\n"
        assert "cold spawn" in caplog.text
        # The running vessel did not notice (its parent is the supervisor, not the fork server).
        assert sup.report("a").status == "Started"
        # The fork server comes back, and starts fork again.
        second = await eventually(lambda: sup.launcher.server_pid, what="a restarted fork server")
        assert second != first and sup.launcher.restarts == 1
        result = await probe(sup, tmp_path, "c", secrets.token_hex(16))
        assert result["forked"]
        assert sup.report("a").status == "Started"
        await sup.stop("a")
    assert parent_of(second) is None, "the fork server ends with its supervisor"


def _ask(control: socket.socket, message: bytes, fds: list[int]) -> bytes:
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    control.sendmsg([message], rights)
    return control.recv(64)


async def test_fork_server_survives_a_hostile_control_peer() -> None:
    server = await ForkServer.boot()
    pid = server.process.pid
    control = socket.socket(fileno=os.dup(server.control.fileno()))
    control.setblocking(True)
    try:
        open_before = len(os.listdir(f"/proc/{pid}/fd"))
        spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(8)]
        hostile = [
            (b"fork", []),  # no descriptors
            (b"fork", spare[:3]),  # too few
            (b"fork", spare[:8]),  # too many: the kernel truncates the rights (MSG_CTRUNC)
            (b"fork\x00", spare[:4]),  # not quite the word
            (b"exec /bin/sh", spare[:4]),  # not a request
            (b"fork" + b"x" * 500, spare[:4]),  # longer than a request: truncated
            (b"", spare[:2]),  # empty datagram with rights
        ]
        for message, fds in hostile:
            reply = await trio.to_thread.run_sync(_ask, control, message, fds)
            assert reply.startswith(b"error "), (message, len(fds), reply)
        for fd in spare:
            os.close(fd)
        assert parent_of(pid) == os.getpid(), "the fork server must still run"
        assert len(os.listdir(f"/proc/{pid}/fd")) == open_before, "it kept received descriptors"
        # A real request still works, and the child is ours (CLONE_PARENT).
        pipes = ChildPipes()
        status_r, status_w = os.pipe()
        child = await server.fork((*pipes.child_ends, status_w))
        pipes.close_child_ends()
        os.close(status_w)
        assert parent_of(child) == os.getpid()
        os.write(pipes.ours[0], b"not json\n")  # the runner refuses a bad config
        _, status = await trio.to_thread.run_sync(os.waitpid, child, 0)
        assert os.waitstatus_to_exitcode(status) == 8
        pipes.close_ours()
        os.close(status_r)
    finally:
        control.close()
        await server.aclose()


async def test_a_fork_server_that_stops_answering_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp_path.chmod(0o711)
    monkeypatch.setattr(launcher, "FORK_TIMEOUT", 1.0)
    monkeypatch.setattr(launcher, "RESTART_DELAYS", (0.1, 30.0))
    caplog.set_level(logging.WARNING, logger="sandbox.process.launcher")
    async with Supervisor.open() as sup:
        await sup.start("w", make_vessel(tmp_path, "w", "log('warm')\n"), table(), "program.py")
        hung = await eventually(lambda: sup.launcher.server_pid, what="a fork server")
        os.kill(hung, signal.SIGSTOP)  # alive, holding its socket, answering nothing
        await sup.start("a", make_vessel(tmp_path, "a", "log('cold')\n"), table(), "program.py")
        assert (await sup.wait("a")).exit_code == 0 and sup.read_log("a") == b"cold\n"
        assert "killed for a restart" in caplog.text
        monkeypatch.setattr(launcher, "FORK_TIMEOUT", 30.0)  # a loaded host must not fail the next
        await eventually(lambda: sup.launcher.server_pid not in (None, hung),
                         what="a fork server in place of the hung one")
        assert parent_of(hung) is None, "the hung fork server was killed and reaped"
        result = await probe(sup, tmp_path, "b", secrets.token_hex(16))
        assert result["forked"]


async def forked_start(sup: Supervisor, root: Path, name: str) -> bool:
    """Run a program that tells whether it was forked from the fork server."""
    source = "import sys\nlog(str('sandbox.process.forkserver' in sys.modules))\n"
    await sup.start(name, make_vessel(root, name, source), table(), "program.py", restricted=False)
    await sup.wait(name)
    return sup.read_log(name) == b"True\n"


async def test_the_fork_server_boots_on_demand_and_stops_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp_path.chmod(0o711)
    monkeypatch.setattr(launcher, "IDLE_STOP", 2.0)
    async with Supervisor.open() as sup:
        await trio.sleep(0.5)
        assert sup.launcher.server_pid is None, "no fork server before the first start"
        assert await forked_start(sup, tmp_path, "a"), "the first start waits for the boot"
        server = sup.launcher.server_pid
        assert server is not None
        await eventually(lambda: sup.launcher.server_pid is None, what="an idle stop")
        assert parent_of(server) is None, "the idle fork server was stopped and reaped"
        assert await forked_start(sup, tmp_path, "b"), "the next start boots it again"
        assert sup.launcher.server_pid not in (None, server) and sup.launcher.restarts == 0
