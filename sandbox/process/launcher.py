"""Starting vessel runner children: forked by a warm fork server, or cold.

``Launcher.launch`` gives a started runner child (``ChildProcess``) either way. With a fork
server (``sandbox.process.forkserver``) the child comes from a process that has already
imported the sandbox, so a start costs a fork instead of an interpreter's imports. Without
one (disabled, still booting after ``BOOT_WAIT``, dead, or answering wrongly) the start is a
cold ``python -I -S`` spawn, and the log says why.

``Launcher.keep_fork_server`` runs in the supervisor's nursery: it starts the fork server
from the trio thread (the parent-death signal follows that thread, see
``sandbox.process.spawn``) when the first start wants one, restarts it when it dies (after
0.5 s, doubling up to 30 s while it keeps dying young), stops it after ``IDLE_STOP``
seconds without a start, and stops it when cancelled.
"""

from __future__ import annotations

import array
import functools
import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from sandbox.process.forkserver import CHILD_FDS, MAX_MESSAGE, STATUS_FD
from sandbox.process.spawn import ChildPipes, ChildProcess, adopt, parent_of, spawn

log = logging.getLogger(__name__)

BOOT_TIMEOUT = 30.0
"""Seconds a new fork server may take to import everything and say ``ready``."""
BOOT_WAIT = 10.0
"""Seconds a start waits for a booting fork server before it spawns cold instead."""
FORK_TIMEOUT = 5.0
"""Seconds a fork request may take; a fork server that misses it is killed and restarted."""
RESTART_DELAYS = (0.5, 30.0)
"""First and longest pause before restarting a fork server that died."""
YOUNG = 60.0
"""A fork server that died younger than this doubles the next restart's pause."""
IDLE_STOP = 600.0
"""Seconds without a start after which the fork server is stopped (it boots again on demand)."""


class ForkFailed(Exception):
    """The fork server could not make a child (the start goes cold instead)."""


@functools.cache
def runner_argv(entry: str = "sandbox.process.runner") -> tuple[str, ...]:
    """``python -I -S -c BOOT``: isolated mode, no site, explicit import paths, ``entry.main()``."""
    import RestrictedPython

    package_root = Path(__file__).resolve().parents[2]
    roots = {str(package_root)}
    roots.add(str(Path(RestrictedPython.__file__).resolve().parent.parent))
    try:
        import pyseccomp

        roots.add(str(Path(pyseccomp.__file__).resolve().parent))
        roots.add(str(Path(pyseccomp.__file__).resolve().parent.parent))
    except ImportError:
        pass
    boot = f"import sys; sys.path[:0] = {sorted(roots)!r}; from {entry} import main; main()"
    return (sys.executable, "-I", "-S", "-c", boot)


FirstLine = Callable[[int], bytes]
"""The runner's config line, given the number its status channel has in the child."""


@dataclass(frozen=True, slots=True)
class Launched:
    """A started runner child, and how it started."""

    process: ChildProcess
    forked: bool
    pending: bytes
    """The config line still to send (empty: it was waiting in the child's stdin already)."""


def _prefilled(line: bytes) -> tuple[bytes, bytes]:
    """(what to write before the start, what to send after): a line only if it surely fits."""
    return (line, b"") if len(line) <= select.PIPE_BUF else (b"", line)


