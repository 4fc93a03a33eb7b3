"""Measure the donor's machine with psutil and two short benchmarks (docs/seattle.md, Installers)."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import time
from pathlib import Path

import psutil

from installer.donor.plan import MachineProfile

log = logging.getLogger(__name__)

BENCH_SECONDS = 0.2
FALLBACK_FDS = 1024


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def cpu_benchmark(seconds: float = BENCH_SECONDS) -> float:
    """sha256 throughput of one core in MB/s over about ``seconds``."""
    block = os.urandom(64 * 1024)
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        hashlib.sha256(block).digest()
        done += len(block)
    return done / max(elapsed, 1e-9) / 1e6


def random_benchmark(seconds: float = BENCH_SECONDS / 2) -> float:
    """``os.urandom`` bytes per second (Seattle's measure_random)."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += len(os.urandom(1024))
    return done / max(elapsed, 1e-9)


def measure_machine(prefix: Path) -> MachineProfile:
    """Probe cores, memory, free disk at ``prefix``, the fd limit, and benchmark briefly."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = soft if soft != resource.RLIM_INFINITY and soft > 0 else FALLBACK_FDS
    profile = MachineProfile(
        cores=psutil.cpu_count(logical=True) or 1,
        memory=int(psutil.virtual_memory().total),
        disk_free=int(psutil.disk_usage(str(_existing(prefix))).free),
        fd_limit=int(fds),
        cpu_score=round(cpu_benchmark(), 1),
        random_rate=round(random_benchmark()),
    )
    log.info("measured %s", profile)
    return profile
