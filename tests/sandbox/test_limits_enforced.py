"""Each resource kind enforced on a real vessel process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from sandbox import Supervisor
from tests.support.vessels import RunProgram, on_host, table

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vessel-ports")]  # groups.py

BUSY = "spins = 0\nwhile True:\n    spins = spins + 1\n"


async def _cpu_share(vessel_dir: Path, share: float, seconds: float) -> float:
    (vessel_dir / "busy.py").write_text(BUSY)
    async with Supervisor.open() as sup:
        await sup.start("v1", vessel_dir, table(cpu=share), "busy.py")
        await trio.sleep(1.0)  # warm-up: start-up cost and the first stop cycle
        cpu0, t0 = sup.report("v1").usage.values["cpu"], time.monotonic()
        await trio.sleep(seconds)
        cpu1, t1 = sup.report("v1").usage.values["cpu"], time.monotonic()
        await sup.stop("v1")
    return (cpu1 - cpu0) / (t1 - t0)


async def test_cpu_share_holds_a_busy_loop_near_its_limit(vessel_dir: Path) -> None:
    measured = await _cpu_share(vessel_dir, 0.1, 4.0)
    assert 0.06 <= measured <= 0.14, measured


async def test_memory_hog_is_stopped_with_reason(run_program: RunProgram) -> None:
    out = await run_program(
        "chunks = []\nfor i in range(1000):\n    chunks.append('x' * 1000000 + str(i))\n"
        "log('SURVIVED')\n",
        resources=table(memory=20_000_000),
    )
    assert out.report.status == "Terminated"
    assert "memory limit" in (out.report.exit_reason or "")
    assert "SURVIVED" not in out.log


async def test_single_huge_allocation_is_refused(run_program: RunProgram) -> None:
    out = await run_program("blob = 'a' * 3000000000\nlog('SURVIVED')\n")
    assert "memory limit" in (out.report.exit_reason or "")
    assert out.report.exit_code != 0


async def test_disk_quota_holds(run_program: RunProgram, vessel_dir: Path) -> None:
    out = await run_program(
        "f = openfile('big.bin', True)\nfor i in range(100):\n"
        "    f.writeat('d' * 100000, i * 100000)\nlog('SURVIVED')\n",
        resources=table(diskused=1_000_000),
    )
    assert "diskused limit exceeded" in (out.report.exit_reason or "")
    used = sum(p.stat().st_size + 4096 for p in vessel_dir.iterdir())
    assert used <= 1_000_000


async def test_loopsend_rate_holds_within_ten_percent(run_program: RunProgram) -> None:
    source = """
start = getruntime()
sent = 0
while getruntime() - start < 3.0:
    sent = sent + sendmessage('127.0.0.1', 9, 'u' * 936, '127.0.0.1', 63100) + 64
log('rate', sent / (getruntime() - start))
"""
    out = await run_program(on_host(source), resources=table(loopsend=50_000))
    rate = float(out.log.split("rate", 1)[1].split()[0])
    assert 45_000 <= rate <= 55_000, rate


async def test_lograte_throttles_a_flood(run_program: RunProgram) -> None:
    source = """
start = getruntime()
line = 'L' * 999
count = 0
while getruntime() - start < 2.0:
    log(line)
    count = count + 1
exitall()
"""
    out = await run_program(source, resources=table(lograte=20_000))
    assert out.report.exit_reason == "exitall() called"
    lines = out.log.count("L" * 999)
    assert lines <= 16  # 16 KiB kept; the rate alone allows ~40 KB in 2 s, not megabytes


async def test_host_stays_responsive_during_hostile_programs(tmp_path: Path) -> None:
    dirs = []
    for name, source in [("burn", BUSY), ("mem", "x = []\nwhile True:\n    x.append('y' * 100000)\n")]:
        path = tmp_path / name
        path.mkdir()
        (path / "p.py").write_text(source)
        path.chmod(0o755)
        dirs.append((name, path))
    tmp_path.chmod(0o755)
    lags = []
    async with Supervisor.open() as sup:
        for name, path in dirs:
            await sup.start(name, path, table(cpu=1.0, memory=30_000_000), "p.py")
        for _ in range(40):
            before = trio.current_time()
            await trio.sleep(0.05)
            lags.append(trio.current_time() - before - 0.05)
        report = await sup.wait("mem")
        assert "memory limit" in (report.exit_reason or "")
        await sup.stop("burn")
    lags.sort()
    assert lags[len(lags) // 2] < 0.25, lags


async def test_file_and_random_rates_hold(run_program: RunProgram) -> None:
    source = """
f = openfile('rate.bin', True)
start = getruntime()
written = 0
while getruntime() - start < 1.5:
    f.writeat('w' * 4096, 0)
    written = written + 4096
log('filewrite', written / (getruntime() - start))
start = getruntime()
read = 0
while getruntime() - start < 1.5:
    read = read + len(f.readat(4096, 0))
log('fileread', read / (getruntime() - start))
start = getruntime()
got = 0
while getruntime() - start < 1.5:
    got = got + len(randombytes())
log('random', got / (getruntime() - start))
"""
    out = await run_program(source, resources=table(filewrite=40_000, fileread=80_000,
                                                    random=10_000), timeout=15)
    rates = dict(line.split() for line in out.log.splitlines())
    # one 0.1 s burst on top of the limit over a 1.5 s window: at most +7 %, plus a block
    assert 0.85 * 40_000 <= float(rates["filewrite"]) <= 1.15 * 40_000
    assert 0.85 * 80_000 <= float(rates["fileread"]) <= 1.15 * 80_000
    assert 0.85 * 10_000 <= float(rates["random"]) <= 1.25 * 10_000


async def test_filesopened_and_outsockets_counts(run_program: RunProgram) -> None:
    source = """
held = []
try:
    for i in range(10):
        held.append(openfile('f' + str(i), True))
except ResourceExhaustedError:
    log('files stopped at', len(held))
held[0].close()
held.append(openfile('again', True))
log('reopened after close')
server = listenforconnection('127.0.0.1', 63104)
conns = []
try:
    for port in [63100, 63101, 63105]:
        conns.append(openconnection('127.0.0.1', 63104, '127.0.0.1', port, 5))
except ResourceExhaustedError:
    log('outsockets stopped at', len(conns))
"""
    out = await run_program(on_host(source), resources=table(filesopened=3, outsockets=2))
    assert "files stopped at 3" in out.log
    assert "reopened after close" in out.log
    assert "outsockets stopped at 2" in out.log
