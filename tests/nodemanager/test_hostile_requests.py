"""Requests the project's client would never send, from the raw-wire attacker (attacker.py)."""

from __future__ import annotations

import nacl.signing
import pytest

from sandbox import parse_resources
from tests.support import attacker as a
from tests.support.nodes import Node
from tests.support.worlds import SMALL


def owner_signed(node: Node, doc_pairs: list[tuple[str, bytes]]) -> bytes:
    """A frame whose body is the given (possibly repeating) pairs, signed by the owner."""
    return a.frame(a.map_with_duplicate(doc_pairs), nacl.signing.SigningKey(node.owner.seed))


def pairs_of(node: Node, op: str, args: bytes) -> list[tuple[str, bytes]]:
    doc = a.body(op, node=node.server.node.raw, requester=node.owner.public.raw)
    return [(key, args if key == "args" else a.pack(value)) for key, value in doc.items()]


async def ask(node: Node, data: bytes) -> dict[str, object]:
    stream = await a.connect(node.port, "127.60.0.1")
    async with stream:
        return await a.ask(stream, data)


async def test_duplicate_keys_anywhere_are_bad_frames(node: Node) -> None:
    good_args = a.pack({"vessel": "v1", "advertise": False})
    pairs = pairs_of(node, "ChangeAdvertise", good_args)
    twice_args = [*pairs, ("args", a.pack({"vessel": "v2", "advertise": False}))]
    response = await ask(node, owner_signed(node, twice_args))
    assert a.error_code(response) == "BadFrame" and "args" in response["error"]["message"]
    inner = a.map_with_duplicate([("vessel", a.pack("v1")), ("advertise", a.pack(False)),
                                  ("vessel", a.pack("v2"))])
    response = await ask(node, owner_signed(node, pairs_of(node, "ChangeAdvertise", inner)))
    assert a.error_code(response) == "BadFrame"
    nonce_twice = [*pairs, ("nonce", a.pack(b"n" * 16))]
    assert a.error_code(await ask(node, owner_signed(node, nonce_twice))) == "BadFrame"
    assert node.server.state.vessels["v1"].advertise and node.server.state.vessels["v2"].advertise
    # the same request without the repetition is fine
    assert (await ask(node, owner_signed(node, pairs)))["ok"]
    assert not node.server.state.vessels["v1"].advertise


@pytest.mark.parametrize("args", [[], "vessel", None, 7, [["vessel", "v1"]]])
async def test_args_that_are_not_a_map_are_bad_frames(node: Node, args: object) -> None:
    doc = a.body("GetVesselResources")
    doc["args"] = args
    unsigned = a.frame(a.pack(doc))
    assert a.error_code(await ask(node, unsigned)) == "BadFrame"
    signed = owner_signed(node, pairs_of(node, "ListFilesInVessel", a.pack(args)))
    assert a.error_code(await ask(node, signed)) == "BadFrame"


@pytest.mark.parametrize("info", ["\x1b]0;owned\x07", "red\x1b[31m", "two\nlines", "tab\there",
                                  "\u202eexe.txt", "nul\x00", "c1\x9b", "sep\u2028"])
async def test_owner_info_refuses_control_characters(node: Node, info: str) -> None:
    frame, _ = a.signed_body("ChangeOwnerInformation", {"vessel": "v1", "info": info},
                             node.owner.seed, node.server.node.raw)
    response = await ask(node, frame)
    assert a.error_code(response) == "BadArguments"
    assert node.server.state.vessels["v1"].owner_info == ""


async def test_owner_info_keeps_ordinary_unicode(node: Node) -> None:
    info = "Lab 3 — Zürich 👩‍🔬 (東京)"
    frame, _ = a.signed_body("ChangeOwnerInformation", {"vessel": "v1", "info": info},
                             node.owner.seed, node.server.node.raw)
    assert (await ask(node, frame))["ok"]
    assert node.server.state.vessels["v1"].owner_info == info


@pytest.mark.parametrize(("text", "needle"), [
    ("resource cpu 0.05\nresource memory 1000.5\nresource diskused 500000\n", "rounded"),
    ("resource cpu 0.0500001\nresource memory 1000\nresource diskused 500000\n", "rounded"),
    ("resource cpu 0.05\nresource memory 1e3\nresource diskused 500000\nresource gpu 1\n",
     "unknown resource"),
    ("resource cpu 0.05\nresource memory 1000\nresource diskused 5\nresource memory 1000\n",
     "given twice"),
])
async def test_split_refuses_resource_text_it_would_change(
    node: Node, text: str, needle: str,
) -> None:
    frame, _ = a.signed_body("SplitVessel", {"vessel": "v1", "resources": text},
                             node.owner.seed, node.server.node.raw)
    response = await ask(node, frame)
    assert a.error_code(response) == "BadResources", response
    assert needle in str(response["error"]["message"])
    assert sorted(node.server.state.vessels) == ["v1", "v2"]
    assert node.server.state.vessels["v1"].resources == SMALL


async def test_split_accepts_exact_values_in_any_spelling(node: Node) -> None:
    text = "resource cpu .050\nresource memory 1e6\nresource diskused 500000.0\n"
    frame, _ = a.signed_body("SplitVessel", {"vessel": "v1", "resources": text},
                             node.owner.seed, node.server.node.raw)
    response = await ask(node, frame)
    assert response["ok"], response
    assert node.server.state.vessels["v4"].resources == parse_resources(
        "resource cpu 0.05\nresource memory 1000000\nresource diskused 500000\n")
