"""Batches (protocol revision 7): one signature for calls on several vessels of one node.

The hostile half speaks the wire with tests/support/attacker.py (msgpack and PyNaCl, no
project code): replayed batches, calls on vessels the key has no right on, mixed rights,
oversized and malformed batches. The other half drives ``call_batch`` and ``Batcher``.
"""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
import trio

from nodemanager import NodeClient, errors
from nodemanager.node import batch as node_batch
from nodemanager.proto import messages as m
from nodemanager.proto.batch import Batcher, call_batch
from nodemanager.proto.messages import MAX_BATCH_CALLS
from seattlecore import KeyPair
from tests.support import attacker
from tests.support.nodes import Node


def calls(*items: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"calls": [{"op": op, "args": args} for op, args in items]}


def signed_batch(target: Node, who: KeyPair, args: Any, **fields: Any) -> tuple[bytes, bytes]:
    """A Batch frame signed by ``who`` (``fields`` override body keys), and its nonce."""
    key = nacl.signing.SigningKey(who.seed)
    doc = attacker.body("Batch", args, **{"node": target.server.node.raw,
                                          "requester": who.public.raw, **fields})
    return attacker.frame(attacker.pack(doc), key), doc["nonce"]


def entries(response: dict[str, Any]) -> list[tuple[bool, str | None]]:
    """(ok, error code) of each call of a batch answer."""
    assert response["ok"], response
    return [(e["ok"], None if e["ok"] else e["error"]["code"])
            for e in response["result"]["results"]]


async def files(node: Node, vessel: str) -> list[str]:
    async with node.client(node.owner) as nm:
        return await nm.list_files(vessel)


# ---- the wire, by an attacker ----

async def test_replayed_batch_is_refused_whole_and_runs_nothing_twice(node: Node) -> None:
    data, _ = signed_batch(node, node.user, calls(
        ("AddFileToVessel", {"vessel": "v1", "filename": "a.txt", "data": b"1"}),
        ("AddFileToVessel", {"vessel": "v2", "filename": "b.txt", "data": b"2"})))
    async with await attacker.connect(node.port) as stream:
        assert entries(await attacker.ask(stream, data)) == [(True, None), (True, None)]
    async with node.client(node.owner) as nm:
        await nm.delete_file("v1", "a.txt")
        await nm.delete_file("v2", "b.txt")
    async with await attacker.connect(node.port) as stream:  # the same bytes again
        answer = await attacker.ask(stream, data)
    assert attacker.error_code(answer) == "ReplayedNonce"
    assert await files(node, "v1") == [] and await files(node, "v2") == []


async def test_batch_on_vessels_without_rights_changes_nothing_and_earns_no_trust(
        node: Node) -> None:
    data, _ = signed_batch(node, node.stranger, calls(
        ("AddFileToVessel", {"vessel": "v1", "filename": "x", "data": b"x"}),
        ("ChangeOwner", {"vessel": "v2", "owner": node.stranger.public.raw})))
    async with await attacker.connect(node.port) as stream:
        assert entries(await attacker.ask(stream, data)) == [
            (False, "Forbidden"), (False, "Forbidden")]
        assert node.server.admission.statistics().trusted == 0
    assert await files(node, "v1") == []
    assert node.server.state.vessels["v2"].owner == node.owner.public


async def test_mixed_rights_are_checked_call_by_call(node: Node) -> None:
    async with node.client(node.owner) as nm:
        await nm.change_users("v2", [])  # the user keeps a right on v1 only
    data, _ = signed_batch(node, node.user, calls(
        ("AddFileToVessel", {"vessel": "v1", "filename": "ok.txt", "data": b"y"}),
        ("AddFileToVessel", {"vessel": "v2", "filename": "no.txt", "data": b"n"}),
        ("ChangeOwnerInformation", {"vessel": "v1", "info": "mine now"}),  # owner only
        ("ListFilesInVessel", {"vessel": "v9"}),
        ("ListFilesInVessel", {"vessel": "v1"})))
    async with await attacker.connect(node.port) as stream:
        answer = await attacker.ask(stream, data)
    assert entries(answer) == [(True, None), (False, "Forbidden"), (False, "Forbidden"),
                               (False, "NoSuchVessel"), (True, None)]
    assert answer["result"]["results"][4]["result"] == {"files": ["ok.txt"]}  # in order
    assert await files(node, "v2") == []
    assert node.server.state.vessels["v1"].owner_info == ""


