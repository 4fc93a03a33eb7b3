"""Node start-up detection is race-free: installs never fail while the node is fine.

The installer's child is ``/bin/sh start.sh``, which then execs Python; a command line read
mid-exec does not show the node's marker yet. These tests make that window wide (a start
script that waits before its exec) and run real installs back to back under CPU load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.donor.apply import start_node
from installer.donor.plan import Layout, StartNode
from installer.donor.procs import stop_process
from installer.errors import NodeStartError
from seattlecore import KeyPair, save_keypair
from tests.support.bundles import make_bundle

pytestmark = pytest.mark.slow
INSTALLS = int(os.environ.get("SEATTLE_INSTALL_SOAK", "10"))
"""Installs in a row under load (CI: 10, about 1 min on 2 cores; the issue's soak run: 50)."""
PORT_WRITER = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('1\\n'); time.sleep(60)"
SLOW_EXEC = """import os, sys, time
time.sleep(0.3)  # a command line without the node's marker, as mid-exec
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], os.environ["PORT"],
                          os.environ["STATE"]])
"""


def fake_start(tmp_path: Path, body: str) -> StartNode:
    layout = Layout(prefix=tmp_path / "donor")
    layout.state.mkdir(parents=True)
    (tmp_path / "slow_exec.py").write_text(SLOW_EXEC)
    script = layout.prefix / "start.sh"
    script.write_text(body.format(python=sys.executable, helper=tmp_path / "slow_exec.py",
                                  code=PORT_WRITER, port=layout.state / "nodemanager.port",
                                  state=layout.state))
    return StartNode(script=script, output=layout.prefix / "out.log", state=layout.state,
                     pid_file=layout.prefix / "nodemanager.pid")


def test_a_slow_exec_is_not_taken_for_an_exit(tmp_path: Path) -> None:
    step = fake_start(tmp_path, 'PORT={port} STATE={state} exec {python} {helper} "{code}"\n')
    pid = start_node(step, timeout=30)
    try:
        assert (step.state / "nodemanager.port").exists()
    finally:
        stop_process(pid, Layout(prefix=tmp_path / "donor").marker)


def test_an_exit_at_start_is_reported_with_its_status(tmp_path: Path) -> None:
    step = fake_start(tmp_path, "echo 'cannot open the state' >&2\nexit 3\n")
    with pytest.raises(NodeStartError, match=r"exited at start \(status 3\)[\s\S]*cannot open"):
        start_node(step, timeout=30)


@pytest.mark.timeout(60 + 15 * INSTALLS)
def test_installs_in_a_row_under_cpu_load(tmp_path: Path, safe_env: dict[str, str]) -> None:
    planner, owner = KeyPair.generate(), KeyPair.generate()
    save_keypair(tmp_path / "keys", "planner", planner)
    bundle = tmp_path / "bundle.tgz"
    bundle.write_bytes(make_bundle(planner, owner))
    prefix = tmp_path / "donor"
    install = [sys.executable, "-m", "installer", "install", str(bundle), "--prefix", str(prefix),
               "--host", "127.0.0.1", "--no-sandbox",
               "--trust", str(tmp_path / "keys" / "planner.publickey")]
    uninstall = [sys.executable, "-m", "installer", "uninstall", "--prefix", str(prefix), "--purge"]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)]
    failures = []
    try:
        for attempt in range(INSTALLS):
            done = subprocess.run(install, env=safe_env, capture_output=True, text=True,
                                  timeout=120, check=False)
            if done.returncode != 0:
                failures.append((attempt, done.stderr[-500:]))
            gone = subprocess.run(uninstall, env=safe_env, capture_output=True, text=True,
                                  timeout=120, check=False)
            assert gone.returncode == 0, gone.stderr
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert failures == []
