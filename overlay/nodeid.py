"""Key-derived DHT node ids with a static crypto puzzle (S/Kademlia, adapted) (pure).

A node owns an Ed25519 key pair and an 8-byte nonce. Its id is derived, never chosen::

    digest  = blake2b(ID_DOMAIN || pk || nonce, digest_size=32)
    node_id = digest[:20]                 (the 160-bit Kademlia id)
    valid  <=> digest[20:] starts with PUZZLE_BITS zero bits

Each try of a nonce yields one candidate id and passes with probability 2**-PUZZLE_BITS, so
an honest node pays about 2**16 hashes once (0.1 s in Python), while an attacker who wants an
id among the k closest of N nodes to a chosen key pays about N/k * 2**16 hashes per such id.
Every contact on the wire carries ``pk`` and ``nonce`` so anyone checks the id with one hash
(``check_id``). Entering a routing table additionally needs a signed ``hello``: the node signs
the asker's random challenge with the key, proving it holds the key at that address.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from seattlecore import BadSignature, CoreError, KeyPair, PublicKey

ID_DOMAIN = b"seattle-dht-id-v1\x00"
HELLO_DOMAIN = b"seattle-dht-hello-v1"
PUZZLE_BITS = 16
NONCE_BYTES = 8
ID_BYTES = 20
CHALLENGE_BYTES = 16
IDENTITY_FILE_BYTES = 32 + NONCE_BYTES


def id_digest(pk: bytes, nonce: bytes) -> bytes:
    return hashlib.blake2b(ID_DOMAIN + pk + nonce, digest_size=32).digest()


def _solves(digest: bytes, bits: int) -> bool:
    """True if ``digest[20:]`` starts with ``bits`` zero bits."""
    full, rest = divmod(bits, 8)
    tail = digest[ID_BYTES:]
    if tail[:full] != bytes(full):
        return False
    return rest == 0 or tail[full] >> (8 - rest) == 0


def check_id(node_id: bytes, pk: bytes, nonce: bytes, bits: int = PUZZLE_BITS) -> bool:
    """True if ``node_id`` is the puzzle-valid id of (``pk``, ``nonce``)."""
    if len(pk) != 32 or len(nonce) != NONCE_BYTES or len(node_id) != ID_BYTES:
        return False
    digest = id_digest(pk, nonce)
    return digest[:ID_BYTES] == node_id and _solves(digest, bits)


def solve_puzzle(pk: bytes, bits: int = PUZZLE_BITS) -> bytes:
    """Find a nonce that makes (``pk``, nonce) a valid id (about 2**bits hashes)."""
    base = hashlib.blake2b(ID_DOMAIN + pk, digest_size=32)
    start = int.from_bytes(os.urandom(NONCE_BYTES), "big")
    for i in range(1 << 62):
        nonce = ((start + i) % (1 << 64)).to_bytes(NONCE_BYTES, "big")
        h = base.copy()
        h.update(nonce)
        if _solves(h.digest(), bits):
            return nonce
    raise AssertionError("unreachable")


def hello_body(challenge: bytes, node_id: bytes) -> bytes:
    return challenge + node_id


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node's key pair, puzzle nonce and the id derived from them."""

    keys: KeyPair
    nonce: bytes
    bits: int = PUZZLE_BITS

    def __post_init__(self) -> None:
        if not check_id(self.node_id, self.keys.public.raw, self.nonce, self.bits):
            raise ValueError("nonce does not solve the id puzzle for this key")

    @classmethod
    def generate(cls, bits: int = PUZZLE_BITS) -> NodeIdentity:
        keys = KeyPair.generate()
        return cls(keys, solve_puzzle(keys.public.raw, bits), bits)

    @property
    def node_id(self) -> bytes:
        return id_digest(self.keys.public.raw, self.nonce)[:ID_BYTES]

    @property
    def pk(self) -> bytes:
        return self.keys.public.raw

    def hello(self, challenge: bytes) -> dict[str, Any]:
        """The answer to a ``hello`` RPC: the id, its proof, and a signature of the challenge."""
        sig = self.keys.sign(HELLO_DOMAIN, hello_body(challenge, self.node_id))
        return {"id": self.node_id, "pk": self.pk, "nonce": self.nonce, "sig": sig}

    def to_bytes(self) -> bytes:
        """Seed and nonce, for the state directory (keep it private)."""
        return self.keys.seed + self.nonce

    @classmethod
    def from_bytes(cls, data: bytes, bits: int = PUZZLE_BITS) -> NodeIdentity:
        """Inverse of ``to_bytes``; raises ValueError if the data is not a valid identity."""
        if len(data) != IDENTITY_FILE_BYTES:
            raise ValueError("identity is seed(32) + nonce(8)")
        return cls(KeyPair(data[:32]), data[32:], bits)


def hello_signature_ok(pk: bytes, challenge: bytes, node_id: bytes, sig: bytes) -> bool:
    """Check a ``hello`` signature (the id/puzzle check is ``check_id``)."""
    try:
        PublicKey(pk).verify(HELLO_DOMAIN, hello_body(challenge, node_id), sig)
    except (BadSignature, CoreError, ValueError):
        return False
    return True
