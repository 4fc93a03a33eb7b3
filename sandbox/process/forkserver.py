"""The fork server: a warm vessel runner that forks one child per vessel start.

A cold vessel start is a fresh ``python -I -S`` importing the sandbox (RestrictedPython, the
Repy API, pyseccomp): about 100 ms of imports. Each supervisor instead keeps one fork
server, started the same way (``runner_argv``, empty environment, no inherited descriptors
but its control socket, whose number is its one argument) with all of that imported, and
asks it for a child per start. The child then runs ``sandbox.process.runner.main`` exactly as a cold
runner does: config from stdin, rlimits, uid drop, no_new_privs, Landlock, seccomp, compile,
program. See docs/isolation.md, The fork server.

What makes a forked child as clean as a cold one:
- *Parent.* The child is made with ``clone(CLONE_PARENT)``, so its parent is the supervisor
  (the fork server's parent), exactly as for a cold spawn: the supervisor reaps it, the
  parent-death signal follows the supervisor's thread, and the fork server dying or being
  restarted never touches running vessels.
- *Nothing of another vessel.* The fork server never sees a vessel's config, program, args
  or output: a request is the word ``fork`` and four descriptors (the child's stdin, stdout,
  stderr and status pipes). The child reads its config from its own stdin. The fork server
  closes each request's descriptors before it reads the next one.
- *Descriptors.* The child moves its four pipes to fds 0-3 and closes every other one (the
  control socket included) before anything else.
- *Session, signals, randomness.* The child calls ``setsid`` first thing (until it has,
  the supervisor's kill reaches it by pid), gets an empty signal mask and default
  dispositions, and ``random`` is reseeded (CPython's at-fork hook, and again here). The
  hash secret is the one thing shared with sibling vessels (it cannot change after start).
- *Privileges.* The fork server has the supervisor's (root, on a donor); a child drops them
  all in ``apply_hardening`` like a cold runner. The fork server runs single-threaded and
  never runs vessel code: the child path ends in ``os._exit`` whatever happens.

Control protocol on a SOCK_SEQPACKET socketpair (one message per datagram, at most 64 bytes):
fork server -> supervisor ``ready <pid>`` once after its imports; supervisor -> fork server
``fork`` with SCM_RIGHTS [stdin_r, stdout_w, stderr_w, status_w]; answer ``pid <n>`` or
``error <text>``. EOF on the socket ends the fork server.

This module never imports trio.
"""

from __future__ import annotations

import array
import ctypes
import gc
import os
import random
import signal
import socket
import sys
import traceback
from typing import NoReturn

CHILD_FDS = 4
"""Descriptors per request: the child's fds 0, 1, 2 and its status channel."""
STATUS_FD = 3
"""The status channel's descriptor number in a forked child (``RunnerConfig.status_fd``)."""
MAX_MESSAGE = 64
INTERNAL_EXIT = 8
"""Exit code when the child's own set-up fails (the runner's ``EXIT.internal``)."""

_CLONE_PARENT = 0x00008000
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class ForkServerError(Exception):
    """A request the fork server cannot serve (answered with ``error``, never fatal)."""


def clone_parent() -> int:
    """``fork()``, but the child's parent is our parent. Returns 0 in the child.

    CPython's own fork bookkeeping runs around it (``PyOS_BeforeFork`` and friends: import
    lock, threading state, ``os.register_at_fork`` hooks such as ``random``'s reseed).
    Only safe in a single-threaded process.
    """
    number = _SYS_CLONE.get(os.uname().machine)
    if number is None:
        raise ForkServerError(f"clone(CLONE_PARENT) not wired for {os.uname().machine}")
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    # x86_64 and aarch64: clone(flags, stack=0 (a copy of ours), parent_tid, child_tid, tls)
    flags = _CLONE_PARENT | signal.SIGCHLD
    pid = _libc.syscall(ctypes.c_long(number), ctypes.c_long(flags), *(ctypes.c_long(0),) * 4)
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone failed: {os.strerror(err)}")
    return int(pid)


def _threads() -> int:
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"Threads:"):
                return int(line.split()[1])
    return 0


def become_vessel(fds: list[int], supervisor: int) -> NoReturn:
    """In the new child: a clean ``python -I -S`` state, then the runner. Never returns."""
    from sandbox.process import hardening, runner

    try:
        hardening.die_with_parent(supervisor)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # safe in this order: no received fd is 0, 1 or 2
        os.closerange(CHILD_FDS, os.sysconf("SC_OPEN_MAX"))
        reset_process_state()
        hardening.forget_status_fd()
    except BaseException:
        traceback.print_exc()
        os._exit(INTERNAL_EXIT)
    try:
        runner.main()
    finally:
        os._exit(INTERNAL_EXIT)


def reset_process_state() -> None:
    """What a fresh interpreter has: no blocked signals, default handlers, fresh randomness."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGALRM, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets it at start-up
    random.seed()
    os.chdir("/")


def fork_child(fds: list[int], supervisor: int) -> int:
    """Fork a vessel child on ``fds``; return its pid."""
    if len(fds) != CHILD_FDS or min(fds) <= 2 or len(set(fds)) != CHILD_FDS:
        raise ForkServerError(f"expected {CHILD_FDS} distinct descriptors")
    if _threads() != 1:
        raise ForkServerError("the fork server is not single-threaded")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = clone_parent()
    if pid == 0:
        become_vessel(fds, supervisor)
    return pid


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(array.array("i", data[:usable]))
    return fds


def answer(message: bytes, fds: list[int], flags: int, supervisor: int) -> bytes:
    """One request's reply; the caller closes ``fds`` afterwards."""
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or message != b"fork":
            raise ForkServerError("bad request")
        return b"pid %d" % fork_child(fds, supervisor)
    except (ForkServerError, OSError) as exc:
        return b"error " + str(exc).encode("utf-8", "replace")[:MAX_MESSAGE - 6]


def warm_up() -> None:
    """Import and initialise everything a child needs, so that it starts from memory."""
    from sandbox.lang.compiler import compile_program
    from sandbox.process import hardening, runner

    hardening.warm_up()
    runner.warm_up()
    compile_program("x = [1]\nlog(str(x))\n")
    gc.collect()
    gc.freeze()  # children never touch these objects' GC headers: fewer copied pages


def serve(control_fd: int) -> NoReturn:
    """The fork server's loop; exits when the supervisor closes the socket or dies."""
    from sandbox.process.hardening import die_with_parent

    supervisor = os.getppid()
    die_with_parent(supervisor)
    warm_up()
    control = socket.socket(fileno=control_fd)
    control.send(b"ready %d" % os.getpid())
    space = socket.CMSG_SPACE(CHILD_FDS * 4)
    while True:
        message, ancdata, flags, _ = control.recvmsg(MAX_MESSAGE, space)
        fds = _received_fds(ancdata)
        try:
            if not message and not fds:
                os._exit(0)
            reply = answer(message, fds, flags, supervisor)
        finally:
            for fd in fds:
                os.close(fd)
        control.send(reply)


def main() -> NoReturn:
    """Fork server entry: ``python -I -S -c BOOT CONTROL_FD`` (``fork_server_argv``)."""
    os.umask(0o077)
    try:
        serve(int(sys.argv[1]))
    except BaseException:
        traceback.print_exc()
        os._exit(INTERNAL_EXIT)