@pytest.mark.parametrize("args", [
    calls(*[("ListFilesInVessel", {"vessel": "v1"})] * (MAX_BATCH_CALLS + 1)),
    {"calls": []},
    calls(("Batch", calls(("ListFilesInVessel", {"vessel": "v1"})))),
    calls(("GetNodeStatus", {})),
    calls(("NoSuchOp", {})),
    calls(("ListFilesInVessel", {"vessel": "v1", "extra": 1})),
    {"calls": [{"op": "ListFilesInVessel", "args": {"vessel": "v1"}, "more": 1}]},
    {"calls": ["ListFilesInVessel"]},
    {"calls": {"op": "ListFilesInVessel"}},
    {"calls": [{"op": "ListFilesInVessel", "args": {"vessel": "v1"}}], "x": 1},
], ids=["oversized", "empty", "nested", "node-wide call", "unknown op", "bad call args",
        "extra call key", "call not a map", "calls not a list", "extra batch arg"])
async def test_malformed_batch_is_refused_whole_without_using_its_nonce(
        node: Node, args: Any) -> None:
    add = ("AddFileToVessel", {"vessel": "v1", "filename": "a.txt", "data": b"1"})
    if isinstance(args.get("calls"), list) and args["calls"] and isinstance(args["calls"][0], dict):
        args = {**args, "calls": [{"op": add[0], "args": add[1]}, *args["calls"]]}
    data, nonce = signed_batch(node, node.user, args)
    async with await attacker.connect(node.port) as stream:
        assert attacker.error_code(await attacker.ask(stream, data)) == "BadArguments"
        assert await files(node, "v1") == []  # not even the good call ran
        good, _ = signed_batch(node, node.user, calls(add), nonce=nonce)
        assert entries(await attacker.ask(stream, good)) == [(True, None)]


async def test_unsigned_forged_and_misaddressed_batches(node: Node) -> None:
    args = calls(("ListFilesInVessel", {"vessel": "v1"}))
    unsigned = attacker.frame(attacker.pack(attacker.body("Batch", args)))
    forged, _ = signed_batch(node, node.stranger, args, requester=node.owner.public.raw)
    elsewhere, _ = signed_batch(node, node.owner, args, node=KeyPair.generate().public.raw)
    async with await attacker.connect(node.port) as stream:
        assert attacker.error_code(await attacker.ask(stream, unsigned)) == "SignatureRequired"
        assert attacker.error_code(await attacker.ask(stream, forged)) == "BadSignature"
        assert attacker.error_code(await attacker.ask(stream, elsewhere)) == "WrongNode"
        assert node.server.admission.statistics().trusted == 0


async def test_big_batch_on_an_untrusted_connection_is_cut_off(node: Node) -> None:
    data, _ = signed_batch(node, node.user, calls(
        ("AddFileToVessel", {"vessel": "v1", "filename": "big", "data": b"z" * 70_000})))
    async with await attacker.connect(node.port) as stream:
        answer = await attacker.ask(stream, data)
        assert attacker.error_code(answer) == "FrameTooLarge"
        with pytest.raises(attacker.Closed):
            await attacker.ask(stream, data)


async def test_an_old_style_client_still_works(node: Node) -> None:
    """A revision-6 client: one signed request per vessel, packed by hand."""
    async with await attacker.connect(node.port) as stream:
        status = await attacker.ask(stream, attacker.frame(attacker.pack(
            attacker.body("GetNodeStatus"))))
        assert status["result"]["revision"] == m.PROTOCOL_REVISION >= 7
        for vessel in ("v1", "v2"):
            data, nonce = attacker.signed_body(
                "AddFileToVessel", {"vessel": vessel, "filename": "o.txt", "data": b"old"},
                node.user.seed, node.server.node.raw)
            answer = await attacker.ask(stream, data)
            assert answer["ok"] and answer["nonce"] == nonce and answer["result"] == {}
    assert await files(node, "v1") == await files(node, "v2") == ["o.txt"]


# ---- the project's client ----

async def test_call_batch_returns_one_outcome_per_call(node: Node) -> None:
    async with node.client(node.user) as nm:
        outcomes = await call_batch(nm, [
            m.AddFileToVessel(vessel="v1", filename="a.py", data=b"log('hi')\n"),
            m.RetrieveFileFromVessel(vessel="v1", filename="a.py"),
            m.RetrieveFileFromVessel(vessel="v2", filename="a.py"),
            m.GetVesselResources(vessel="v2")])
    assert outcomes[0] == {} and outcomes[1] == {"data": b"log('hi')\n"}
    assert isinstance(outcomes[2], errors.FileNotFound)
    assert isinstance(outcomes[3], dict) and "cpu" in outcomes[3]["resources"]


