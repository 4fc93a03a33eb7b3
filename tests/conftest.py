"""Hooks for every test package: requirement marks, per-worker testbed addresses, xdist groups."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.leftovers import Leftover, kill_leftovers, mark_this_process, record, recorded
from tests.support.net import testbed_net
from tests.support.requires import check_requires

LEFTOVERS = pytest.StashKey[tuple[str, Path]]()


def pytest_configure(config: pytest.Config) -> None:
    # what this process starts carries its mark; the session's end kills what is left of it
    config.stash[LEFTOVERS] = mark_this_process()
    # loopback testbeds (in this process or in the seattle-testbed it runs) use this worker's range
    os.environ["SEATTLE_TESTBED_NET"] = str(testbed_net())
    # Vessels default to idle priority (they yield to every other program: docs/donor.md).
    # Here the other programs are parallel test workers, so vessels run at normal priority;
    # tests of the yielding itself ask for priority="idle" (tests/sandbox/test_yielding.py).
    os.environ["SEATTLE_VESSEL_PRIORITY"] = "normal"


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: keep each group of tests/support/groups.py in one worker."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.support.groups import GroupScheduling

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from tests.support.groups import group_of

    for item in items:
        for mark in item.iter_markers("xdist_group"):
            if group_of(item.nodeid.split("@")[0]) != mark.args[0]:
                raise pytest.UsageError(f"{item.nodeid}: xdist_group({mark.args[0]!r}) is not in "
                                        "tests/support/groups.py (the marks alone group nothing)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_requires(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    mark, folder = session.config.stash[LEFTOVERS]
    record(folder, kill_leftovers(mark))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the processes tests left running (killed by the sweep): each is a bug to fix."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    leftovers: list[Leftover] = recorded(config.stash[LEFTOVERS][1])
    if leftovers:
        terminalreporter.section("processes left running by tests (killed)", yellow=True)
        for leftover in leftovers:
            terminalreporter.line(f"{leftover.pid}: {leftover.command}")
