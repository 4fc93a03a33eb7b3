"""The donor's controls on a real install: pause/resume seen by researchers, share in place.

The donor runs the real CLI in subprocesses (HOME and crontab redirected into tmp_path); the
node manager runs vessels in the sandbox. The install's prefix is a small tmpfs, so that
"the files would not fit" is reachable with a few megabytes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from installer.donor.procs import read_int_file, stop_process
from nodemanager import open_node_client
from nodemanager.donor.reshare import REQUEST_FILE
from nodemanager.node.spec import STATE_FILE
from nodemanager.node.state import NodeState
from seattlecore import KeyPair, save_keypair
from tests.support.daemons import init_node
from tests.support.polling import eventually
from tests.support.seash import RESOURCES
from tests.support.tmpfs import small_tmpfs

pytestmark = pytest.mark.slow

COUNTER = b"n = 0\nwhile True:\n    log('count', n, '\\n')\n    n = n + 1\n    sleep(0.1)\n"


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process([sys.executable, "-m", "installer", *args], env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)


def _counts(log: bytes) -> list[int]:
    return [int(line.split()[1]) for line in log.decode().splitlines() if line.startswith("count ")]


async def test_pause_resume_and_share_in_place(tmp_path: Path, safe_env: dict[str, str]) -> None:
    keys = tmp_path / "keys"
    save_keypair(keys, "planner", KeyPair.generate())
    owner, user = KeyPair.generate(), KeyPair.generate()
    save_keypair(keys, "owner", owner)
    with small_tmpfs(tmp_path / "disk", "80m") as disk:
        prefix = disk / "donor"
        try:
            built = await cli(safe_env, "build", "--planner-key", str(keys / "planner.privatekey"),
                              "--vessel", f"50:{owner.public}:{user.public}", "--vessel",
                              f"50:{owner.public}", "--bootstrap", "127.0.0.1:9",
                              "-o", str(tmp_path / "b.tgz"))
            assert built.returncode == 0, built.stderr
            done = await cli(safe_env, "install", str(tmp_path / "b.tgz"), "--prefix", str(prefix),
                             "--host", "127.0.0.1", "--no-service", "--percent", "50")
            assert done.returncode == 0, done.stderr
            node_key = (prefix / "state" / "node.publickey").read_text()
            port = read_int_file(prefix / "state" / "nodemanager.port")
            assert port is not None
            async with open_node_client("127.0.0.1", port, identity=owner) as nm:
                await _pause_and_resume(safe_env, prefix, nm, keys)
                await _share(safe_env, prefix, nm, node_key, user)
        finally:
            await cli(safe_env, "uninstall", "--prefix", str(prefix))
            stop_process(read_int_file(prefix / "nodemanager.pid") or 0, str(prefix) + "/", timeout=5)


async def _pause_and_resume(env: dict[str, str], prefix: Path, nm: object, keys: Path) -> None:
    from nodemanager import NodeClient
    assert isinstance(nm, NodeClient)
    await nm.add_file("v1", "count.py", COUNTER)
    await nm.start_vessel("v1", "count.py")
    await eventually(lambda: _ready(nm), timeout=30)
    paused = await cli(env, "pause", "--for", "2h", "--prefix", str(prefix))
    assert paused.returncode == 0, paused.stderr

    async def shows_paused() -> bool:
        info = {v.name: v for v in (await nm.get_vessels()).vessels}
        return info["v1"].paused == "manual" and info["v2"].paused is None
    await eventually(shows_paused, timeout=10)
    status = await nm.get_node_status()
    assert status.revision >= 9 and status.donor["paused"] == "manual"
    shown = await cli(env, "status", "--prefix", str(prefix))
    assert b"vessels: PAUSED (manual" in shown.stdout, shown.stdout
    assert status.donor["mechanism"]  # says how shares are held
    await trio.sleep(0.5)
    frozen_at = _counts(await nm.read_log("v1"))[-1]
    await trio.sleep(1.0)
    assert _counts(await nm.read_log("v1"))[-1] == frozen_at
    assert (await nm.get_vessels()).vessels[0].status == "Started"

    seash = await trio.run_process(
        [sys.executable, "-m", "seash", "--home", str(keys), "-c",
         f"loadkeys owner; contact 127.0.0.1:{status_port(prefix)}; list; wait --for 1"], env=env,
        capture_stdout=True, capture_stderr=True, check=False)
    assert seash.returncode == 0, seash.stdout + seash.stderr
    assert b"Started (paused by its donor: manual)" in seash.stdout, seash.stdout
    assert b"paused by its donor (manual)" in seash.stdout, seash.stdout  # wait: ok, not failed

    resumed = await cli(env, "resume", "--prefix", str(prefix))
    assert resumed.returncode == 0, resumed.stderr

    async def counts_on() -> bool:
        seen = _counts(await nm.read_log("v1"))
        assert seen == list(range(seen[0], seen[0] + len(seen))), "the program restarted"
        return seen[-1] >= frozen_at + 3
    await eventually(counts_on, timeout=30)
    await nm.stop_vessel("v1")


def status_port(prefix: Path) -> int:
    return read_int_file(prefix / "state" / "nodemanager.port") or 0


async def _ready(nm: object) -> bool:
    from nodemanager import NodeClient
    assert isinstance(nm, NodeClient)
    return len(_counts(await nm.read_log("v1"))) >= 2


async def _share(env: dict[str, str], prefix: Path, nm: object, node_key: str,
                 user: KeyPair) -> None:
    from nodemanager import NodeClient
    assert isinstance(nm, NodeClient)
    before = await nm.get_vessel_resources("v1")
    data = os.urandom(2_000_000)
    await nm.add_file("v1", "data.bin", data)

    up = await cli(env, "share", "100", "--prefix", str(prefix))
    assert up.returncode == 0, up.stderr
    after = await nm.get_vessel_resources("v1")
    assert after["diskused"] == pytest.approx(2 * before["diskused"], rel=1e-6)
    assert after["cpu"] == pytest.approx(2 * before["cpu"], rel=1e-4)
    assert after["events"] == before["events"] and after.connport == before.connport

    refused = await cli(env, "share", "2", "--prefix", str(prefix))
    assert refused.returncode == 1
    assert b"v1 stores" in refused.stderr and b"would get" in refused.stderr, refused.stderr
    assert (await nm.get_vessel_resources("v1")) == after  # nothing changed

    down = await cli(env, "share", "25", "--prefix", str(prefix))
    assert down.returncode == 0, down.stderr
    small = await nm.get_vessel_resources("v1")
    assert small["diskused"] == pytest.approx(before["diskused"] / 2, rel=1e-6)
    assert await nm.retrieve_file("v1", "data.bin") == data
    info = {v.name: v for v in (await nm.get_vessels()).vessels}
    assert info["v1"].users == (user.public,)
    assert (prefix / "state" / "node.publickey").read_text() == node_key
    status = await cli(env, "status", "--prefix", str(prefix))
    assert b"donating 25 %" in status.stdout, status.stdout


RESHARER = """
import sys
from pathlib import Path
from nodemanager.node.files import VesselStore
from nodemanager.donor.reshare import ReshareRequest, apply_reshare
from nodemanager.node.spec import STATE_FILE
from nodemanager.node.state import NodeState
state = Path(sys.argv[1])
with NodeState(state / STATE_FILE) as node:
    store = VesselStore(state)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        apply_reshare(node, store, ReshareRequest(str(i), 20.0 if i % 2 else 10.0, 10.0))
