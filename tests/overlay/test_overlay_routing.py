"""Pure tests: the routing table's diversity limits and bounds, and disjoint-path lookups.

Every id, target and sample is seeded: a run draws the same network as the last one.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from overlay.answers import Contact
from overlay.lookup import Lookup, LookupParams
from overlay.netgroup import DiversityLimits
from overlay.routing import MAX_FAILURES, RoutingTable
from tests.support.dht import seeded_identity

OWN = seeded_identity("routing-own").node_id
POOL = [seeded_identity("routing-pool", i) for i in range(400)]


def seeded_target(seed: int) -> bytes:
    """A lookup target, the same in every run."""
    return random.Random(seed).randbytes(20)


def contact(i: int, host: str, port: int = 4000) -> Contact:
    ident = POOL[i]
    return Contact(ident.node_id, host, port, ident.pk, ident.nonce)


def test_three_hundred_ids_from_four_addresses_take_a_dozen_places() -> None:
    """Issue 11's 300 Sybil ids from 4 addresses: per-/24 caps of the table hold."""
    table = RoutingTable(OWN, k=20)
    for i in range(300):
        table.add(contact(i, f"127.50.{i % 4}.1", 5000 + i), now=1.0)
    assert len(table) <= 4 * DiversityLimits().per_table
    honest = [contact(300 + i, f"127.51.{i}.1") for i in range(20)]
    assert all(table.add(c, now=2.0) in ("added", "replacement") for c in honest)
    assert sum(1 for c in table.contacts() if c.host.startswith("127.51.")) >= 15


def test_thirty_thousand_new_ids_do_not_grow_the_table() -> None:
    """Issue 11 item 5: the table and its spares stay bounded whatever arrives."""
    table = RoutingTable(OWN, k=20, replacements=5)
    rng = random.Random(1)
    for i in range(30_000):
        c = contact(rng.randrange(400), f"127.{60 + i % 50}.{i % 200}.1", 1000 + i % 60000)
        table.add(c, now=float(i))
    spares = sum(len(s) for s in table._spare)
    assert len(table) <= 400 and spares <= 160 * 5
    assert len(table._by_addr) == len(table)


def test_live_contacts_stay_and_failed_ones_make_room() -> None:
    table = RoutingTable(OWN, k=2, replacements=2)
    buckets = [table.bucket_of(ident.node_id) for ident in POOL]
    index, _ = Counter(buckets).most_common(1)[0]  # half of any 400 ids share the first bucket
    same = [i for i, bucket in enumerate(buckets) if bucket == index][:4]
    first, second, third, fourth = (contact(i, f"127.52.{n}.1") for n, i in enumerate(same))
    assert table.add(first, 1.0) == "added" and table.add(second, 1.0) == "added"
    for _ in range(MAX_FAILURES - 1):  # no one waits: a contact may miss a few answers
        assert not table.failed(first.node_id)
    table.seen(first.node_id, 2.0)  # an answer resets the count
    assert table.add(third, 3.0) == "replacement"  # the bucket is full: the newcomer waits
    assert table.add(fourth, 4.0) == "replacement"
    assert first.node_id in table and second.node_id in table  # live contacts are kept
    assert table.failed(first.node_id)  # someone waits: the first miss makes room
    assert first.node_id not in table and fourth.node_id in table  # the freshest spare moved up


def test_one_contact_per_address_and_no_id_hijack() -> None:
    table = RoutingTable(OWN, k=20)
    a = contact(0, "127.53.0.1")
    table.add(a, 1.0)
    assert table.add(contact(0, "127.53.9.1"), 2.0) == "refused"  # same id elsewhere: keep the live one
    b = contact(1, "127.53.0.1")  # a proven new id at the same address: the node there changed
    assert table.add(b, 3.0) == "added"
    assert a.node_id not in table and len(table) == 1


def test_closest_is_exact_and_prefers_healthy_contacts() -> None:
    table = RoutingTable(OWN, k=20)
    everyone = [contact(i, f"127.54.{i}.1") for i in range(60)]
    for c in everyone:
        table.add(c, 1.0)
    target = seeded_target(1)
    goal = int.from_bytes(target, "big")
    held = table.contacts()
    expect = sorted(held, key=lambda c: c.distance(goal))[:5]
    assert table.closest(target, 5) == expect
    table.failed(expect[0].node_id)
    assert expect[0] not in table.closest(target, 5)


# ---- lookups over a simulated network --------------------------------------------------------

Network = dict[bytes, Callable[[Contact], list[Contact]]]


def simulate(lookup: Lookup, answer: Callable[[Contact], list[Contact] | None]) -> list[Contact]:
    """Drive ``lookup`` synchronously; ``answer`` returns contacts or None (no answer)."""
    asked: list[Contact] = []
    now = 0.0
    while not lookup.finished:
        batch = lookup.next_queries(now)
        if not batch:
            break
        for cand in batch:
            asked.append(cand.contact)
            reply = answer(cand.contact)
            if reply is None:
                lookup.failed(cand)
            else:
                lookup.answered(cand, reply)
        now += 1
    return asked