class ForkServer:
    """One running fork server: its process and our end of its control socket."""

    def __init__(self, process: ChildProcess, control: trio.socket.SocketType) -> None:
        self.process = process
        self.control = control
        self.lock = trio.Lock()
        self.broken = False
        """Set when a request failed: the server is being killed and must not be asked again."""
        self.idle = False
        """Set when it is stopped for want of starts."""

    @classmethod
    async def boot(cls) -> ForkServer:
        """Spawn a fork server (on this thread) and wait for its ``ready``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = (*runner_argv("sandbox.process.forkserver"), str(theirs.fileno()))
            process = spawn(argv, cwd="/", env={}, pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        server = cls(process, trio.socket.from_stdlib_socket(ours))
        reply = b"nothing"
        with trio.move_on_after(BOOT_TIMEOUT):
            reply = await server.control.recv(MAX_MESSAGE)
        if reply.startswith(b"ready "):
            return server
        await server.aclose()
        raise ForkFailed(f"the fork server did not start (it said {reply[:MAX_MESSAGE]!r})")

    async def fork(self, fds: Sequence[int]) -> int:
        """Ask for a child on ``fds`` (stdin, stdout, stderr, status); return its pid.

        A refusal (``error``) leaves the server usable; anything else wrong (no answer, a
        garbled one, a pid that is not our child) marks it ``broken``.
        """
        async with self.lock:
            if self.broken:
                raise ForkFailed("the fork server is being restarted")
            try:
                reply = await self._exchange(fds)
            except BaseException:
                self.broken = True
                raise
        word, _, rest = reply.partition(b" ")
        if word == b"error":
            raise ForkFailed(f"fork server refused: {rest.decode('utf-8', 'replace')}")
        if word == b"pid" and rest.isdigit() and parent_of(int(rest)) == os.getpid():
            return int(rest)
        self.broken = True
        raise ForkFailed(f"bad fork server answer {reply[:MAX_MESSAGE]!r}")

    async def _exchange(self, fds: Sequence[int]) -> bytes:
        """One request and its reply, never cut in half by a cancelled caller.

        A reply left unread would be taken as the answer to the next request, so the
        exchange is shielded and bounded by ``FORK_TIMEOUT`` instead.
        """
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        with trio.CancelScope(shield=True), trio.move_on_after(FORK_TIMEOUT):
            try:
                await self.control.sendmsg([b"fork"], rights)
                return bytes(await self.control.recv(MAX_MESSAGE))
            except OSError as exc:
                raise ForkFailed(f"fork server unreachable: {exc}") from exc
        raise ForkFailed(f"no answer from the fork server within {FORK_TIMEOUT:.0f} s")

    def kill(self) -> None:
        try:
            os.kill(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def aclose(self) -> None:
        """Close the control socket (the fork server exits on EOF), kill it, reap it."""
        self.control.close()
        self.kill()
        with trio.CancelScope(shield=True):
            await self.process.wait()
            await self.process.aclose()


class Launcher:
    """Starts runner children; keeps a fork server when ``fork_server`` is true.

    The fork server boots on the first start (which waits for it), not with the
    supervisor: a node manager that never runs a program, or fifty of them coming up at once
    in a testbed, pay nothing for it. It stops after ``IDLE_STOP`` seconds without a start
    and boots again on the next one.
    """

    def __init__(self, *, fork_server: bool = True) -> None:
        self.use_fork_server = fork_server
        self._server: ForkServer | None = None
        self._wanted = trio.Event()
        """Set by a start: a fork server should run."""
        self._settled = trio.Event()
        """Unset while a wanted fork server is booting: starts wait for it (``BOOT_WAIT``)."""
        self._last_start = 0.0
        self.restarts = 0
        """Fork servers started after one died (idle stops do not count)."""

    @property
    def server_pid(self) -> int | None:
        """The running fork server's pid, if there is one."""
        return None if self._server is None else self._server.process.pid

    async def launch(self, status_w: int, *, cwd: str, first_line: FirstLine) -> Launched:
        """Start a runner child with ``status_w`` as its status channel.

        Its config line (``first_line``) is put in its stdin before it starts when it fits
        in a pipe, so the child never waits for the supervisor to send it.
        """
        server = await self._ready_server()
        if server is not None:
            try:
                return await self._fork(server, status_w, first_line(STATUS_FD))
            except ForkFailed as exc:
                if server.broken:
                    server.kill()  # keep_fork_server restarts it
                log.warning("vessel fork server (pid %d) failed%s; cold spawn instead: %s",
                            server.process.pid, ", killed for a restart" if server.broken else "",
                            exc)
        now, later = _prefilled(first_line(status_w))
        process = spawn(runner_argv(), cwd=cwd, env={}, pass_fds=(status_w,), stdin_data=now)
        return Launched(process, forked=False, pending=later)

    async def _ready_server(self) -> ForkServer | None:
        if not self.use_fork_server:
            return None
        self._last_start = trio.current_time()
        self._wanted.set()
        gone = self._server is None or self._server.broken
        if gone and not self._settled.is_set():  # booting, or about to boot
            with trio.move_on_after(BOOT_WAIT):
                await self._settled.wait()
        server = self._server
        if server is None or server.broken:
            log.warning("vessel fork server not running: cold spawn (slower start)")
            return None
        return server

    async def _fork(self, server: ForkServer, status_w: int, line: bytes) -> Launched:
        pipes = ChildPipes()
        now, later = _prefilled(line)
        try:
            pipes.prefill(now)
            pid = await server.fork((*pipes.child_ends, status_w))
        except BaseException:
            pipes.close_ours()
            raise
        finally:
            pipes.close_child_ends()
        return Launched(adopt(pid, pipes), forked=True, pending=later)

    async def keep_fork_server(self) -> None:
        """Run a fork server while starts want one, until cancelled; restart it if it dies."""
        if not self.use_fork_server:
            return
        delay = RESTART_DELAYS[0]
        died = False
        while True:
            await self._wanted.wait()
            if self._settled.is_set():
                self._settled = trio.Event()
            booted = trio.current_time()
            idle = await self._serve_one(restart=died)
            if idle:
                died = False
                continue
            died = True
            young = trio.current_time() - booted < YOUNG
            delay = min(delay * 2, RESTART_DELAYS[1]) if young else RESTART_DELAYS[0]
            await trio.sleep(delay)

    async def _serve_one(self, *, restart: bool) -> bool:
        """Boot and watch one fork server; True if it was stopped for idleness."""
        try:
            server = await ForkServer.boot()
        except (ForkFailed, OSError) as exc:
            log.warning("vessel fork server did not start: %s; starts spawn cold", exc)
            return False
        finally:
            self._settled.set()
        self.restarts += restart
        self._server = server
        log.info("vessel fork server ready (pid %d)", server.process.pid)
        idle = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, server.process.stdout, None)
                nursery.start_soon(_drain, server.process.stderr, server.process.pid)
                nursery.start_soon(self._stop_when_idle, server)
                code = await server.process.wait()
                nursery.cancel_scope.cancel()
            idle = server.idle
            if not idle:
                log.warning("vessel fork server (pid %d) exited with %s; starts spawn cold "
                            "until it is restarted", server.process.pid, code)
        finally:
            self._server = None
            await server.aclose()
        return idle

    async def _stop_when_idle(self, server: ForkServer) -> None:
        while True:
            deadline = self._last_start + IDLE_STOP
            if trio.current_time() >= deadline and not server.lock.locked():
                break
            await trio.sleep_until(max(deadline, trio.current_time() + 0.05))
        log.info("vessel fork server (pid %d) idle for %.0f s: stopped until the next start",
                 server.process.pid, IDLE_STOP)
        server.idle = server.broken = True  # no start may pick it now
        self._wanted, self._settled = trio.Event(), trio.Event()  # the next start boots one
        server.kill()


async def _drain(stream: trio.lowlevel.FdStream, pid: int | None) -> None:
    """Read a fork server's output; log its stderr (tracebacks) as warnings."""
    while chunk := await stream.receive_some(65536):
        if pid is not None:
            log.warning("vessel fork server (pid %d) stderr: %s", pid,
                        chunk.decode("utf-8", "replace").rstrip()[-2000:])


__all__ = ["CHILD_FDS", "FirstLine", "ForkFailed", "ForkServer", "Launched", "Launcher",
           "runner_argv"]