"""


def test_kill_9_in_the_middle_of_reshares_leaves_one_whole_share(tmp_path: Path) -> None:
    """A process reshares 10 <-> 20 % in a loop and is SIGKILLed at seeded random moments;
    after each kill every vessel is at the share the database records, never a mix."""
    state = tmp_path / "state"
    owner = KeyPair.generate().public.to_text()
    init_node(state, {"vessels": [{"owner": owner, "resources": RESOURCES} for _ in range(4)]})
    with NodeState(state / STATE_FILE) as node:
        original = {name: v.resources for name, v in node.vessels.items()}
    rng = random.Random(22)
    seen_percent = set()
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", RESHARER, str(state)],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        trio.run(trio.sleep, rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with NodeState(state / STATE_FILE) as node:
            percent = node.donated_percent or 10.0
            seen_percent.add(percent)
            for name, vessel in node.vessels.items():
                ratio = percent / 10.0
                assert vessel.resources["cpu"] == pytest.approx(original[name]["cpu"] * ratio, rel=1e-3)
                assert vessel.resources["diskused"] == pytest.approx(
                    original[name]["diskused"] * ratio, rel=1e-3)
    assert seen_percent == {10.0, 20.0}, seen_percent  # the kills met both shares
    assert not (state / REQUEST_FILE).exists()
