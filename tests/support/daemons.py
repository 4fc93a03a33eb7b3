"""The one helper that starts real node-manager processes for tests.

``init_node`` runs ``seattle-nodemanager init`` (as ``python -m nodemanager``) on a spec;
``node_manager`` starts the daemon, waits until it has written its port files (the
condition it is ready on) and kills it when the block ends. A daemon that exits before it is
ready fails the test at once with the end of its stderr, instead of a 30 s timeout.

    async with node_manager(state, bootstrap=[boot]) as nm:
        async with open_node_client("127.0.0.1", nm.port, identity=owner) as client: ...
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from tests.support.polling import eventually

PORT_FILE = "nodemanager.port"
DHT_PORT_FILE = "dht.port"
START_TIMEOUT = 30.0


def init_node(state: Path, spec: dict[str, Any]) -> str:
    """``seattle-nodemanager init --state STATE --spec ...``; returns the node key it printed."""
    spec_path = state.parent / f"{state.name}.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "nodemanager", "init", "--state", str(state),
                           "--spec", str(spec_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def read_port(state: Path, name: str = PORT_FILE) -> int:
    return int((state / name).read_text())


@dataclass
class Daemon:
    """A running node manager process and the ports it wrote."""

    process: trio.Process
    state: Path
    port: int
    dht_port: int | None

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


class DaemonExited(Exception):
    """The daemon exited before it was ready (not retried: the test fails at once)."""


async def _wait_ready(process: trio.Process, ready: Path, errors: Path) -> None:
    def started() -> bool:
        if process.poll() is not None:
            tail = errors.read_text(errors="replace")[-2000:]
            raise DaemonExited(f"node manager exited ({process.returncode}) at start:\n{tail}")
        return ready.exists()

    await eventually(started, timeout=START_TIMEOUT, what=f"{ready.name} written")


@asynccontextmanager
async def node_manager(state: Path, *, bootstrap: Sequence[str] = (), sandbox: bool = False,
                       dht: bool = True, wait_dht: bool = True,
                       extra: Sequence[str] = ()) -> AsyncIterator[Daemon]:
    """Start ``seattle-nodemanager --state STATE`` until it is ready; kill it afterwards.

    Without ``sandbox`` the node runs ``--no-sandbox`` (control plane only); without ``dht``
    it runs ``--no-dht``. Ready means ``nodemanager.port`` exists, and ``dht.port`` too
    when ``dht and wait_dht``.
    """
    for name in (PORT_FILE, DHT_PORT_FILE):
        (state / name).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "nodemanager", "--state", str(state), *extra]
    argv += [arg for peer in bootstrap for arg in ("--bootstrap", peer)]
    argv += [] if sandbox else ["--no-sandbox"]
    argv += [] if dht else ["--no-dht"]
    errors = state / "daemon.stderr"
    with errors.open("wb") as sink:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        ready = DHT_PORT_FILE if dht and wait_dht else PORT_FILE
        await _wait_ready(process, state / ready, errors)
        dht_port = state / DHT_PORT_FILE
        yield Daemon(process, state, read_port(state),
                     read_port(state, DHT_PORT_FILE) if dht_port.exists() else None)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()
