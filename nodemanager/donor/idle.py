"""How long the donor has not touched the machine: logind's idle hints and login terminals.

Two sources, the smaller idle time wins (any sign of the donor counts):
- systemd-logind, where it runs: ``loginctl show-session`` for every session of class
  ``user`` gives ``IdleHint`` and ``IdleSinceHint`` (µs since the epoch). Desktops (GNOME,
  KDE) set the hint from keyboard and mouse, so a donor at a graphical session counts, which
  terminal times alone cannot see. A session with ``IdleHint=no`` is in use now (idle 0).
- the login terminals of ``psutil.users()``: seconds since their device was last read or
  written (atime), as before.
Neither answering means the host cannot tell (None): the policy then judges by CPU alone.

``LogindIdle.refresh`` runs ``loginctl`` (bounded, in a worker thread, every
``LOGIND_EVERY`` seconds); the donor control's tick only reads the last answer.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence

import psutil

log = logging.getLogger(__name__)

LOGIND_EVERY = 5.0
LOGIND_RETRY = 60.0
"""How often a host without logind is asked again (logind may start later)."""
LOGINCTL_TIMEOUT = 3.0
MAX_SESSIONS = 64
_PROPERTIES = ("Id", "Class", "IdleHint", "IdleSinceHint")


def parse_sessions(text: str) -> list[str]:
    """Session ids from ``loginctl list-sessions --no-legend`` (pure; at most 64)."""
    ids = [line.split()[0] for line in text.splitlines() if line.split()]
    return [i for i in ids if i.isalnum() and len(i) <= 32][:MAX_SESSIONS]


def logind_idle(text: str, now: float) -> float | None:
    """Seconds since any user session was last in use, from ``loginctl show-session ID...
    -p Id -p Class -p IdleHint -p IdleSinceHint`` (blocks separated by blank lines); None
    without a user session (pure)."""
    idle: float | None = None
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Class") != "user" or props.get("IdleHint") not in ("yes", "no"):
            continue
        seconds = 0.0
        if props["IdleHint"] == "yes":
            try:
                since = int(props.get("IdleSinceHint", "0")) / 1e6
            except ValueError:
                continue
            seconds = max(0.0, now - since) if since > 0 else 0.0
        idle = seconds if idle is None else min(idle, seconds)
    return idle


def terminal_idle(now: float) -> float | None:
    """Seconds since input on any login terminal (their atime); None without sessions."""
    newest = None
    try:
        users = psutil.users()
    except OSError:
        return None
    for user in users:
        if not user.terminal:
            continue
        try:
            atime = os.stat(f"/dev/{user.terminal}").st_atime
        except OSError:
            continue
        newest = atime if newest is None else max(newest, atime)
    return None if newest is None else max(0.0, now - newest)


def combine(*values: float | None) -> float | None:
    """The smallest idle time known; None if no source knows (pure)."""
    known = [v for v in values if v is not None]
    return min(known) if known else None


class LogindIdle:
    """The last answer of logind (None: no logind, no user session, or not asked yet)."""

    def __init__(self, loginctl: Sequence[str] = ("loginctl",)) -> None:
        self._cmd = list(loginctl)
        self.idle_at: tuple[float, float] | None = None
        """(idle seconds, wall time of the answer)."""
        self.available = True

    def _run(self, *args: str) -> str | None:
        try:
            done = subprocess.run([*self._cmd, *args], capture_output=True, text=True,
                                  timeout=LOGINCTL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("loginctl: %s", exc)
            return None
        return done.stdout if done.returncode == 0 else None

    def refresh(self) -> None:
        """Ask logind once (blocking: call it from a worker thread)."""
        listed = self._run("list-sessions", "--no-legend")
        if listed is None:
            if self.available:
                log.info("no answer from logind: idle time from login terminals only")
            self.available, self.idle_at = False, None
            return
        self.available = True
        ids = parse_sessions(listed)
        shown = self._run("show-session", *ids, *(f"--property={p}" for p in _PROPERTIES)) if ids else ""
        now = time.time()
        idle = None if shown is None else logind_idle(shown, now)
        self.idle_at = None if idle is None else (idle, now)

    def idle(self, now: float) -> float | None:
        """Idle seconds at ``now``: the last answer, aged by the time since it."""
        if self.idle_at is None:
            return None
        seconds, at = self.idle_at
        return seconds + max(0.0, now - at) if seconds > 0 else 0.0
