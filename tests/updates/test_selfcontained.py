"""Self-contained installers: ``python3 lab-installer.pyz install`` on a machine with no
checkout, no project venv on PATH and no reachable package index; tampered payloads refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import psutil
import pytest
import trio

from installer import BundleError, UntrustedPlanner
from installer.__main__ import main as installer_main
from installer.donor.launcher import decide_exit, decide_start
from installer.donor.procs import read_int_file
from installer.donor.software import base_python
from installer.packing.pyz import open_pyz
from installer.packing.pyzmain import BUNDLE_MEMBER, PAYLOAD_DIR, PyzError, read_manifest, software_of
from installer.packing.wheels import Wheelhouse
from nodemanager import open_node_client
from seattlecore import KeyPair, load_private, save_keypair
from tests.support.nodes import wait_log


def build_installer(tmp: Path, house: Wheelhouse, *extra: str, name: str = "lab-installer.pyz",
                    planner: str = "planner") -> Path:
    """A .pyz signed by ``tmp/planner``, carrying ``house``'s wheels."""
    if not (tmp / f"{planner}.privatekey").exists():
        save_keypair(tmp, planner, KeyPair.generate())
    out = tmp / name
    code = installer_main(["build", "--planner-key", str(tmp / f"{planner}.privatekey"),
                           "--vessel", f"50:{tmp / f'{planner}.publickey'}",
                           "--bootstrap", "127.0.0.1:9", "--wheelhouse", str(house.directory),
                           "-o", str(out), *extra])
    assert code == 0
    return out


def rewrite(pyz: Path, out: Path, change: dict[str, bytes | None]) -> Path:
    """Copy a pyz, replacing (bytes) or dropping (None) members, adding new ones."""
    with zipfile.ZipFile(pyz) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in change:
                continue
            dst.writestr(info, src.read(info))
        for name, data in change.items():
            if data is not None:
                dst.writestr(name, data)
    return out


