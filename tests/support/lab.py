"""The network lab through its command line (``seattle-testbed up --lab``), for the root tests.

Test modules that build labs declare
``pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]``:
labs are designed to coexist, but each one starts many processes, so one xdist worker runs
them one after another.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from installer.donor.procs import find_process
from testbed.lab import net as labnet
from tests.support.files import traversable
from tests.support.polling import eventually_sync

ROOT_LAB = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nft") is not None
NEEDS_LAB = "the network lab needs root, ip (iproute2) and nft (nftables)"
LAB_GROUP = "lab"
EXAMPLES = Path(__file__).parents[2] / "examples"


def cli(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def lab_seash(directory: Path, data: dict[str, Any], commands: str,
              *options: str) -> subprocess.CompletedProcess[str]:
    """seash on the researcher's host, in examples/ (so ``run hello.py`` finds the file)."""
    seash_bin = str(Path(sys.executable).with_name("seash"))
    return cli("shell", "--dir", str(directory), "--", seash_bin, *options, "--home", str(directory / "keys"),
               "--bootstrap", data["bootstrap"], "-c", commands, cwd=EXAMPLES)


def lookup(directory: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo key's adverts, looked up from the researcher's host."""
    dht = str(Path(sys.executable).with_name("seattle-dht"))
    done = cli("shell", "--dir", str(directory), "--", dht, "lookup", "--json", "--bootstrap",
               data["bootstrap"], data["demo"]["publickey"])
    assert done.returncode == 0, done.stderr
    candidates: list[dict[str, Any]] = json.loads(done.stdout)["candidates"]
    return candidates


@contextlib.contextmanager
def lab(directory: Path, *args: str) -> Iterator[tuple[dict[str, Any], str]]:
    """``up --lab ARGS``; always ``down`` afterwards, and check that down left nothing."""
    traversable(directory.parent)
    try:
        up = cli("up", "--lab", "--dir", str(directory), *args)
        assert up.returncode == 0, up.stdout + up.stderr
        data = json.loads((directory / "testbed.json").read_text())
        yield data, up.stdout
    finally:
        if (directory / "testbed.json").exists():
            down = cli("down", "--dir", str(directory))
            assert down.returncode == 0, down.stderr
            data = json.loads((directory / "testbed.json").read_text())
            assert not labnet.lab_namespaces(data["lab"]["id"])
            assert not [n for n in data["nodes"] if find_process(n["pid"], n["state"])]




def wait_lab_relayed(directory: Path, data: dict[str, Any], vessels: int,
                     timeout: float = 180) -> list[dict[str, Any]]:
    """The demo key's adverts once there are ``vessels`` and every NATed node's name a relay."""
    nated = {f"{n['public_address']}:{n['port']}" for n in data["nodes"] if n["nat"] != "none"}

    def relayed() -> list[dict[str, Any]]:
        adverts = lookup(directory, data)
        held = {a["address"] for a in adverts if a["relays"]}
        assert len(adverts) == vessels and held >= nated, f"relayed {len(held)} of {len(nated)}: {adverts}"
        return adverts

    return eventually_sync(relayed, timeout=timeout, interval=1, what="every NATed node relayed")


def status_rows(stdout: str) -> dict[str, list[str]]:
    """``seattle-testbed status`` lines by node name: the words after the name (pid, state,
    address, nat, tcp, dht, then vessels, peers, reach, mode, key; or ``error: ...``)."""
    rows = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0][:1] == "n" and words[0][1:].isdigit():
            rows[words[0]] = words[1:]
    return rows
