"""The launcher of a managed install: runs the current version, restarts it, rolls back.

Standard library only. The installer copies this file to ``PREFIX/launcher.py``; ``start.sh``
runs it with the base interpreter, so it outlives every version it starts::

    python3 PREFIX/launcher.py --prefix PREFIX -- -m nodemanager --state ... --updates ...

It runs ``PREFIX/versions/V/bin/python ARGS`` (V: where ``current`` points now) in a loop:

- exit code ``RESTART`` (75): the node manager switched ``current`` to a new version; start
  again (reading the symlink anew);
- while ``updates/pending.json`` exists (a new version is on trial), every start counts a boot;
  when boots exceed ``--max-boots`` or the trial's deadline passes (the child is stopped
  then), ``current`` flips back to ``previous``, the version is marked ``updates/bad/V`` and
  the previous version starts. The new version ends the trial itself by deleting
  ``pending.json`` once its health check passed;
- SIGTERM/SIGINT are passed to the child; the launcher exits when it does.

``decide_start``/``decide_exit`` are the pure rules; the rest is a thin shell.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

RESTART = 75
MAX_BOOTS = 3
POLL = 0.2
STOP_GRACE = 15.0

StartAction = Literal["run", "rollback"]
ExitAction = Literal["restart", "stop"]


def decide_start(pending: dict[str, Any] | None, now: float, max_boots: int) -> StartAction:
    """Before a start: roll back if the trial used up its boots or its deadline."""
    if pending is None:
        return "run"
    if int(pending.get("boots", 0)) >= max_boots or now > float(pending.get("deadline", 0)):
        return "rollback"
    return "run"


def decide_exit(code: int, pending: dict[str, Any] | None, stopping: bool) -> ExitAction:
    """After the child ended: restart on request or during a trial, else stop."""
    if stopping:
        return "stop"
    if code == RESTART or pending is not None:
        return "restart"
    return "stop"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
    os.replace(tmp, path)


def flip(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` atomically (rename over the old link)."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def log_event(updates: Path, event: dict[str, Any]) -> None:
    with (updates / "events.log").open("a") as handle:
        handle.write(json.dumps({"at": time.time(), **event}, sort_keys=True) + "\n")


def rollback(prefix: Path, pending: dict[str, Any], reason: str) -> None:
    """``current`` back to ``previous``; the failed version is marked bad; trial over."""
    updates = prefix / "updates"
    bad = str(pending.get("to", "unknown"))
    (updates / "bad").mkdir(exist_ok=True)
    (updates / "bad" / bad).write_text(reason + "\n")
    previous = prefix / "previous"
    if previous.is_symlink():
        flip(prefix / "current", os.readlink(previous))
    (updates / "pending.json").unlink(missing_ok=True)
    log_event(updates, {"event": "rollback", "from": bad, "to": pending.get("from"),
                        "reason": reason})
    print(f"launcher: rolled back from {bad}: {reason}", file=sys.stderr, flush=True)


class Launcher:
    """The I/O shell around the two rules above."""

    def __init__(self, prefix: Path, args: list[str], max_boots: int) -> None:
        self.prefix = prefix
        self.args = args
        self.max_boots = max_boots
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def pending_path(self) -> Path:
        return self.prefix / "updates" / "pending.json"

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def start_child(self) -> None:
        pending = read_json(self.pending_path)
        if decide_start(pending, time.time(), self.max_boots) == "rollback":
            assert pending is not None
            rollback(self.prefix, pending, "no healthy start within the deadline "
                     f"({pending.get('boots', 0)} boots)")
        elif pending is not None:
            pending["boots"] = int(pending.get("boots", 0)) + 1
            write_json(self.pending_path, pending)
        # The resolved version directory, not current/: a running version must not see
        # another version's files when current flips under it.
        python = Path(os.path.realpath(self.prefix / "current")) / "bin" / "python"
        self.child = subprocess.Popen([str(python), *self.args])

    def wait_child(self) -> int:
        """Wait for the child; stop it if a trial's deadline passes meanwhile."""
        assert self.child is not None
        while True:
            try:
                return self.child.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                pass
            pending = read_json(self.pending_path)
            if pending is not None and time.time() > float(pending.get("deadline", 0)):
                self.stop_child()

    def stop_child(self) -> None:
        assert self.child is not None
        self.child.terminate()
        try:
            self.child.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.child.kill()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        while True:
            started = time.monotonic()
            self.start_child()
            code = self.wait_child()
            if decide_exit(code, read_json(self.pending_path), self.stopping) == "stop":
                return 0 if self.stopping else code
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))  # no hot crash loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher.py", description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--max-boots", type=int, default=MAX_BOOTS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the child's arguments")
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    return Launcher(options.prefix.absolute(), args, options.max_boots).run()


if __name__ == "__main__":
    sys.exit(main())