async def test_batcher_sends_concurrent_calls_as_one_frame(node: Node) -> None:
    before = node.server.state.nonce_count()
    seen: dict[str, list[str]] = {}

    def task(vessel: str) -> Any:
        async def run(client: NodeClient) -> None:
            await client.add_file(vessel, f"{vessel}.txt", b"x")
            seen[vessel] = await client.list_files(vessel)
        return run

    async with node.client(node.user) as nm:
        batcher = Batcher(nm)
        await batcher.run([task("v1"), task("v2")])
    assert seen == {"v1": ["v1.txt"], "v2": ["v2.txt"]}
    assert batcher.frames == 2  # two rounds (add, then list), each one frame
    assert node.server.state.nonce_count() - before == 2  # one signed request per round


async def test_batcher_falls_back_to_single_calls_on_an_old_node(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(m.REQUESTS, (1, "Batch"))  # the node no longer knows the operation
    results: list[str] = []

    def task(vessel: str) -> Any:
        async def run(client: NodeClient) -> None:
            results.extend(await client.list_files(vessel))
            await client.add_file(vessel, "f", b"")
        return run

    async with node.client(node.user) as nm:
        batcher = Batcher(nm)
        await batcher.run([task("v1"), task("v2")])
    assert not batcher.batches
    assert batcher.frames == 1 + 2 + 2  # the refused batch, then every call alone
    assert await files(node, "v1") == await files(node, "v2") == ["f"]


async def test_a_full_answer_is_finished_in_later_batches(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_batch, "RESULT_BYTES", 1000)
    async with node.client(node.user) as nm:
        for vessel in ("v1", "v2"):
            await nm.add_file(vessel, "data", vessel.encode() * 300)
        outcomes = await call_batch(nm, [
            m.RetrieveFileFromVessel(vessel=v, filename="data") for v in ("v1", "v2", "v1")])
        assert outcomes[0] == {"data": b"v1" * 300}
        assert [type(o) for o in outcomes[1:]] == [errors.BatchFull, errors.BatchFull]
        got: dict[int, bytes] = {}

        def task(index: int, vessel: str) -> Any:
            async def run(client: NodeClient) -> None:
                got[index] = await client.retrieve_file(vessel, "data")
            return run

        batcher = Batcher(nm)
        await batcher.run([task(0, "v1"), task(1, "v2"), task(2, "v1")])
    assert got == {0: b"v1" * 300, 1: b"v2" * 300, 2: b"v1" * 300}
    assert batcher.frames == 3


async def test_a_cancelled_task_does_not_hold_up_the_others(node: Node) -> None:
    done: list[str] = []

    async def quick(client: NodeClient) -> None:
        done.append(str(await client.list_files("v1")))

    async def gives_up(client: NodeClient) -> None:
        with trio.move_on_after(0):
            await client.list_files("v2")
        done.append("gave up")

    async with node.client(node.user) as nm:
        with trio.fail_after(10):
            await Batcher(nm).run([quick, gives_up])
    assert sorted(done) == ["[]", "gave up"]


async def test_batcher_splits_at_the_call_limit(node: Node) -> None:
    listed: list[list[str]] = []

    async def task(client: NodeClient) -> None:
        listed.append(await client.list_files("v1"))

    async with node.client(node.user) as nm:
        batcher = Batcher(nm)
        await batcher.run([task] * (MAX_BATCH_CALLS + 6))
    assert listed == [[]] * (MAX_BATCH_CALLS + 6)
    assert batcher.frames == 2


async def test_tasks_asking_get_vessels_at_once_share_one_answer(node: Node) -> None:
    async with node.client(node.owner) as nm:
        batcher = Batcher(nm)
        infos = []

        async def task(client: NodeClient) -> None:
            infos.append(await client.get_vessels())

        await batcher.run([task] * 5)
        assert batcher.frames == 1 and len(infos) == 5
        assert all(info is infos[0] for info in infos)  # decoded once, not once a task
        assert [v.name for v in infos[0].vessels] == ["v1", "v2"]

        async def later(client: NodeClient) -> None:  # a later ask is a new request
            first = await client.get_vessels()
            await client.add_file("v1", "a", b"a")
            assert await client.get_vessels() is not first

        await batcher.run([later])
