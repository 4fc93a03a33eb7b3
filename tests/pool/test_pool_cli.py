"""The planner's pool commands in-process: ``build --pool``, ``grant``, and the status lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from installer import open_bundle
from installer.__main__ import main
from installer.donor.plan import node_spec
from installer.planner.grant import render_pool
from nodemanager.node.spec import parse_spec
from nodemanager.proto.pool import read_credential
from seattlecore import KeyPair, load_public, save_keypair
from tests.support import poolwire as pw


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for name in ("planner", "alice"):
        assert main(["genkey", name, "--dir", str(tmp_path)]) == 0
    return tmp_path


def test_build_with_a_pool_share(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = keys / "pool.tgz"
    assert main(["build", "--planner-key", str(keys / "planner.privatekey"), "--pool", "30",
                 "--vessel", f"20:{keys / 'alice.publickey'}", "--bootstrap", "127.0.0.1:7000",
                 "-o", str(out)]) == 0
    assert "community pool" in capsys.readouterr().out
    planner = load_public(keys / "planner.publickey")
    manifest = open_bundle(out.read_bytes(), trust=planner).manifest
    assert [(v.percent, v.pool) for v in manifest.vessels] == [(20, False), (30, True), (50, False)]
    record = {"planner": planner.to_text(), "vessels": [
        {"name": f"v{i}", "owner": v.owner.to_text(), "users": [], "pool": v.pool,
         "resources": {"cpu": 0.1, "memory": 1000, "diskused": 1000}}
        for i, v in enumerate(manifest.vessels, 1)]}
    spec = parse_spec(__import__("json").dumps(node_spec(record)))
    assert spec.pool is not None and spec.pool.key == planner and spec.pool.vessels == ("v2",)
    # only a pool: no --vessel needed
    assert main(["build", "--planner-key", str(keys / "planner.privatekey"), "--pool", "100",
                 "--bootstrap", "127.0.0.1:7000", "-o", str(keys / "all.tgz")]) == 0
    assert main(["build", "--planner-key", str(keys / "planner.privatekey"), "--pool", "35",
                 "--bootstrap", "127.0.0.1:7000", "-o", str(keys / "bad.tgz")]) == 2
    assert not (keys / "bad.tgz").exists()


def test_grant_writes_a_credential_and_refuses_bad_input(
        keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = keys / "alice.grant"
    base = ["grant", "--planner-key", str(keys / "planner.privatekey"),
            "--researcher", str(keys / "alice.publickey")]
    assert main([*base, "--vessels", "10", "--days", "2", "-o", str(out)]) == 0
    cred = read_credential(out.read_bytes())
    assert cred.pool == load_public(keys / "planner.publickey")
    assert cred.researcher == load_public(keys / "alice.publickey")
    assert cred.vessels == 10 and cred.expires - cred.issued == pytest.approx(2 * 86400, abs=1)
    assert out.stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    for extra, message in ((["--vessels", "0"], "--vessels"), (["--vessels", "2", "--days", "0"],
                                                                "--days"),
                           (["--vessels", "2", "--days", "9999"], "--days")):
        assert main([*base, *extra, "-o", str(keys / "x.grant")]) == 2
        assert message in capsys.readouterr().err
    assert not (keys / "x.grant").exists()
    assert main(["grant", "--planner-key", str(keys / "alice.publickey"), "--researcher",
                 str(keys / "alice.publickey"), "--vessels", "1", "-o", str(keys / "y.grant")]) == 2


def test_status_lines_show_free_and_leased_vessels() -> None:
    pool = {"key": bytes(range(32)), "lease": 14400.0, "max_lease": 604800.0, "given_back": 1,
            "vessels": {"v1": None, "v2": {"researcher": bytes([0xAB] * 32), "granted": 0.0,
                                           "deadline": 3600.0}}}
    lines = render_pool(pool, 600.0)
    assert lines[0].startswith("pool 0001020304050607...: 2 vessels, 1 free, 1 leased")
    assert lines[1:] == ["  v1    free", "  v2    leased to abababab for 50 more minutes",
                         "  1 leases given back for overshooting a quota"]
    assert render_pool(None, 0.0) == []
    listed = render_pool({**pool, "revocations": 1_800_000_000, "revoked": 3}, 600.0)
    assert listed[-1] == "  revocation list 1800000000: 3 credential serials revoked"


def test_grant_open_writes_an_open_credential_and_refuses_mixed_options(
        keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planner = ["grant", "--planner-key", str(keys / "planner.privatekey")]
    out = keys / "open.grant"
    assert main([*planner, "--open", "--work", "10", "--vessels", "1", "-o", str(out)]) == 0
    assert "any key" in capsys.readouterr().out
    cred = read_credential(out.read_bytes())
    pool = load_public(keys / "planner.publickey")
    assert cred.open and cred.work == 10 and cred.researcher == pool and cred.vessels == 1
    for extra, message in ((["--open", "--researcher", str(keys / "alice.publickey")], "not both"),
                           ([], "name a researcher"),
                           (["--researcher", str(keys / "alice.publickey"), "--work", "9"],
                            "--work"),
                           (["--open", "--work", "3"], "work")):
        assert main([*planner, *extra, "--vessels", "1", "-o", str(keys / "z.grant")]) == 2
        assert message in capsys.readouterr().err
    assert not (keys / "z.grant").exists()


def test_revoke_refuses_bad_input_before_publishing(
        keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["revoke", "--planner-key", str(keys / "planner.privatekey")]
    assert main([*base, "12"]) == 2
    assert "--bootstrap" in capsys.readouterr().err
    boot = ["--bootstrap", "127.0.0.1:9"]
    for serial in ("not-a-file", str(keys / "alice.publickey"), str(1 << 63)):
        assert main([*base, serial, *boot]) == 2
        err = capsys.readouterr().err
        assert "serial" in err or "credential" in err, err
    other = keys / "other.revoked"
    other.write_text('{"pool": "' + "ab" * 32 + '", "seq": 3, "serials": [1]}')
    assert main([*base, "5", "--list", str(other), *boot]) == 2
    assert "another pool" in capsys.readouterr().err
    assert not (keys / "planner.revoked").exists()


def test_loadgrant_reads_a_bare_name_from_the_keys_directory(tmp_path: Path) -> None:
    """``seattle-testbed up --pool`` prints ``loadkeys demo; loadgrant demo.grant``: both
    names are read from ``--home`` when the current directory has no such file; a file that
    is in neither place is an error naming both."""
    home, work = tmp_path / "keys", tmp_path / "elsewhere"
    home.mkdir()
    work.mkdir()
    alice = KeyPair.generate()
    save_keypair(home, "alice", alice)
    (home / "alice.grant").write_bytes(pw.credential(pw.WORLD_PLANNER, alice.public.raw))
    done = subprocess.run([sys.executable, "-m", "seash", "--home", str(home), "-c",
                           "loadkeys alice; loadgrant alice.grant"], cwd=work,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "credential for pool" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "seash", "--home", str(home), "-c",
                              "loadkeys alice; loadgrant bob.grant"], cwd=work,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0
    assert f"cannot read bob.grant: No such file or directory (nor in {home})" in (
        missing.stdout + missing.stderr)