def run_pyz(pyz: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([base_python(), str(pyz), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_build_lists_every_wheel_with_its_hash(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    pyz = build_installer(tmp_path, wheelhouse)
    opened = open_pyz(pyz, trust=load_private(tmp_path / "planner.privatekey").public)
    names = {f.name for f in opened.bundle.manifest.payload}
    assert names == {w.name for w in wheelhouse.files()}
    assert any(n.startswith("pynacl-") for n in names) and any(n.startswith("pip-") for n in names)
    assert opened.version == wheelhouse.version
    assert opened.bundle.manifest.software is not None
    assert opened.bundle.manifest.software.no_index


def test_project_only_ships_the_project_and_pip(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    pyz = build_installer(tmp_path, wheelhouse, "--project-only")
    opened = open_pyz(pyz)
    names = sorted(f.name for f in opened.bundle.manifest.payload)
    assert len(names) == 2 and names[0].startswith("pip-") and names[1].startswith("seattle_p2p-")
    assert opened.bundle.manifest.software is not None
    assert not opened.bundle.manifest.software.no_index


def test_tampered_wheel_is_refused_by_both_stages(tmp_path: Path, wheelhouse: Wheelhouse,
                                                  donor_env: dict[str, str]) -> None:
    pyz = build_installer(tmp_path, wheelhouse)
    member = PAYLOAD_DIR + wheelhouse.project_wheel.name
    with zipfile.ZipFile(pyz) as archive:
        data = bytearray(archive.read(member))
    data[len(data) // 2] ^= 0xFF
    bad = rewrite(pyz, tmp_path / "bad.pyz", {member: bytes(data)})
    with pytest.raises(BundleError, match="sha256"):
        open_pyz(bad)
    done = run_pyz(bad, tmp_path, donor_env, "install", "--prefix", str(tmp_path / "p"))
    assert done.returncode == 2 and "does not match its sha256" in done.stderr
    assert not (tmp_path / "p" / "versions").exists()


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_payload_must_match_the_manifest_exactly(tmp_path: Path, wheelhouse: Wheelhouse,
                                                 change: str) -> None:
    pyz = build_installer(tmp_path, wheelhouse)
    edit: dict[str, bytes | None] = (
        {PAYLOAD_DIR + "evil-1.0-py3-none-any.whl": b"x"} if change == "extra"
        else {PAYLOAD_DIR + wheelhouse.project_wheel.name: None})
    with pytest.raises(BundleError, match="do not match the manifest"):
        open_pyz(rewrite(pyz, tmp_path / "bad.pyz", edit))


def test_untrusted_planner_leaves_no_version_behind(tmp_path: Path, wheelhouse: Wheelhouse,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pyz = build_installer(tmp_path, wheelhouse)
    save_keypair(tmp_path, "other", KeyPair.generate())
    prefix = tmp_path / "p"
    with zipfile.ZipFile(pyz) as archive:
        _, version, _ = software_of(read_manifest(archive))
    built = prefix / "versions" / version  # what the pyz's first stage leaves for stage two
    built.mkdir(parents=True)
    code = installer_main(["install", str(pyz), "--prefix", str(prefix), "--no-service",
                           "--trust", str(tmp_path / "other.publickey")])
    assert code == 1 and "not the trusted" in capsys.readouterr().err
    assert not built.exists()
    with pytest.raises(UntrustedPlanner):
        open_pyz(pyz, trust=load_private(tmp_path / "other.privatekey").public)


def test_a_pyz_without_a_bundle_is_refused(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    pyz = build_installer(tmp_path, wheelhouse)
    with pytest.raises(PyzError), zipfile.ZipFile(
            rewrite(pyz, tmp_path / "b.pyz", {BUNDLE_MEMBER: None})) as archive:
        read_manifest(archive)


def test_launcher_rules() -> None:
    trial = {"from": "1", "to": "2", "deadline": 100.0, "boots": 1}
    assert decide_start(None, 50.0, 3) == "run"
    assert decide_start(trial, 50.0, 3) == "run"
    assert decide_start({**trial, "boots": 3}, 50.0, 3) == "rollback"
    assert decide_start(trial, 101.0, 3) == "rollback"
    assert decide_exit(75, None, stopping=False) == "restart"
    assert decide_exit(1, trial, stopping=False) == "restart"
    assert decide_exit(1, None, stopping=False) == "stop"
    assert decide_exit(75, trial, stopping=True) == "stop"


def node_child(prefix: Path) -> psutil.Process:
    launcher = psutil.Process(read_int_file(prefix / "nodemanager.pid"))
    assert str(prefix / "launcher.py") in launcher.cmdline()
    (child,) = launcher.children()
    return child


@pytest.mark.slow
async def test_donor_installs_from_the_pyz_alone(tmp_path: Path, wheelhouse: Wheelhouse,
                                                 donor_env: dict[str, str]) -> None:
    """No checkout, no project venv, no index: the node runs from its private venv."""
    pyz = build_installer(tmp_path, wheelhouse)
    planner = load_private(tmp_path / "planner.privatekey")
    donor = tmp_path / "donor"
    donor.mkdir()
    os.replace(pyz, donor / pyz.name)
    os.replace(tmp_path / "planner.publickey", donor / "planner.publickey")
    prefix = tmp_path / "prefix"
    done = await trio.to_thread.run_sync(lambda: run_pyz(
        donor / pyz.name, donor, donor_env, "install", "--trust", "planner.publickey",
        "--prefix", str(prefix), "--no-service", "--host", "127.0.0.1"))
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        child = node_child(prefix)
        assert child.cmdline()[0] == str(prefix / "versions" / wheelhouse.version / "bin" / "python")
        assert os.readlink(prefix / "current") == f"versions/{wheelhouse.version}"
        assert (prefix / "versions" / wheelhouse.version / ".complete").exists()
        port = read_int_file(prefix / "state" / "nodemanager.port")
        assert port is not None
        async with open_node_client("127.0.0.1", port, identity=planner) as client:
            await client.add_file("v1", "hello.py", b"log('hello from the private venv')\n")
            await client.start_vessel("v1", "hello.py")
            await wait_log(client, "v1", b"private venv")
        status = subprocess.run([str(prefix / "bin" / "seattle-installer"), "status"],
                                env=donor_env, capture_output=True, text=True, check=False)
        assert status.returncode == 0 and "node manager: running" in status.stdout, status
        record = json.loads((prefix / "installer.json").read_text())
        assert record["active"]
    finally:
        gone = await trio.to_thread.run_sync(lambda: run_pyz(
            donor / pyz.name, donor, donor_env, "uninstall", "--prefix", str(prefix), "--purge"))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not prefix.exists()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
