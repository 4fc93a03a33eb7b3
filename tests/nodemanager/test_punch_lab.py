"""Hole punching for real: simultaneous opens between hosts of the network lab (root).

Each test builds a lab network with no node managers (testbed/lab/punch.py):
node 0 and 4 public, 1 and 3 behind cone NATs, 2 behind a symmetric NAT, the researcher
behind a cone NAT; observers on the two public hosts and a rendezvous (standing in for a
relay) on the first. Under CI=true these tests must run, never skip. (test_lab.py's
``nothing_left`` fixture is not used: it removes every lab that appeared meanwhile,
concurrent runs' included; ``bare_lab`` removes its own and the tests check it is gone.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from testbed.lab import net as labnet
from testbed.lab.plan import LabPlan
from testbed.lab.punch import Services, bare_lab, start_services, trial
from tests.support.lab import LAB_GROUP, NEEDS_LAB, ROOT_LAB
from tests.support.requires import requires

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LAB_GROUP), requires(ROOT_LAB, NEEDS_LAB)]
TRIALS = 6


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabPlan, Services]]:
    with bare_lab() as plan:
        services, stop = start_services(plan)
        try:
            yield plan, services
        finally:
            stop()
    assert not labnet.lab_namespaces(plan.lab_id)
    assert not set(plan.ranges) & set(labnet.blackholes())


@pytest.mark.parametrize("initiator, responder", [
    ("n004", "n001"),        # public researcher, donor behind a cone NAT
    ("n001", "n004"),        # the other way round
    ("researcher", "n001"),  # cone <-> cone
    ("n003", "n001"),        # cone <-> cone, another pair of routers
])
def test_cone_nats_punch_direct_mostly_first_try(lab: tuple[LabPlan, Services],
                                                 initiator: str, responder: str) -> None:
    plan, services = lab
    first_try = 0
    for _ in range(TRIALS):
        ours, theirs = trial(plan, services, initiator, responder)
        assert ours.path == theirs.path == "punched", (ours.reason, theirs.reason)
        assert ours.mapping is not None and theirs.mapping is not None
        first_try += ours.attempts == 1
        host = plan.host(initiator)
        assert ours.mapping[0] == host.public_address  # observed, NAT port kept
    assert first_try >= TRIALS - 1


def test_symmetric_nat_stays_relayed_and_says_why(lab: tuple[LabPlan, Services]) -> None:
    plan, services = lab
    for initiator, responder in (("researcher", "n002"), ("n002", "n001")):
        ours, theirs = trial(plan, services, initiator, responder)
        assert ours.direct is None and theirs.direct is None
        assert ours.attempts == 1 and "symmetric NAT" in ours.reason
        assert ours.elapsed < 3.0  # no simultaneous open tried: symmetric is known at once
        # and the relayed connection still carried bytes both ways (run_initiator/responder)


def test_public_side_listens_so_even_symmetric_nats_go_direct(lab: tuple[LabPlan, Services]) -> None:
    """Connection reversal: a public researcher accepts; the symmetric NAT's host connects."""
    plan, services = lab
    for initiator, responder, role in (("n004", "n002", "listen"), ("n002", "n004", "connect")):
        for _ in range(3):
            ours, theirs = trial(plan, services, initiator, responder)
            assert ours.path == theirs.path == "punched", (ours.reason, theirs.reason)
            assert ours.role == role and ours.attempts == 1


def test_bare_masquerade_ends_cleanly_either_way() -> None:
    """A router with masquerade but no firewall: an early SYN reaches the router's own stack,
    which resets it, and conntrack may move the flow to another port. Punching may or may not
    work; it must end in a clean outcome (punched, or relayed with a reason), never hang."""
    with bare_lab() as plan:
        router = plan.host("n003").router
        assert router is not None
        subprocess.run(labnet.exec_argv(router.namespace, ["nft", "delete", "table", "inet", "filter"]),
                       check=True, capture_output=True)
        services, stop = start_services(plan)
        try:
            for initiator in ("researcher", "n004", "n003"):
                ours, theirs = trial(plan, services, initiator, "n001" if initiator == "n003" else "n003")
                assert ours.path == theirs.path
                assert ours.direct is not None or "after 3 attempt(s)" in ours.reason
                assert ours.elapsed < 3 * 1.5 + 2.0
        finally:
            stop()
    assert not labnet.lab_namespaces(plan.lab_id)
