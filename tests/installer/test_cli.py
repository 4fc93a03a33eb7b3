"""``seattle-installer`` in-process: planner errors, refused bundles install nothing, dry runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from installer.__main__ import main
from seattlecore import KeyPair, save_keypair
from tests.support.bundles import make_bundle


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("planner", "alice", "bob"):
        assert main(["genkey", name, "--dir", str(tmp_path / "keys")]) == 0
        out[name] = tmp_path / "keys" / name
    return out


def build(keys: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["build", "--planner-key", f"{keys['planner']}.privatekey", "-o", str(out), *extra])


def test_genkey_refuses_to_overwrite(keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["genkey", "alice", "--dir", str(keys["alice"].parent)]) == 1
    assert "not overwriting" in capsys.readouterr().err


def test_build_writes_a_verifiable_bundle(tmp_path: Path, keys: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.tgz"
    alice = f"{keys['alice']}.publickey"
    bob = Path(f"{keys['bob']}.publickey").read_text().strip()
    assert build(keys, out, "--vessel", f"40:{alice}:{bob}", "--vessel", f"40:{bob}",
                 "--bootstrap", "127.0.0.1:7000") == 0
    text = capsys.readouterr().out
    assert "v3:  20 %" in text and "(reserved)" in text
    from installer import open_bundle
    from seattlecore import load_public
    manifest = open_bundle(out.read_bytes(), trust=load_public(Path(f"{keys['planner']}.publickey"))).manifest
    assert [v.percent for v in manifest.vessels] == [40, 40, 20]


@pytest.mark.parametrize("args, message", [
    (["--vessel", "60:{alice}", "--vessel", "50:{alice}", "--bootstrap", "h:1"], "more than 100 %"),
    (["--vessel", "30:deadbeef", "--bootstrap", "h:1"], "is not a key: a key is 64 hex digits (8 given)"),
    (["--vessel", "30:no-dir/bob.publickey", "--bootstrap", "h:1"], "no such key file: no-dir/bob.publickey"),
    (["--vessel", "30:{alice}"], "at least one --bootstrap"),
    (["--vessel", "25:{alice}", "--bootstrap", "h:1"], "multiple of 10"),
    (["--bootstrap", "h:1"], "at least one --vessel"),
])
def test_bad_specs_refused(tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
                           args: list[str], message: str) -> None:
    alice = f"{keys['alice']}.publickey"
    out = tmp_path / "b.tgz"
    assert build(keys, out, *[a.format(alice=alice) for a in args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def bad_bundles(good: bytes) -> dict[str, bytes]:
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0x40
    other = KeyPair.generate()
    return {
        "tampered": bytes(tampered),
        "truncated": good[: len(good) * 2 // 3],
        "empty": b"",
        "other-planner": make_bundle(other, other),
    }


@pytest.mark.parametrize("kind", ["tampered", "truncated", "empty", "other-planner"])
def test_bad_bundle_installs_nothing(tmp_path: Path, safe_env: dict[str, str],
                                     capsys: pytest.CaptureFixture[str], kind: str) -> None:
    planner = KeyPair.generate()
    save_keypair(tmp_path, "planner", planner)
    bundle = tmp_path / "bad.tgz"
    bundle.write_bytes(bad_bundles(make_bundle(planner, planner))[kind])
    prefix = tmp_path / "prefix"
    code = main(["install", str(bundle), "--prefix", str(prefix), "--host", "127.0.0.1",
                 "--trust", str(tmp_path / "planner.publickey")])
    assert code == 1
    assert "seattle-installer:" in capsys.readouterr().err
    assert not prefix.exists()
    assert not Path(safe_env["FAKE_CRONTAB_FILE"]).exists()


def test_dry_run_changes_nothing(tmp_path: Path, safe_env: dict[str, str],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    planner = KeyPair.generate()
    bundle = tmp_path / "b.tgz"
    bundle.write_bytes(make_bundle(planner, planner))
    prefix = tmp_path / "prefix"
    assert main(["install", str(bundle), "--prefix", str(prefix), "--host", "127.0.0.1",
                 "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "install plan" in out.out and "start the node manager" in out.out
    assert "crontab entry" in out.out and "donating 10 %" in out.out
    assert "trust" in out.err  # the trust-on-first-use warning
    assert not prefix.exists()
    assert not Path(safe_env["FAKE_CRONTAB_FILE"]).exists()


def test_status_and_uninstall_without_install(tmp_path: Path, safe_env: dict[str, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--prefix", str(tmp_path / "none")]) == 1
    assert main(["uninstall", "--prefix", str(tmp_path / "none")]) == 0  # harmless, as documented
    assert "nothing installed" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


def test_a_missing_bundle_or_key_file_is_named(tmp_path: Path, safe_env: dict[str, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The cause comes first: the bundle that is not there, then a --trust file that is not."""
    prefix = tmp_path / "prefix"
    assert main(["install", str(tmp_path / "lab-installer.tgz"), "--prefix", str(prefix),
                 "--trust", str(tmp_path / "planner.publickey")]) == 1
    err = capsys.readouterr().err
    assert f"cannot read bundle {tmp_path / 'lab-installer.tgz'}: no such file" in err, err
    planner = KeyPair.generate()
    (tmp_path / "lab-installer.tgz").write_bytes(make_bundle(planner, planner))
    assert main(["install", str(tmp_path / "lab-installer.tgz"), "--prefix", str(prefix),
                 "--trust", str(tmp_path / "planner.publickey")]) == 2
    assert f"no such key file: {tmp_path / 'planner.publickey'}" in capsys.readouterr().err
    assert not prefix.exists()


def test_a_failed_pip_names_its_cause_in_one_line(tmp_path: Path) -> None:
    """pip's own reason, not "pip download failed:" and nothing (pip offline: --no-index)."""
    from installer.errors import InstallError
    from installer.packing.wheels import _pip

    with pytest.raises(InstallError) as raised:
        _pip(["download", "--quiet", "--no-index", "--find-links", str(tmp_path), "--dest",
              str(tmp_path), "no-such-distribution-25"], sys.executable)
    message = str(raised.value)
    assert message.startswith("pip download failed: ") and "\n" not in message, message
    assert "no matching distribution found for no-such-distribution-25" in message.lower(), message


def test_the_pyz_uninstall_where_nothing_is_installed_is_harmless(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python3 lab-installer.pyz uninstall`` twice (or after --purge): docs/donor.md's
    "nothing installed in DIR; nothing to do", exit status 0; other commands still fail."""
    from installer.packing import pyzmain

    assert pyzmain.main(["uninstall", "--prefix", str(tmp_path / "none")]) == 0
    assert f"nothing installed in {tmp_path / 'none'}; nothing to do" in capsys.readouterr().out
    assert pyzmain.main(["status", "--prefix", str(tmp_path / "none")]) == 1
    assert not (tmp_path / "none").exists()