def honest_network(size: int) -> list[Contact]:
    return [contact(i, f"127.55.{i}.1") for i in range(size)]


def closest_to(people: list[Contact], target: bytes, k: int) -> list[Contact]:
    goal = int.from_bytes(target, "big")
    return sorted(people, key=lambda c: c.distance(goal))[:k]


def test_disjoint_paths_never_ask_an_endpoint_twice_and_find_the_closest() -> None:
    people = honest_network(200)
    target = seeded_target(2)
    lookup = Lookup(target, people[:12], LookupParams(k=10, alpha=2, paths=3))
    asked = simulate(lookup, lambda c: closest_to(people, target, 20))
    assert len(asked) == len({c.addr for c in asked})
    assert lookup.closest_answered(10) == closest_to(people, target, 10)


def test_a_peer_handing_out_unreachable_contacts_costs_a_round() -> None:
    """Issue 11 item 3: 400 unreachable contacts from one peer must not stall the lookup."""
    people = honest_network(100)
    target = seeded_target(3)
    liar = people[0]
    ghosts = [contact(100 + i, f"127.56.{i}.1") for i in range(300)]
    ghost_ids = {g.node_id for g in ghosts}
    rng = random.Random(3)

    def answer(c: Contact) -> list[Contact] | None:
        if c.node_id in ghost_ids:
            return None
        if c == liar:
            return rng.sample(ghosts, 20)
        return closest_to(people, target, 20)

    lookup = Lookup(target, [liar, *people[1:6]], LookupParams(k=10, alpha=2, paths=3))
    asked = simulate(lookup, answer)
    assert sum(1 for c in asked if c.node_id in ghost_ids) <= 10  # one round; then it is distrusted
    assert lookup.closest_answered(10) == closest_to(people, target, 10)


def test_many_ids_at_one_address_get_one_answer() -> None:
    """Issue 11 item 4: a peer answering with 20 fresh ids at its own address."""
    people = honest_network(50)
    target = seeded_target(4)
    sybil_host = "127.57.0.1"
    fakes = [contact(200 + i, sybil_host, 6000) for i in range(100)]
    rng = random.Random(4)

    def answer(c: Contact) -> list[Contact] | None:
        if c.host == sybil_host:
            return rng.sample(fakes, 20)
        return closest_to(people, target, 20)

    lookup = Lookup(target, [fakes[0], *people[:5]], LookupParams(k=10, alpha=2, paths=3))
    asked = simulate(lookup, answer)
    assert sum(1 for c in asked if c.host == sybil_host) == 1  # one endpoint, asked once
    best = lookup.closest_answered(10)
    assert len(set(best) & set(closest_to(people, target, 10))) >= 9


def test_budget_and_quorum_bound_the_work() -> None:
    people = honest_network(300)
    target = seeded_target(5)
    rng = random.Random(5)
    capped = Lookup(target, people[:9], LookupParams(k=10, alpha=3, paths=3, max_queries=7))
    assert len(simulate(capped, lambda c: rng.sample(people, 20))) == 7 and capped.finished
    quick = Lookup(target, people[:9], LookupParams(k=10, alpha=1, paths=3, quorum=1))
    asked = 0
    for cand in quick.next_queries(0.0):
        asked += 1
        quick.answered(cand, [])
        quick.holder(cand)
    assert asked == 3 and quick.finished


def test_a_lone_slow_query_holds_its_path_open() -> None:
    """Issue 20's start-up tail: a new node knows only its bootstrap peer; when that busy
    peer answered past the soft timeout the path counted as done (no live candidate left),
    so join and publish lookups ended with nothing and the node published to nobody."""
    people = honest_network(40)
    target = seeded_target(20)
    lookup = Lookup(target, people[:1], LookupParams(k=5, paths=3), own_id=OWN)
    first = lookup.next_queries(0.0)
    assert [c.contact for c in first] == people[:1]
    lookup.slow(first[0])
    assert not lookup.finished  # the late answer may still come
    lookup.answered(first[0], closest_to(people, target, 5))  # ... and it does
    simulate(lookup, lambda c: [])
    assert lookup.finished
    assert lookup.closest_answered(5) == closest_to(people, target, 5)


def test_a_slow_query_does_not_hold_a_path_with_k_others() -> None:
    """With ``k`` other live candidates answered, a slow one frees the path (S/Kademlia's
    soft timeout keeps its purpose on a big network)."""
    people = honest_network(12)
    target = seeded_target(21)
    ordered = closest_to(people, target, 12)
    lookup = Lookup(target, ordered, LookupParams(k=4, alpha=4, paths=1), own_id=OWN)
    batch = lookup.next_queries(0.0)
    slow = batch[-1]
    lookup.slow(slow)
    for cand in batch[:-1]:
        lookup.answered(cand, [])
    simulate(lookup, lambda c: [])
    assert lookup.finished
    assert lookup.closest_answered(4) == [c for c in ordered if c != slow.contact][:4]
