"""Pure tests of the wire schema, framing and request authentication."""

from __future__ import annotations

import os

import msgpack
import pytest

from nodemanager import errors
from nodemanager.proto import messages as m
from nodemanager.proto.auth import authenticate
from nodemanager.proto.wire import (
    MAX_FRAME_BYTES,
    REQUEST_DOMAIN,
    Envelope,
    Response,
    frame,
    frame_length,
    open_envelope,
    open_response,
    request_body,
    seal_request,
    seal_response,
)
from seattlecore import KeyPair
from tests.support.requests import EXAMPLES

NOW = 1_700_000_000.0
ALICE = KeyPair.generate()
NODE = KeyPair.generate()
KEY = ALICE.public



def test_every_operation_has_an_example() -> None:
    assert {type(r) for r in EXAMPLES} == set(m.SCHEMAS)


@pytest.mark.parametrize("request_", EXAMPLES, ids=lambda r: r.op)
def test_args_round_trip_through_msgpack(request_: m.Request) -> None:
    wire = msgpack.unpackb(msgpack.packb(request_.to_args()), raw=False)
    assert m.decode_request(m.PROTOCOL_VERSION, request_.op, wire) == request_


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("GetVesselResources", {}),
        ("GetVesselResources", {"vessel": "v1", "extra": 1}),
        ("GetVesselResources", {"vessel": 7}),
        ("StartVessel", {"vessel": "v1", "program": "a.py", "args": "notalist"}),
        ("StartVessel", {"vessel": "v1", "program": "a.py", "args": [1]}),
        ("AddFileToVessel", {"vessel": "v1", "filename": "a.py", "data": "str not bytes"}),
        ("ChangeUsers", {"vessel": "v1", "users": [b"short"]}),
        ("ChangeAdvertise", {"vessel": "v1", "advertise": 1}),
        ("ChangeOwnerInformation", {"vessel": "v1", "info": "x\ny"}),
        ("ChangeOwnerInformation", {"vessel": "v1", "info": "x" * 257}),
        ("GetVessels", []),
    ],
)
def test_ill_typed_arguments_are_refused(op: str, args: object) -> None:
    with pytest.raises(errors.BadArguments):
        m.decode_request(m.PROTOCOL_VERSION, op, args)


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "UPPER.py", "a/b", "a" * 121, "private_x", "sp ace", 5]
)
def test_filename_rules(name: object) -> None:
    with pytest.raises(errors.BadArguments):
        m.check_filename(name)


def test_filename_limits_accept_120_chars() -> None:
    assert m.check_filename("a" * 120) == "a" * 120
    assert m.check_filename("x-1_2.py") == "x-1_2.py"


def test_local_construction_validates() -> None:
    with pytest.raises(errors.BadArguments):
        m.AddFileToVessel(vessel="v1", filename="a", data=b"x" * (m.MAX_FILE_BYTES + 1))


def test_unknown_operation() -> None:
    with pytest.raises(errors.UnknownOperation):
        m.decode_request(m.PROTOCOL_VERSION, "SetRestrictions", {})


def test_frame_length_is_checked_before_the_body() -> None:
    assert frame_length(frame(b"abc")[:4]) == 3
    with pytest.raises(errors.FrameTooLarge):
        frame_length((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))


@pytest.mark.parametrize(
    "payload", [b"", b"\xc1", msgpack.packb([1]), msgpack.packb([b"x", b"short"]),
                msgpack.packb({"a": 1}), msgpack.packb([b"x", b"y", b"z"])]
)
def test_malformed_envelopes(payload: bytes) -> None:
    with pytest.raises(errors.BadFrame):
        open_envelope(payload)


def _signed(request: m.Request, *, identity: KeyPair = ALICE, ts: float = NOW,
            node: KeyPair = NODE) -> Envelope:
    return open_envelope(seal_request(request, identity=identity, node=node.public,
                                      nonce=os.urandom(16), timestamp=ts))


def test_signed_request_authenticates() -> None:
    verified = authenticate(_signed(m.StopVessel(vessel="v1")), node=NODE.public, now=NOW)
    assert verified.request == m.StopVessel(vessel="v1")
    assert verified.requester == KEY


def test_unsigned_public_request_authenticates() -> None:
    envelope = open_envelope(seal_request(m.GetVessels(), identity=None, node=None,
                                          nonce=os.urandom(16), timestamp=0))
    assert authenticate(envelope, node=NODE.public, now=NOW).requester is None


def test_unsigned_user_call_needs_a_signature() -> None:
    envelope = open_envelope(seal_request(m.StopVessel(vessel="v1"), identity=None,
                                          node=NODE.public, nonce=os.urandom(16), timestamp=NOW))
    with pytest.raises(errors.SignatureRequired):
        authenticate(envelope, node=NODE.public, now=NOW)


def test_tampered_body_fails_the_signature() -> None:
    good = _signed(m.StopVessel(vessel="v1"))
    body = good.body.replace(b"v1", b"v2")
    with pytest.raises(errors.BadSignature):
        authenticate(Envelope(body=body, signature=good.signature), node=NODE.public, now=NOW)


def test_signature_by_another_key_fails() -> None:
    good = _signed(m.StopVessel(vessel="v1"))
    other = KeyPair.generate().sign(REQUEST_DOMAIN, good.body)
    with pytest.raises(errors.BadSignature):
        authenticate(Envelope(body=good.body, signature=other), node=NODE.public, now=NOW)


def test_request_for_another_node() -> None:
    with pytest.raises(errors.WrongNode):
        authenticate(_signed(m.GetVessels(), node=KeyPair.generate()), node=NODE.public, now=NOW)


@pytest.mark.parametrize("skew", [-301.0, 301.0, -1e9])
def test_outside_time_window(skew: float) -> None:
    with pytest.raises(errors.OutsideTimeWindow):
        authenticate(_signed(m.GetVessels(), ts=NOW + skew), node=NODE.public, now=NOW)


def test_inside_time_window() -> None:
    authenticate(_signed(m.GetVessels(), ts=NOW - 299), node=NODE.public, now=NOW)


def test_unsupported_version() -> None:
    body = request_body(m.GetVessels(), node=NODE.public, requester=KEY,
                        nonce=os.urandom(16), timestamp=NOW, version=99)
    envelope = Envelope(body=body, signature=ALICE.sign(REQUEST_DOMAIN, body))
    with pytest.raises(errors.UnsupportedVersion):
        authenticate(envelope, node=NODE.public, now=NOW)


def test_response_binding() -> None:
    nonce = os.urandom(16)
    payload = seal_response(NODE, Response(node=NODE.public, nonce=nonce, ok=True, result={}))
    assert open_response(payload, node=NODE.public, nonce=nonce).ok
    with pytest.raises(errors.BadResponse):
        open_response(payload, node=NODE.public, nonce=os.urandom(16))
    with pytest.raises(errors.BadResponse):
        open_response(payload, node=KeyPair.generate().public, nonce=nonce)
    forged = seal_response(KeyPair.generate(),
                           Response(node=NODE.public, nonce=nonce, ok=True, result={}))
    with pytest.raises(errors.BadResponse):
        open_response(forged, node=None, nonce=nonce)


def test_cached_signer_matches_keypair_sign() -> None:
    from nodemanager.proto.wire import Signer
    body = b"some body bytes"
    assert Signer(ALICE, REQUEST_DOMAIN).sign(body) == ALICE.sign(REQUEST_DOMAIN, body)
