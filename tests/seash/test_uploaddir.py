"""``uploaddir DIR`` against a real node manager: every regular file arrives, and a directory
an attacker filled (subdirectories, links out, refused names, huge files, a FIFO) is refused
before anything is sent; disk limits are checked per vessel, and a failure part-way says so."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
import trio

from nodemanager import open_node_client
from nodemanager.proto.messages import MAX_FILE_BYTES
from seash.files import PER_FILE_OVERHEAD, plan_dir
from seattlecore import KeyPair, save_keypair
from tests.support.daemons import init_node, node_manager
from tests.support.seash import RESOURCES, seash

SMALL_DISK = 12_000
"""The second vessel's diskused: room for two small files, not three."""


def _hostile_dir(root: Path) -> Path:
    """What an attacker (or an untidy researcher) leaves in a directory."""
    d = root / "hostile"
    d.mkdir()
    (d / "good.txt").write_text("good\n")
    (d / "sub").mkdir()
    (d / "sub" / "inner.txt").write_text("inner\n")
    (root / "secret.txt").write_text("outside\n")
    (d / "leak.txt").symlink_to(root / "secret.txt")          # a link out of the directory
    (d / "abs.txt").symlink_to("/etc/hostname")
    (d / "alias.txt").symlink_to("good.txt")                   # inside: fine
    (d / "subdir-link").symlink_to("sub")                      # a link to a directory
    (d / "Upper.TXT").write_text("x")
    (d / "private_key").write_text("x")
    (d / ".hidden").write_text("x")
    (d / ("n" * 121)).write_text("x")
    os.mkfifo(d / "pipe")
    with open(d / "huge.bin", "wb") as handle:                # sparse: nothing is written
        handle.truncate(MAX_FILE_BYTES + 1)
    return d


def test_plan_refuses_each_kind_of_entry(tmp_path: Path) -> None:
    plan = plan_dir(_hostile_dir(tmp_path))
    assert [name for name, _ in plan.files] == ["alias.txt", "good.txt"]
    reasons = dict(plan.refused)
    assert set(reasons) == {"sub", "leak.txt", "abs.txt", "subdir-link", "Upper.TXT",
                            "private_key", ".hidden", "n" * 121, "pipe", "huge.bin"}
    assert "directory" in reasons["sub"]
    assert "out of the directory" in reasons["leak.txt"] == reasons["abs.txt"]
    assert "else than a regular file" in reasons["subdir-link"]
    assert all("name vessels refuse" in reasons[n] for n in ("Upper.TXT", "private_key", ".hidden"))
    assert "not a regular file" in reasons["pipe"]
    assert "larger than" in reasons["huge.bin"]
    assert plan.charge == 2 * (5 + PER_FILE_OVERHEAD)


@dataclass
class Setup:
    home: Path
    alice: KeyPair
    port: int


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    alice = KeyPair.generate()
    save_keypair(tmp_path / "home", "alice", alice)
    small = RESOURCES.replace("diskused 2000000", f"diskused {SMALL_DISK}")
    init_node(tmp_path / "nm", {"vessels": [
        {"owner": alice.public.to_text(), "users": [], "resources": RESOURCES},
        {"owner": alice.public.to_text(), "users": [], "resources": small}]})
    async with node_manager(tmp_path / "nm", dht=False) as nm:
        yield Setup(tmp_path / "home", alice, nm.port)


async def _files(setup: Setup) -> list[list[str]]:
    async with open_node_client("127.0.0.1", setup.port, identity=setup.alice) as client:
        return [await client.list_files(v) for v in ("v1", "v2")]


@pytest.mark.slow
async def test_uploaddir_end_to_end(tmp_path: Path, setup: Setup) -> None:
    three = tmp_path / "three"
    three.mkdir()
    for name in ("a.txt", "b.r2py", "c.dat"):
        (three / name).write_text(f"content of {name}\n")
    hostile = _hostile_dir(tmp_path)
    start = f"loadkeys alice; contact 127.0.0.1:{setup.port}"
    run = await seash(setup.home, f"{start}; uploaddir three; uploaddir {hostile}; "
                      "uploaddir nowhere; on %1 cat b.r2py", cwd=tmp_path)
    assert run.returncode == 1
    results = {r["target"]: r for r in run.doc("uploaddir three")["results"]}
    assert results["%1"]["status"] == "ok" and results["%1"]["value"] == [3, 52]
    assert results["%2"]["status"] == "failed"
    assert f"disk limit of {SMALL_DISK}; nothing uploaded" in results["%2"]["error"]
    refused = run.doc(f"uploaddir {hostile}")
    assert refused["results"] == [] and "nothing uploaded: 10 entries" in refused["error"]
    assert "leak.txt: a symbolic link out of the directory" in refused["error"]
    assert "is not a directory" in run.doc("uploaddir nowhere")["error"]
    assert "content of b.r2py" in run.doc("on %1 cat b.r2py")["results"][0]["value"]
    assert await _files(setup) == [["a.txt", "b.r2py", "c.dat"], []]

    # --skip: the uploadable ones arrive, the rest is listed
    run = await seash(setup.home, f"{start}; on %1 uploaddir {hostile} --skip", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = run.doc(f"on %1 uploaddir {hostile} --skip")
    assert "skipped 10 entries" in doc["text"][0] and "pipe: not a regular file" in doc["text"][0]
    assert (await _files(setup))[0] == ["a.txt", "alias.txt", "b.r2py", "c.dat", "good.txt"]

    # a failure part-way (the vessel's own files leave room for one of the two): said so
    (tmp_path / "filler").write_bytes(b"f" * 1000)
    two = tmp_path / "two"
    two.mkdir()
    (two / "x1.txt").write_bytes(b"1" * 1000)
    (two / "x2.txt").write_bytes(b"2" * 1000)
    run = await seash(setup.home, f"{start}; on %2 upload filler; on %2 uploaddir two",
                      cwd=tmp_path)
    error = run.doc("on %2 uploaddir two")["results"][0]["error"]
    assert "vessel disk quota exceeded" in error and "at x2.txt: 1 of 2 files uploaded: x1.txt" in error
    assert (await _files(setup))[1] == ["filler", "x1.txt"]


@pytest.mark.slow
async def test_uploaddir_and_hostname_interactive(tmp_path: Path, setup: Setup) -> None:
    d = tmp_path / "progs"
    d.mkdir()
    (d / "one.r2py").write_text("log('one')\n")
    (d / "two.r2py").write_text("log('two')\n")
    await trio.to_thread.run_sync(_interactive, tmp_path, setup)
    assert (await _files(setup))[0] == ["one.r2py", "two.r2py"]


def _interactive(tmp_path: Path, setup: Setup) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "seash", "--home", str(setup.home)],
                          cwd=str(tmp_path), encoding="utf-8", timeout=20,
                          env={"TERM": "dumb", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          dimensions=(40, 200))
    try:
        child.expect_exact("@%all !> ")
        child.sendline(f"loadkeys alice\ncontact 127.0.0.1:{setup.port}")
        child.expect("2 of 2 vessels usable")
        child.sendline("set d progs")
        child.sendline("on %1 uploaddir $d")
        child.expect(r"uploaded 2 files \(22 bytes\)")
        child.sendline("help uploaddir")
        child.expect("usage: uploaddir DIRECTORY")
        child.sendline("show hostname")
        child.expect(r"%1\s+127\.0\.0\.1:\d+\s+(localhost|127\.0\.0\.1 \(no name\))")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
