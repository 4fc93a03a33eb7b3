"""Child processes for vessels: started on the supervisor's own thread, recorded on disk.

Why not ``trio.lowlevel.open_process``: it forks from a worker thread, and the kernel's
parent-death signal (``PR_SET_PDEATHSIG``, which each vessel sets so that it dies with its
supervisor in every state, SIGSTOPped included) fires when the *thread* that forked the
child exits. trio's idle worker threads exit after a while, which would kill healthy
vessels. Forking from the thread that runs the trio loop makes "parent died" mean "the
supervisor died".

``ChildRecords`` keeps one small file per running child (pid and kernel start time), so a
supervisor restarted after a crash can kill what its previous life left behind, and never
a recycled pid that now belongs to someone else.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

log = logging.getLogger(__name__)


class ChildProcess:
    """A child of this process with trio streams on its stdin, stdout and stderr pipes.

    Made by ``spawn`` (a cold start: ``subprocess.Popen``) or by ``adopt`` (a child the
    fork server made ours with ``CLONE_PARENT``); either way this process reaps it.
    """

    def __init__(
        self, pid: int, stdin: trio.lowlevel.FdStream, stdout: trio.lowlevel.FdStream,
        stderr: trio.lowlevel.FdStream, popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self._popen = popen
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._returncode: int | None = None
        self._pidfd: int | None = os.pidfd_open(pid)
        self._wait_lock = trio.Lock()

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (negative: killed by that signal), else None."""
        return self._popen.returncode if self._popen is not None else self._returncode

    async def wait(self) -> int:
        """Wait for the child to exit and reap it."""
        async with self._wait_lock:
            if self.returncode is None and self._pidfd is not None:
                await trio.lowlevel.wait_readable(self._pidfd)
            if self._popen is not None:
                code = self._popen.wait()
            elif self._returncode is None:
                _, status = os.waitpid(self.pid, 0)
                code = self._returncode = os.waitstatus_to_exitcode(status)
            else:
                code = self._returncode
            self._close_pidfd()
            return code

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def aclose(self) -> None:
        """Close our ends of the pipes (the child is not touched)."""
        for stream in (self.stdin, self.stdout, self.stderr):
            await stream.aclose()


class ChildPipes:
    """The three stdio pipes of a child to be: its ends and ours."""

    def __init__(self) -> None:
        pipes = [os.pipe() for _ in range(3)]
        self.child_ends = (pipes[0][0], pipes[1][1], pipes[2][1])
        self.ours = (pipes[0][1], pipes[1][0], pipes[2][0])

    def prefill(self, data: bytes) -> None:
        """Put ``data`` in the child's stdin now; it must fit in any pipe (``PIPE_BUF``)."""
        if len(data) > select.PIPE_BUF:
            raise ValueError(f"{len(data)} bytes may not fit in a pipe")
        if data:
            os.write(self.ours[0], data)

    def close_child_ends(self) -> None:
        for fd in self.child_ends:
            os.close(fd)

    def close_ours(self) -> None:
        for fd in self.ours:
            os.close(fd)

    def streams(self) -> tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream, trio.lowlevel.FdStream]:
        stdin, stdout, stderr = (trio.lowlevel.FdStream(fd) for fd in self.ours)
        return stdin, stdout, stderr


def spawn(
    argv: Sequence[str], *, cwd: str, env: Mapping[str, str], pass_fds: Sequence[int] = (),
    stdin_data: bytes = b"",
) -> ChildProcess:
    """Start ``argv`` in a new session from the calling thread, with piped stdio.

    ``stdin_data`` (at most ``PIPE_BUF`` bytes, so it never blocks) is waiting in the
    child's stdin when it starts.
    """
    pipes = ChildPipes()
    stdin, stdout, stderr = pipes.child_ends
    try:
        pipes.prefill(stdin_data)
        popen = subprocess.Popen(
            list(argv), stdin=stdin, stdout=stdout, stderr=stderr,
            pass_fds=tuple(pass_fds), env=dict(env), cwd=cwd, start_new_session=True,
        )
    except BaseException:
        pipes.close_ours()
        raise
    finally:
        pipes.close_child_ends()
    return ChildProcess(popen.pid, *pipes.streams(), popen=popen)


def adopt(pid: int, pipes: ChildPipes) -> ChildProcess:
    """A ``ChildProcess`` for ``pid``, a child of ours made by someone else (the fork server)."""
    return ChildProcess(pid, *pipes.streams())


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


class ChildRecords:
    """``DIR/<name>.pid`` files holding ``pid start_time`` of each running child."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.pid"

    def add(self, name: str, pid: int) -> None:
        started = start_time(pid)
        if started is None:
            return
        tmp = self._path(name).with_suffix(".tmp")
        tmp.write_text(f"{pid} {started}\n")
        os.replace(tmp, self._path(name))

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def kill_leftovers(self) -> list[str]:
        """SIGKILL every recorded child (and its process group) still alive; clear records.

        Returns the names whose process was still running.
        """
        killed = []
        for path in sorted(self.directory.glob("*.pid")):
            try:
                pid, started = (int(x) for x in path.read_text().split())
            except (OSError, ValueError):
                pid, started = 0, -1
            if pid > 1 and start_time(pid) == started:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                killed.append(path.stem)
                log.warning("killed vessel process %d (%s) left by an earlier run", pid, path.stem)
            path.unlink(missing_ok=True)
        return killed
