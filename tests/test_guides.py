"""The planner's, donor's and operator's guides, run from their own code blocks.

Each test takes the commands out of docs/planner.md, docs/donor.md and docs/operator.md
(tests/support/guides.py) and runs them as written: the placeholders a reader fills in
(keys, addresses, directories) get real values, optional ``[...]`` parts are left out, and
nothing else changes, so a renamed command or option, a changed default or a promise the
commands no longer keep fails here (docs/researcher.md has tests/seash/test_walkthrough.py,
docs/lab.md tests/installer/test_lab_guide.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from installer import open_bundle
from seattlecore import KeyPair, load_public, save_keypair
from tests.support.crontab import install_fake_crontab
from tests.support.dht import read_nodes, reap, spawn
from tests.support.guides import DOCS, doc_commands, find, runnable
from tests.support.polling import eventually_sync

pytestmark = pytest.mark.slow

# what the planner guide's example build command names, and what this test puts there
PLANNER_BOOTSTRAP = ("203.0.113.7:4000", "198.51.100.2:4000")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, **(env or {})})


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    return done.stdout


@contextmanager
def dht_serve(work: Path, name: str) -> Iterator[tuple[str, Path]]:
    """docs/operator.md's ``seattle-dht serve`` (with ``--state DIR``): its address, its state."""
    state = work / name
    argv = runnable(find(doc_commands("operator.md"), "seattle-dht serve"), {"DIR": str(state)},
                    keep={"--state"})
    process = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.match(r"DHT node listening on (\S+) \(UDP\); Ctrl-C stops it$", first.strip())
        assert found, first + (process.stderr.read() if process.poll() is not None else "")
        yield found.group(1), state
    finally:
        process.terminate()
        process.communicate(timeout=30)


def build_planner_bundle(work: Path, bootstrap: tuple[str, str]) -> str:
    """docs/planner.md's two commands, as written (its example peers replaced by ``bootstrap``);
    returns the hex key the guide's ``<64-hex owner key>`` became."""
    commands = doc_commands("planner.md")
    for name in ("alice", "bob", "carol"):  # researchers send the planner their public keys
        save_keypair(work, name, KeyPair.generate())
    owner = KeyPair.generate().public.to_text()
    ok(run(runnable(find(commands, "seattle-installer genkey")), work))
    values = {"<64-hex owner key>": owner, **dict(zip(PLANNER_BOOTSTRAP, bootstrap, strict=True))}
    ok(run(runnable(find(commands, "seattle-installer build"), values), work))
    return owner


def test_planner_guide_builds_the_bundle_it_describes(tmp_path: Path) -> None:
    owner = build_planner_bundle(tmp_path, PLANNER_BOOTSTRAP)
    bundle = open_bundle((tmp_path / "lab-installer.tgz").read_bytes(),
                         trust=load_public(tmp_path / "planner.publickey"))
    manifest = bundle.manifest
    assert [(v.percent, v.reserved) for v in manifest.vessels] == [(40, False), (30, False), (30, True)]
    alice, bob, carol = (load_public(tmp_path / f"{n}.publickey") for n in ("alice", "bob", "carol"))
    assert manifest.vessels[0].owner == alice and manifest.vessels[0].users == (bob, carol)
    assert manifest.vessels[1].owner.to_text() == owner
    assert manifest.vessels[2].owner == manifest.planner  # "the remainder ... owned by the planner"
    assert manifest.bootstrap == PLANNER_BOOTSTRAP
    assert (tmp_path / "planner.privatekey").stat().st_mode & 0o777 == 0o600  # "(mode 0600)"


