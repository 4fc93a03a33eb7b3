"""The node's side of sessions (revision 10, docs/protocol.md §18; pure but for the keys).

``Link`` is one connection's session slot. ``accept`` answers a verified, signed
``OpenSession``: a fresh ephemeral key, the signed answer, and the channel whose keys are
derived from both exact bodies. The server (``server.py``) calls ``Link.open_request`` for a
session frame and answers under the channel's key; a ``BadSession`` ends the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemanager.proto.auth import Verified
from nodemanager.proto.messages import OpenSession
from nodemanager.proto.session import MAX_COUNTER, Channel, Ephemeral, derive_keys
from nodemanager.proto.wire import Response, Signer, response_body, sign_response_body
from seattlecore import PublicKey


@dataclass(slots=True)
class Link:
    """One connection's session state: the channel once opened, and whether to hang up."""

    channel: Channel | None = None
    closing: bool = False
    """Set after a refused session frame: the answer is sent, then the connection closed."""


def accept(verified: Verified, request_body: bytes, *, node: PublicKey, signer: Signer,
           link: Link) -> bytes:
    """Open (or replace) ``link``'s session for the signed ``verified`` OpenSession whose
    body bytes are ``request_body``; return the signed answer's payload.

    Raises BadSession for a low-order ephemeral key (nothing is opened then).
    """
    request = verified.request
    assert isinstance(request, OpenSession) and verified.requester is not None
    mine = Ephemeral()
    shared = mine.shared(request.eph)
    body = response_body(Response(node=node, nonce=verified.nonce, ok=True,
                                  result={"eph": mine.public, "max_counter": MAX_COUNTER}))
    to_node, to_client = derive_keys(shared, request_body, body)
    link.channel = Channel(requester=verified.requester, to_node=to_node, to_client=to_client)
    return sign_response_body(signer, body)
