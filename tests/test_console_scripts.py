"""Every console script as a user runs it: --version, --help, one-line errors, exit statuses.

Exit status 2 is bad usage, 1 a failure; an error is one line on stderr and never a
traceback (unless -v); a closed stdout ends a command quietly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seattlecore import KeyPair, save_keypair

BIN = Path(sys.executable).parent
SCRIPTS = ["seattle-sandbox", "seattle-nodemanager", "seattle-dht", "seash", "seattle-installer",
           "seattle-testbed"]
KEY = "ab" * 32

pytestmark = pytest.mark.slow


def run(*argv: str, cwd: Path | None = None, stdin: str = "",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, cwd=cwd, input=stdin, env={**os.environ, **(env or {})})


def one_line_error(done: subprocess.CompletedProcess[str], status: int, needle: str) -> None:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_and_help(script: str) -> None:
    version = run(script, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"{script} 0.1.0"
    helped = run(script, "--help")
    assert helped.returncode == 0 and "--version" in helped.stdout
    bad = run(script, "--no-such-option")
    one_line_error(bad, 2, f"(see '{script} --help')")


def test_nodemanager_help_lists_init() -> None:
    assert "seattle-nodemanager init --state DIR --spec SPEC.json" in run(
        "seattle-nodemanager", "--help").stdout


def test_subcommand_help_describes_every_option() -> None:
    for script, command in [("seattle-dht", "lookup"), ("seattle-dht", "serve"),
                            ("seattle-installer", "build"), ("seattle-installer", "install"),
                            ("seattle-testbed", "up")]:
        page = run(script, command, "--help").stdout
        options = [w for line in page.splitlines() for w in line.split()
                   if w.startswith("--") and w != "--help"]
        assert options, page
        for line in page.split("options:")[1].splitlines():
            if line.strip().startswith("--") and "  " not in line.strip():
                index = page.splitlines().index(line)
                assert page.splitlines()[index + 1].startswith(" " * 10), (script, command, line)


def test_global_options_after_the_subcommand() -> None:
    after = run("seattle-dht", "lookup", KEY, "--bootstrap", "127.0.0.1:9", "--timeout", "1",
                "--json")
    before = run("seattle-dht", "--json", "--timeout", "1", "lookup", KEY, "--bootstrap", "127.0.0.1:9")
    for done in (after, before):
        one_line_error(done, 1, "seattle-dht:")
    verbose = run("seattle-installer", "status", "--prefix", "/nonexistent/prefix", "-v")
    assert verbose.returncode == 1 and "not installed" in verbose.stdout


def test_every_status_takes_json_before_or_after_the_subcommand(tmp_path: Path) -> None:
    """README: --json before or after the subcommand, for every status command."""
    import json

    for argv in (["status", "--json"], ["--json", "status"]):
        done = run("seattle-installer", *argv, "--prefix", str(tmp_path / "none"))
        assert done.returncode == 1, done.stderr  # not installed: a failure, said as data
        assert json.loads(done.stdout)["installed"] is False
        one_line_error(run("seattle-testbed", *argv, "--dir", str(tmp_path)), 1, "no testbed in")
    for argv in (["status", "--json"], ["--json", "status"]):
        done = run("seattle-dht", *argv, "--node", "127.0.0.1:9", "--timeout", "1")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr


def test_dht_unresolvable_bootstrap_is_one_line() -> None:
    done = run("seattle-dht", "lookup", KEY, "--bootstrap", "nosuchhost.invalid:4000")
    one_line_error(done, 1, "cannot resolve 'nosuchhost.invalid'")


def test_installer_build_errors(tmp_path: Path) -> None:
    keys = KeyPair.generate()
    public, private = save_keypair(tmp_path, "planner", keys)
    spec = ["--vessel", f"50:{KEY}", "--bootstrap", "127.0.0.1:9"]
    missing = run("seattle-installer", "build", "--planner-key", str(private), *spec,
                  "-o", "/nonexistent/dir/x.tgz")
    one_line_error(missing, 1, "cannot write /nonexistent/dir/x.tgz")
    swapped = run("seattle-installer", "build", "--planner-key", str(public), *spec,
                  "-o", str(tmp_path / "b.tgz"))
    one_line_error(swapped, 2, "is a public key file")
    assert not (tmp_path / "b.tgz").exists()
    verbose = run("seattle-installer", "build", "--planner-key", str(private), *spec,
                  "-o", "/nonexistent/dir/x.tgz", "-v")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_installer_output_into_a_closed_pipe(tmp_path: Path) -> None:
    _, private = save_keypair(tmp_path, "planner", KeyPair.generate())
    vessels = [arg for i in range(10) for arg in ("--vessel", f"10:{KEY}")]
    argv = [str(BIN / "seattle-installer"), "build", "--planner-key", str(private), *vessels,
            "--bootstrap", "127.0.0.1:9", "-o", str(tmp_path / "b.tgz")]
    piped = subprocess.run(f"{' '.join(argv)} | head -c 1", shell=True, capture_output=True,
                           text=True, timeout=120, executable="/bin/bash")
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr
    assert (tmp_path / "b.tgz").exists()


def test_install_trust_with_the_private_key(tmp_path: Path) -> None:
    planner = KeyPair.generate()
    public, private = save_keypair(tmp_path, "planner", planner)
    bundle = tmp_path / "b.tgz"
    built = run("seattle-installer", "build", "--planner-key", str(private), "--vessel",
                f"50:{KEY}", "--bootstrap", "127.0.0.1:9", "-o", str(bundle))
    assert built.returncode == 0, built.stderr
    prefix = tmp_path / "prefix"
    named = run("seattle-installer", "install", str(bundle), "--prefix", str(prefix), "--dry-run",
                "--trust", str(private))
    one_line_error(named, 2, "is a private key file")
    renamed = tmp_path / "planner-key.txt"
    renamed.write_text(private.read_text())
    content = run("seattle-installer", "install", str(bundle), "--prefix", str(prefix),
                  "--dry-run", "--trust", str(renamed))
    one_line_error(content, 1, "holds the planner's private key, not its public key")
    trusted = run("seattle-installer", "install", str(bundle), "--prefix", str(prefix), "--dry-run",
                  "--trust", str(public))
    assert trusted.returncode == 0 and "install plan" in trusted.stdout
    assert not prefix.exists()


def test_uninstall_where_nothing_is_installed(tmp_path: Path) -> None:
    done = run("seattle-installer", "uninstall", "--prefix", str(tmp_path / "empty"))
    assert done.returncode == 0, done.stderr
    assert "nothing installed" in done.stdout and not (tmp_path / "empty").exists()


def test_testbed_and_sandbox_failures_are_one_line(tmp_path: Path) -> None:
    one_line_error(run("seattle-testbed", "down", "--dir", str(tmp_path)), 1, "no testbed in")
    one_line_error(run("seattle-testbed", "up", "--nodes", "0"), 2, "--nodes")
    one_line_error(run("seattle-sandbox", "run", str(tmp_path / "none.py")), 2,
                   "No such file or directory")
    one_line_error(run("seattle-testbed", "up", "--nat", "0.5", "--dir", str(tmp_path)), 2,
                   "--nat need(s) --lab")
    one_line_error(run("seattle-testbed", "--json", "down", "--dir", str(tmp_path)), 2,
                   "--json is for 'status'")
    one_line_error(run("seattle-nodemanager", "--state", str(tmp_path)), 2,
                   f"seattle-nodemanager init --state {tmp_path} --spec SPEC.json")
    one_line_error(run("seash", str(tmp_path / "none.seash")), 2, "cannot read")


def test_dht_serve_prints_its_address_and_how_to_bootstrap() -> None:
    server = subprocess.Popen([str(BIN / "seattle-dht"), "serve"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("DHT node listening on 127.0.0.1:"), first
        address = first.split()[4]
        rest = [server.stdout.readline() for _ in range(5)]
        assert any(f"--bootstrap {address}" in line for line in rest), rest
        status = run("seattle-dht", "status", "--node", address, "--json")
        assert status.returncode == 0 and address.split(":")[1] in status.stdout
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 130 and "Traceback" not in err, err