def test_donor_guide_install_status_uninstall(tmp_path: Path) -> None:
    """Install the planner guide's bundle as docs/donor.md says, check it, uninstall twice."""
    work, prefix = tmp_path / "work", tmp_path / "prefix"
    work.mkdir()
    crontab = install_fake_crontab(tmp_path / "bin" / "crontab")
    env = {"SEATTLE_PREFIX": str(prefix), "HOME": str(tmp_path / "home"),
           "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
           "SEATTLE_CRONTAB": str(crontab), "FAKE_CRONTAB_FILE": str(tmp_path / "crontab.txt"),
           "SEATTLE_SYSTEMD_USER_DIR": str(tmp_path / "systemd")}
    commands = doc_commands("donor.md")
    with dht_serve(work, "dht1") as (first, _), dht_serve(work, "dht2") as (second, _):
        build_planner_bundle(work, (first, second))
        install = find(commands, "seattle-installer install")
        # on loopback only (the guide's default listens on every address)
        out = ok(run(runnable(install, {"ADDR": "127.0.0.1"}, keep={"--host"}), work, env))
        assert "WARNING" not in out
        try:
            status = ok(run(runnable(find(commands, "seattle-installer status")), work, env))
            assert "node manager: running" in status and "donating 10 %" in status, status
            assert (prefix / "state" / "node.privatekey").exists()  # step 4 of the guide
            assert "@reboot /bin/sh " in (tmp_path / "crontab.txt").read_text()  # step 6
        finally:
            uninstall = runnable(find(commands, "seattle-installer uninstall"))
            ok(run(uninstall, work, env))
    assert "(`nothing installed in DIR; nothing to do`" in (DOCS / "donor.md").read_text()
    ok(run(uninstall, work, env))  # "Running it twice is harmless"
    assert "seattle-p2p" not in (tmp_path / "crontab.txt").read_text()
    nowhere = ok(run([*uninstall, "--prefix", str(tmp_path / "none")], work, env))
    assert f"nothing installed in {tmp_path / 'none'}; nothing to do" in nowhere


def test_donor_guide_whole_testbed(tmp_path: Path) -> None:
    """docs/donor.md, "A whole testbed on one machine": up, status, down, then demo."""
    commands = doc_commands("donor.md")
    ok(run(runnable(find(commands, "seattle-testbed up")), tmp_path))
    try:
        status = run(runnable(find(commands, "seattle-testbed status")), tmp_path)
        assert status.returncode == 0 and status.stdout.count(" running ") == 5, status.stdout
        data = json.loads((tmp_path / "testbed" / "testbed.json").read_text())
        assert (tmp_path / "testbed" / "keys" / "demo.privatekey").exists()
        assert len(data["nodes"]) == 5 and data["sandbox"] is True
    finally:
        down = ok(run(runnable(find(commands, "seattle-testbed down")), tmp_path))
    assert "stopped 5 of 5 node managers" in down
    demo = ok(run(runnable(find(commands, "seattle-testbed demo")), tmp_path, timeout=300))
    assert "hello from a vessel" in demo


def alternatives(command: str) -> list[str]:
    """``seattle-dht peers --node HOST:PORT | --state DIR`` -> one command per choice."""
    head, _, choices = command.partition(" --")
    return [" ".join(f"{head} --{choice.strip().removeprefix('--')}".split())
            for choice in choices.split(" | ")]


def test_operator_guide_commands(tmp_path: Path) -> None:
    """docs/operator.md's command block against a served DHT node with adverts on it."""
    commands = doc_commands("operator.md")
    user = KeyPair.generate().public
    with dht_serve(tmp_path, "dht") as (address, state):
        host, _, port = address.rpartition(":")
        publishers = spawn(user.to_text(), [(host, int(port))], count=2)
        try:
            read_nodes(publishers)
            pool = KeyPair.generate().public  # a pool with no vessels: an empty, clean answer
            values = {"USERKEY": user.to_text(), "POOLKEY": pool.to_text(), "HOST:PORT": address,
                      "DIR": str(state)}
            documented = [c for c in commands if c.startswith("seattle-dht ")
                          and "serve" not in c and "41234" not in c]
            every = [one for c in documented for one in alternatives(c)]
            assert len(every) == 8, every  # lookup x2, status x2, peers x3, crawl

            def outputs() -> dict[str, str]:
                return {c: ok(run(runnable(c, values), tmp_path)) for c in every}

            def complete(out: dict[str, str]) -> dict[str, str] | None:
                lookup = out[find(every, "seattle-dht lookup USERKEY")]
                crawl = out[find(every, "seattle-dht crawl")]
                return out if "2 verified adverts" in lookup and "live nodes: 3" in crawl else None

            out = eventually_sync(lambda: complete(outputs()), timeout=60,
                                  what="the served node sees both publishers")
        finally:
            reap(publishers)
    assert "routing table" in out["seattle-dht status --node HOST:PORT"]
    assert "3 peers" in out["seattle-dht peers --bootstrap HOST:PORT"]  # the network, walked
    assert "2 peers" in out["seattle-dht peers --node HOST:PORT"]  # the node's own table
