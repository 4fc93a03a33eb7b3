"""Tests that run one after another in one pytest-xdist worker, and the scheduler that keeps them so.

A group holds tests that must not overlap each other, or that share one expensive fixture:

- "lab": the network-lab tests (each builds namespaces and starts many processes; one expects
  to find a crashed lab that any other ``up`` would clean away first);
- "vessel-ports": sandbox programs that bind the vessels' ports on 127.0.0.1 (63100-63105),
  which two workers would fight over; the repyv2 and repylib suites also run every program
  once in a module fixture, which each worker would otherwise run again;
- "wheelhouse": the tests that share the session's wheelhouse (built once per worker).

pytest-xdist 3.8's ``--dist loadgroup`` reads ``xdist_group`` marks by renaming each test
``ID@GROUP`` through ``item._nodeid``, which pytest 9.2 no longer reads (node ids moved to
``item._id``), so the marks alone group nothing. The groups are therefore named here, by test
module; ``GroupScheduling`` (installed by tests/conftest.py for ``--dist loadgroup``) sends each
group to one worker, and a module that carries an ``xdist_group`` mark must be listed here
with the same name (checked at collection), so a mark never silently does nothing.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

GROUPS = {
    "tests/installer/test_lab.py": "lab",
    "tests/installer/test_lab_guide.py": "lab",
    "tests/installer/test_lab_punch.py": "lab",
    "tests/installer/test_lab_reach.py": "lab",
    "tests/installer/test_lab_relay.py": "lab",
    "tests/nodemanager/test_punch_lab.py": "lab",
    "tests/pool/test_pool_lab.py": "lab",
    "tests/sandbox/test_api.py": "vessel-ports",
    "tests/sandbox/test_attacks.py": "vessel-ports",
    "tests/sandbox/test_limits_enforced.py": "vessel-ports",
    "tests/sandbox/test_repy_handles.py": "vessel-ports",
    "tests/sandbox/test_repylib.py": "vessel-ports",
    "tests/sandbox/test_repyv2_suite.py": "vessel-ports",
    "tests/updates/test_selfcontained.py": "wheelhouse",
    "tests/updates/test_update_e2e.py": "wheelhouse",
}
"""Test module -> the group its tests run in."""


def group_of(nodeid: str) -> str | None:
    return GROUPS.get(nodeid.split("::", 1)[0])


class GroupScheduling(LoadScopeScheduling):
    """``--dist load`` for ungrouped tests (each is its own unit); a group is one unit.

    Units are handed out largest first (xdist's ``loadscopereorder``), so the long lab group
    starts at once and the single tests fill the other workers around it."""

    def _split_scope(self, nodeid: str) -> str:
        if "@" in nodeid:  # xdist's own ID@GROUP, where a pytest still honours it
            return nodeid.rsplit("@", 1)[-1]
        return group_of(nodeid) or nodeid
