"""A full host disk is a clear error inside the vessel, not a crash of anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Supervisor
from tests.support.tmpfs import small_tmpfs
from tests.support.vessels import table

WRITER = """
f = openfile('big.bin', True)
written = 0
try:
    for i in range(64):
        f.writeat('z' * 65536, written)
        written = written + 65536
    log('SURVIVED')
except FileError as err:
    log('disk full after', written, err)
"""


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "256k") as mount:
        yield mount


async def test_enospc_is_a_file_error(small_fs: Path) -> None:
    vessel = small_fs / "v1"
    vessel.mkdir()
    (vessel / "w.py").write_text(WRITER)
    async with Supervisor.open() as sup:
        await sup.start("v1", vessel, table(diskused=100_000_000), "w.py")
        report = await sup.wait("v1")
        log = sup.read_log("v1").decode()
    assert "disk full after" in log and "No space left" in log, log
    assert "SURVIVED" not in log
    assert report.exit_code == 0
