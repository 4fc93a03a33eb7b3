"""Perform an ``InstallPlan`` (the I/O half of plan.py) and observe what is installed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from installer.donor.plan import (
    AddBootEntry,
    Current,
    InitNode,
    InstallPlan,
    Layout,
    RemoveBootEntry,
    RemoveTree,
    StartNode,
    Step,
    StopNode,
    WriteFile,
)
from installer.donor.procs import find_process, read_int_file, spawn_detached, stop_process
from installer.donor.service import BootEntry, BootManager
from installer.donor.software import BuildVersion, KeepWheels, SwitchVersion
from installer.errors import InstallError, NodeStartError
from seattlecore import write_atomic

log = logging.getLogger(__name__)

PORT_FILE = "nodemanager.port"
DHT_PORT_FILE = "dht.port"
START_TIMEOUT = 30.0


def read_record(prefix: Path) -> dict[str, Any] | None:
    """``installer.json``, or None if absent or unreadable."""
    try:
        data = json.loads(Layout(prefix=prefix).record.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_pid(prefix: Path) -> int | None:
    """The node manager's pid if it is running (checked against its state dir)."""
    layout = Layout(prefix=prefix)
    pid = read_int_file(layout.pid)
    return pid if find_process(pid, layout.marker) is not None else None


def observe(prefix: Path, boot: BootEntry, manager: BootManager) -> Current:
    """What is in ``prefix`` now, and whether the boot entry exists."""
    layout = Layout(prefix=prefix)
    return Current(
        record=read_record(prefix),
        state_ready=(layout.state / "state.sqlite").exists()
        and (layout.state / "node.privatekey").exists(),
        running_pid=running_pid(prefix),
        boot_entry=manager.is_present(boot),
    )


def _init_node(step: InitNode) -> None:
    argv = [step.python, "-m", "nodemanager", "init", "--state", str(step.state),
            "--spec", str(step.spec)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run the node manager's init: {exc}") from exc
    if result.returncode != 0:
        raise InstallError(f"node manager init failed: {result.stderr.strip()}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def start_node(step: StartNode, timeout: float = START_TIMEOUT) -> int:
    """Start the node detached and wait until it is ready; return its pid.

    Race-free: we are the child's parent, so ``waitpid`` tells whether it exited (however
    its command line looks mid-exec, which ``find_process`` cannot); readiness is explicit:
    the node writes its port file once its listener is bound.
    """
    for name in (PORT_FILE, DHT_PORT_FILE):
        (step.state / name).unlink(missing_ok=True)
    marker = Layout(prefix=step.script.parent).marker
    pid = spawn_detached(["/bin/sh", str(step.script)], step.output, step.script.parent)
    write_atomic(step.pid_file, f"{pid}\n".encode())
    deadline = time.monotonic() + timeout
    while not (step.state / PORT_FILE).exists():
        exited, status = os.waitpid(pid, os.WNOHANG)
        if exited:
            code = os.waitstatus_to_exitcode(status)
            raise NodeStartError(f"the node manager exited at start (status {code}):\n"
                                 f"{_tail(step.output)}")
        if time.monotonic() > deadline:
            stop_process(pid, marker)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # our child: its session, whatever it runs
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise NodeStartError(f"the node manager did not start in {timeout:.0f} s:\n"
                                 f"{_tail(step.output)}")
        time.sleep(0.02)
    log.info("node manager running, pid %d", pid)
    return pid


def apply_step(step: Step, manager: BootManager) -> None:
    """Perform one step."""
    match step:
        case WriteFile(path, data, mode):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, mode)
        case InitNode():
            _init_node(step)
        case StartNode():
            start_node(step)
        case StopNode(pid, marker):
            stop_process(pid, marker)
        case AddBootEntry(entry):
            manager.add(entry)
        case RemoveBootEntry(entry):
            manager.remove(entry)
        case RemoveTree(path):
            shutil.rmtree(path, ignore_errors=True)
        case BuildVersion() | SwitchVersion() | KeepWheels():
            step.perform()


def apply_plan(plan: InstallPlan, manager: BootManager) -> None:
    """Perform every step in order; stop at the first failure (re-running resumes)."""
    for step in plan.steps:
        log.info("%s", step.describe())
        try:
            apply_step(step, manager)
        except OSError as exc:
            raise InstallError(f"{step.describe()}: {exc}") from exc
