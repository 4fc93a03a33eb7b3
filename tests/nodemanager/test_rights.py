"""The owner/user/stranger/anonymous matrix for every operation, over loopback sockets."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from nodemanager.proto import messages as m
from nodemanager.proto.wire import open_response, seal_request
from seattlecore import KeyPair
from tests.support.nodes import Node
from tests.support.requests import EXAMPLES


@pytest.mark.parametrize("request_", EXAMPLES, ids=lambda r: r.op)
@pytest.mark.parametrize("who", ["owner", "user", "stranger", "anonymous"])
async def test_rights_over_the_wire(node: Node, request_: m.Request, who: str) -> None:
    if isinstance(request_, m.ChangeOwner | m.ChangeUsers):
        request_ = type(request_)(vessel="v1", **{  # type: ignore[arg-type]
            "owner": node.owner.public} if isinstance(request_, m.ChangeOwner)
            else {"users": (node.user.public,)})
    identity: KeyPair | None = {"owner": node.owner, "user": node.user,
                                "stranger": node.stranger, "anonymous": None}[who]
    nonce = os.urandom(16)
    payload = seal_request(request_, identity=identity, node=node.server.node, nonce=nonce,
                           timestamp=time.time())
    async with node.client(None) as nm:
        response = open_response(await nm.exchange(payload), node=node.server.node,
                                 nonce=nonce)
    if isinstance(request_, m.Batch) and response.ok:  # rights are per call: its one entry
        assert response.result is not None
        entry = response.result["results"][0]
        response = replace(response, ok=entry["ok"],
                           code=None if entry["ok"] else entry["error"]["code"],
                           message=None if entry["ok"] else entry["error"]["message"])
    if isinstance(request_, m.OpenSession):  # anyone who signs; rights are per request
        assert response.code == ("SignatureRequired" if who == "anonymous" else None), response
        return
    allowed = (request_.right == "public" or who == "owner"
               or (request_.right == "user" and who == "user"))
    if allowed:
        assert response.code not in ("Forbidden", "SignatureRequired"), response.message
    elif who == "anonymous":
        assert response.code == "SignatureRequired"
    else:
        assert response.code == "Forbidden"
