"""``up --wait``'s judgement (pure): which nodes are not usable yet, and why."""

from __future__ import annotations

from testbed.ready import Expected, NodeSeen, judge, missing

PUBLIC = Expected(name="n000", key="k0", public=True, vessels=2)
NATED = Expected(name="n001", key="k1", public=False, vessels=2)


def test_a_public_node_is_ready_once_found_usable_and_crawled() -> None:
    assert missing(PUBLIC, None) == "no advert found in the DHT"
    found = NodeSeen(adverts=2, usable=2, udp="public", crawled=False)
    assert missing(PUBLIC, found) == "not reached by a crawl (udp public)"
    assert missing(PUBLIC, NodeSeen(adverts=2, usable=2, udp="public", crawled=True)) is None
    # the first node of a network serves before it has anyone to ask: the crawl decides
    assert missing(PUBLIC, NodeSeen(adverts=2, usable=2, udp="unknown", crawled=True)) is None


def test_a_nated_node_is_ready_once_decided_private_and_usable_through_a_relay() -> None:
    usable = NodeSeen(adverts=2, usable=2, udp="unknown")
    assert missing(NATED, usable) == "udp unknown, not yet decided private"
    assert missing(NATED, NodeSeen(adverts=2, usable=2, udp="private")) is None
    # a NATed node that wrongly believes it is public is not ready, whatever else holds
    assert missing(NATED, NodeSeen(adverts=2, usable=2, udp="public", crawled=True)) is not None


def test_every_shortfall_is_named() -> None:
    seen = NodeSeen(adverts=1, usable=0, udp="unknown", error="cannot connect to 198.18.0.9:1")
    why = missing(PUBLIC, seen)
    assert why == ("1 of 2 adverts found; 0 of 2 vessels usable (cannot connect to "
                   "198.18.0.9:1); not reached by a crawl (udp unknown)")


def test_judge_names_only_the_nodes_not_ready() -> None:
    seen = {"k0": NodeSeen(adverts=2, usable=2, udp="public", crawled=True)}
    assert judge([PUBLIC, NATED], seen) == {"n001": "no advert found in the DHT"}
    seen["k1"] = NodeSeen(adverts=2, usable=2, udp="private")
    assert judge([PUBLIC, NATED], seen) == {}


def test_a_packed_public_node_must_serve_where_a_crawl_cannot_reach_it() -> None:
    packed = Expected(name="n002", key="k2", public=True, vessels=2, crawlable=False)
    assert missing(packed, NodeSeen(adverts=2, usable=2, udp="unknown")) == (
        "udp unknown, not yet a DHT server")
    assert missing(packed, NodeSeen(adverts=2, usable=2, udp="public")) is None
