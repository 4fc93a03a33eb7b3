"""Compute a session's expensive shared result once per test run, even across xdist workers.

    @pytest.fixture(scope="session")
    def outcomes(tmp_path_factory):
        return once_per_run(tmp_path_factory, "attacks", lambda: trio.run(run_batch, jobs(), 4))

The first worker to ask computes the value (holding a lock file in the run's shared temporary
directory) and leaves it there pickled; a worker that asks later, or waits on the lock, reads
it. Without xdist this is a plain call. Only for results every worker would compute the same.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, compute: Callable[[], T]) -> T:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return compute()
    shared = tmp_path_factory.getbasetemp().parent  # the run's directory, above each worker's
    result = shared / f"{name}.pickle"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            result.write_bytes(pickle.dumps(compute()))
    return pickle.loads(result.read_bytes())  # type: ignore[no-any-return]
