"""The lab plan (testbed/lab/plan.py): pure, no root needed."""

from __future__ import annotations

import ipaddress

import pytest

from installer.errors import TestbedError
from testbed.lab.plan import (
    Net,
    first_free,
    home_candidates,
    lab_of,
    nat_kinds,
    nat_ruleset,
    overlaps,
    parse_net,
    plan_lab,
    public_candidates,
)

PUB, HOME = Net("198.51.100.0/24"), Net("198.19.0.0/24")


def test_every_link_joins_two_lab_namespaces() -> None:
    plan = plan_lab("a1b2c3", 10, PUB, HOME, nat=0.5, nat_kind="mixed", researcher_nat=True)
    names = set(plan.namespaces)
    assert len(names) == len(plan.namespaces) == 1 + 10 + 5 + 1 + 1  # net, hosts, routers, res+gw
    assert all(lab_of(n) == "a1b2c3" for n in names)
    for link in plan.links():
        assert link.a in names and link.b in names and link.a != link.b
    # one bridge port per host or router on the internet, each name unique there
    ports = [link.b_if for link in plan.links() if link.b == plan.internet]
    assert len(ports) == len(set(ports)) == 11


def test_addresses_stay_in_the_lab_ranges() -> None:
    plan = plan_lab("a1b2c3", 20, PUB, HOME, nat=0.5)
    for addr in plan.addresses():
        ip = ipaddress.ip_address(addr.address)
        assert ip in PUB or ip in HOME
    publics = [h.public_address for h in plan.hosts]
    assert len(set(publics)) == len(publics)  # each host seen at its own address
    assert plan.ranges == (PUB, HOME)


def test_nated_hosts_route_through_their_router_only() -> None:
    plan = plan_lab("a1b2c3", 6, PUB, HOME, nat=0.5, nat_kind="symmetric")
    nated = [h for h in plan.nodes if h.router is not None]
    assert [h.nat for h in nated] == ["symmetric"] * 3
    routes = {r.namespace: r.gateway for r in plan.routes()}
    assert routes == {h.namespace: h.router.lan for h in nated if h.router}
    assert all(h.address == str(HOME[2]) for h in nated)  # every home alike, like real homes
    assert plan.nodes[0].router is None  # the bootstrap peer is public


def test_nat_share_and_kinds() -> None:
    assert nat_kinds(4, 0.0, "cone") == [None] * 4
    assert nat_kinds(1, 1.0, "cone") == [None]
    kinds = nat_kinds(20, 0.5, "mixed")
    assert kinds[0] is None and kinds.count("cone") == 5 and kinds.count("symmetric") == 5
    assert nat_kinds(5, 1.0, "cone") == [None, "cone", "cone", "cone", "cone"]
    with pytest.raises(TestbedError, match="fraction"):
        nat_kinds(4, 1.5, "cone")


def test_rulesets() -> None:
    cone, symmetric = nat_ruleset("cone"), nat_ruleset("symmetric")
    assert 'oifname "wan0" masquerade\n' in cone and "random" not in cone
    assert 'oifname "wan0" masquerade random\n' in symmetric
    for rules in (cone, symmetric):
        assert "policy drop" in rules and 'iifname "wan0" drop' in rules


def test_ranges_in_use_are_skipped_or_refused() -> None:
    used = [Net("0.0.0.0/0"), Net("198.51.100.0/25"), Net("192.0.2.0/24")]
    assert overlaps([PUB], used) == [(PUB, Net("198.51.100.0/25"))]
    assert overlaps([Net("10.0.0.0/8")], used) == []  # the default route overlaps nothing
    assert first_free(public_candidates(), used) == Net("198.18.0.0/16")
    assert first_free(public_candidates(), [*used, Net("198.18.7.0/24")]) == Net("203.0.113.0/24")
    assert first_free(home_candidates(), []) == HOME
    with pytest.raises(TestbedError, match="in use"):
        first_free([PUB], used)


@pytest.mark.parametrize("text", ["nonsense", "198.51.100.1/24", "198.51.100.0/30", "::1/128"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(TestbedError):
        parse_net(text)


def test_plan_refuses_what_does_not_fit() -> None:
    with pytest.raises(TestbedError, match="holds 1 to 5 nodes"):
        plan_lab("a1b2c3", 6, Net("198.51.100.0/28"), HOME)
    with pytest.raises(TestbedError, match="lab id"):
        plan_lab("../etc", 2, PUB, HOME)
    with pytest.raises(TestbedError, match="no lab host"):
        plan_lab("a1b2c3", 2, PUB, HOME).host("n007")
    assert plan_lab("a1b2c3", 2, PUB, HOME).host("researcher").address == "198.51.100.1"
    with pytest.raises(TestbedError, match="holds 1 to 246 nodes"):
        plan_lab("a1b2c3", 247, Net("198.18.0.0/16"), HOME)


def test_each_host_in_its_own_network_when_there_is_room() -> None:
    """Per-/24 limits in the DHT must see distinct networks, as between donors on the internet."""
    plan = plan_lab("a1b2c3", 246, Net("198.18.0.0/16"), HOME, nat=0.3)
    publics = [h.public_address for h in plan.hosts]
    assert publics[0] == "198.18.10.1" and plan.researcher.public_address == "198.18.1.1"
    assert len({ipaddress.ip_network(f"{a}/24", strict=False) for a in publics}) == len(publics)
    packed = plan_lab("a1b2c3", 3, PUB, HOME)
    assert [h.address for h in packed.hosts] == ["198.51.100.10", "198.51.100.11", "198.51.100.12",
                                                 "198.51.100.1"]


def test_lab_ids_from_names() -> None:
    assert lab_of("sl-0a1b2c-n003gw") == "0a1b2c"
    assert lab_of("sl-0a1b2c") is None and lab_of("other") is None and lab_of("sl-XYZXYZ-n0") is None
