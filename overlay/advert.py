"""Signed vessel advertisements: the record format, signing and verification (pure).

Wire form of one record (a "blob", at most ``MAX_RECORD_BYTES``)::

    msgpack [FORMAT_VERSION, body: bin, sig: bin(64)]
    body = msgpack {"v": 1, "n": node_pk(32), "a": "host:port", "m": vessel,
                    "u": user_pk(32), "s": seq, "e": expires_at, "w": withdrawn
                    [, "r": ["relayhost:port", ...]] [, "t": tag: bin]}

``r`` (optional, at most ``MAX_RELAYS`` entries) lists relays that hold a reservation for a
node behind NAT (docs/nat.md); it is written only when non-empty, so a public node's
records are byte-for-byte what readers without relay support expect. ``t`` (optional, at
most ``MAX_TAG_BYTES``) is an opaque tag the overlay stores and returns without reading it:
the community pool puts a free vessel's attributes or a lease record there (docs/pool.md).
Tags are msgpack maps whose ``"k"`` names their kind, and a reader skips a kind it does not
know: the pool's kinds are ``free`` and ``lease``; this module defines ``donor``
(``{"k": "donor", "p": reason}``: the donor paused the node's vessels; see ``donor_tag``).
Because the overlay stores tags without reading them, readers and stores of every earlier
revision accept a record with a donor tag (record revision 2 of docs/overlay.md).
    sig  = Ed25519(node_sk, ADVERT_DOMAIN || len(body) || body)      (seattlecore.keys)

The signature covers the exact body bytes, which are verified *before* the body is decoded.
A user's adverts are stored under ``REPLICA_KEYS`` DHT keys,
``blake2b(DHT_KEY_DOMAIN + user_pk [+ byte i], digest_size=20)``; a record is bound to a DHT
key when its ``u`` derives it. Verification takes ``now`` (wall-clock seconds)
as an argument; this module never reads a clock.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import msgpack

from overlay.errors import InvalidAdvert, OverlayUsageError
from seattlecore import BadSignature, CoreError, KeyPair, PublicKey

FORMAT_VERSION = 1
BODY_VERSION = 1
ADVERT_DOMAIN = b"seattle-advert-v1"
DHT_KEY_DOMAIN = b"seattle/adv/v1\x00"
DHT_KEY_BYTES = 20
REPLICA_KEYS = 3
"""Each advert is stored under this many keys derived from the user key (see dht_keys_for)."""
MAX_RECORD_BYTES = 1000
MAX_VESSEL_CHARS = 64
MAX_ADDRESS_CHARS = 261
MAX_TTL = 2 * 3600.0
"""Records may not claim to live longer than this (plus ``CLOCK_SKEW``) from ``now``."""
CLOCK_SKEW = 120.0
MAX_SEQ = 2**63 - 1
MAX_RELAYS = 3
MAX_TAG_BYTES = 400
_BODY_KEYS = frozenset("vnamusew")
_BODY_KEYS_RELAYED = _BODY_KEYS | {"r"}
_BODY_KEY_SETS = (_BODY_KEYS, _BODY_KEYS_RELAYED, _BODY_KEYS | {"t"}, _BODY_KEYS_RELAYED | {"t"})


def dht_key_for(user_key: PublicKey, replica: int = 0) -> bytes:
    """The 20-byte DHT key of replica ``replica`` (0..REPLICA_KEYS-1) of ``user_key``'s adverts.

    Replica 0 is ``blake2b(DHT_KEY_DOMAIN || user_pk)``; replica i > 0 appends the byte i.
    """
    if not 0 <= replica < REPLICA_KEYS:
        raise OverlayUsageError(f"replica must be in [0, {REPLICA_KEYS})")
    suffix = bytes([replica]) if replica else b""
    return hashlib.blake2b(DHT_KEY_DOMAIN + user_key.raw + suffix, digest_size=DHT_KEY_BYTES).digest()


POOL_LISTING_DOMAIN = b"seattle/pool/v1\x00"


def pool_listing_key(pool: PublicKey) -> PublicKey:
    """The key a community pool's free vessels are advertised under (docs/pool.md): a hash
    of the pool's (planner's) key, so nobody holds its private half."""
    return PublicKey(hashlib.blake2b(POOL_LISTING_DOMAIN + pool.raw, digest_size=32).digest())


def describe_tag(tag: bytes) -> str:
    """A short text form of an advert's opaque tag for inspection tools (pure)."""
    if not tag:
        return ""
    paused = paused_in(tag)
    if paused is not None:
        return f"paused by donor: {paused}"
    try:
        fields = msgpack.unpackb(tag, raw=False)
    except (ValueError, TypeError, msgpack.ExtraData):
        return f"{len(tag)} bytes"
    if not isinstance(fields, dict):
        return f"{len(tag)} bytes"
    return " ".join(f"{k}={v.hex()[:8] if isinstance(v, bytes) else v}"
                    for k, v in sorted(fields.items(), key=lambda kv: str(kv[0])))


DONOR_TAG_KIND = "donor"
PAUSE_REASON = re.compile(r"[a-z]{1,16}")
"""What a donor tag may name as the reason: ``manual``, ``battery``, ``schedule``, ``busy``
today; a reader shows an unknown word as it is, so a new reason needs no new revision."""


def donor_tag(paused: str) -> bytes:
    """The tag of a vessel whose donor paused it for ``paused`` (e.g. ``"manual"``).

    >>> paused_in(donor_tag("battery"))
    'battery'
    """
    if not isinstance(paused, str) or not PAUSE_REASON.fullmatch(paused):
        raise OverlayUsageError(f"a pause reason is 1-16 lowercase letters, not {paused!r}")
    packed: bytes = msgpack.packb({"k": DONOR_TAG_KIND, "p": paused}, use_bin_type=True)
    return packed


def paused_in(tag: bytes) -> str | None:
    """The pause reason a donor tag carries; None for no tag, another kind, or a bad one (pure).

    Only the signer of a record chose its tag, so a reason read here is the node's own claim
    about its own vessel: nobody else can set or clear it (``verify_advert`` checked that)."""
    if not tag:
        return None
    try:
        fields = msgpack.unpackb(tag, raw=False, max_str_len=MAX_TAG_BYTES,
                                 max_map_len=8, max_array_len=8)
    except (ValueError, TypeError, msgpack.ExtraData):
        return None
    if not isinstance(fields, dict) or fields.get("k") != DONOR_TAG_KIND or set(fields) != {"k", "p"}:
        return None
    reason = fields["p"]
    return reason if isinstance(reason, str) and PAUSE_REASON.fullmatch(reason) else None


def dht_keys_for(user_key: PublicKey) -> tuple[bytes, ...]:
    """Every DHT key a user's adverts are stored under: Sybils must surround all of them."""
    return tuple(dht_key_for(user_key, i) for i in range(REPLICA_KEYS))


def check_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"``; raise OverlayUsageError if it is not a plausible address."""
    if not isinstance(address, str) or not 3 <= len(address) <= MAX_ADDRESS_CHARS:
        raise OverlayUsageError(f"bad address {address!r}")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise OverlayUsageError(f"address must be HOST:PORT, got {address!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise OverlayUsageError(f"port out of range in {address!r}")
    return host.strip("[]"), port


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """One node manager's claim that it serves ``vessel`` to ``user_key`` at ``address``."""

    node_key: PublicKey
    """The advertising node manager's identity (it signs the record)."""
    address: str
    """``host:port`` of the node manager's TCP request service."""
    vessel: str
    """The vessel name on that node (1-64 printable characters)."""
    user_key: PublicKey
    """The user key with access to the vessel; the record is stored under its DHT key."""
    seq: int
    """Monotonic per (node, vessel); the highest wins. Epoch milliseconds are a good choice."""
    expires_at: float
    """Absolute wall-clock expiry (seconds since the epoch)."""
    withdrawn: bool = False
    """A tombstone: the vessel no longer serves this user."""
    relays: tuple[str, ...] = ()
    """``host:port`` of relays through which the node can be reached (empty: dial directly)."""
    tag: bytes = b""
    """Opaque bytes for the layers above (the pool's attributes or lease record); empty: none."""

    def __post_init__(self) -> None:
        check_address(self.address)
        if type(self.tag) is not bytes or len(self.tag) > MAX_TAG_BYTES:
            raise OverlayUsageError(f"tag must be at most {MAX_TAG_BYTES} bytes")
        if type(self.relays) is not tuple or len(self.relays) > MAX_RELAYS:
            raise OverlayUsageError(f"relays must be a tuple of at most {MAX_RELAYS} addresses")
        for relay in self.relays:
            check_address(relay)
        if not isinstance(self.vessel, str) or not 0 < len(self.vessel) <= MAX_VESSEL_CHARS:
            raise OverlayUsageError("vessel name must be 1-64 characters")
        if not self.vessel.isprintable():
            raise OverlayUsageError("vessel name must be printable")
        if type(self.seq) is not int or not 0 <= self.seq <= MAX_SEQ:
            raise OverlayUsageError("seq must be an int in [0, 2**63)")
        if not isinstance(self.expires_at, float | int) or not math.isfinite(self.expires_at):
            raise OverlayUsageError("expires_at must be a finite number")
        if not isinstance(self.node_key, PublicKey) or not isinstance(self.user_key, PublicKey):
            raise OverlayUsageError("node_key and user_key must be PublicKey")

    @property
    def paused(self) -> str | None:
        """Why the node's donor paused its vessels (a donor tag), or None: a hint, like the
        whole record; the node's GetVessels answer is authoritative."""
        return paused_in(self.tag)

    @property
    def slot(self) -> tuple[bytes, str]:
        """The merge identity: one live record per (node, vessel) under a DHT key."""
        return (self.node_key.raw, self.vessel)


def encode_body(advert: Advert) -> bytes:
    """The exact body bytes that get signed."""
    body = {
        "v": BODY_VERSION,
        "n": advert.node_key.raw,
        "a": advert.address,
        "m": advert.vessel,
        "u": advert.user_key.raw,
        "s": advert.seq,
        "e": float(advert.expires_at),
        "w": bool(advert.withdrawn),
    }
    if advert.relays:
        body["r"] = list(advert.relays)
    if advert.tag:
        body["t"] = advert.tag
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def sign_advert(keys: KeyPair, advert: Advert) -> bytes:
    """Sign ``advert`` with the node key and return the record blob.

    Raises OverlayUsageError if ``keys`` is not the advert's node key or the record is too big.

    >>> node = KeyPair.generate()
    >>> ad = Advert(node_key=node.public, address="127.0.0.1:1224", vessel="v1",
    ...             user_key=KeyPair.generate().public, seq=1, expires_at=1e9)
    >>> verify_advert(sign_advert(node, ad), dht_key=dht_key_for(ad.user_key), now=1e9 - 5) == ad
    True
    """
    if keys.public != advert.node_key:
        raise OverlayUsageError("adverts must be signed by their node key")
    body = encode_body(advert)
    blob: bytes = msgpack.packb([FORMAT_VERSION, body, keys.sign(ADVERT_DOMAIN, body)], use_bin_type=True)
    if len(blob) > MAX_RECORD_BYTES:
        raise OverlayUsageError(f"advert is {len(blob)} bytes, limit {MAX_RECORD_BYTES}")
    return blob


def make_advert(
    keys: KeyPair,
    *,
    address: str,
    vessel: str,
    user_key: PublicKey,
    seq: int,
    expires_at: float,
    withdrawn: bool = False,
    relays: tuple[str, ...] = (),
    tag: bytes = b"",
) -> bytes:
    """Build and sign an advert for ``keys.public`` in one call; returns the blob."""
    advert = Advert(
        node_key=keys.public,
        address=address,
        vessel=vessel,
        user_key=user_key,
        seq=seq,
        expires_at=expires_at,
        withdrawn=withdrawn,
        relays=relays,
        tag=tag,
    )
    return sign_advert(keys, advert)


def _split_blob(blob: object) -> tuple[bytes, bytes]:
    if type(blob) is not bytes:
        raise InvalidAdvert("malformed", "record is not bytes")
    if len(blob) > MAX_RECORD_BYTES:
        raise InvalidAdvert("oversize", f"{len(blob)} bytes > {MAX_RECORD_BYTES}")
    try:
        outer = msgpack.unpackb(blob, raw=False, max_bin_len=MAX_RECORD_BYTES)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise InvalidAdvert("malformed", "record is not msgpack") from exc
    if not isinstance(outer, list) or len(outer) != 3:
        raise InvalidAdvert("malformed", "record is not [version, body, sig]")
    version, body, sig = outer
    if version != FORMAT_VERSION:
        raise InvalidAdvert("bad_version", f"record version {version!r}")
    if type(body) is not bytes or type(sig) is not bytes:
        raise InvalidAdvert("malformed", "body and signature must be bytes")
    return body, sig


def _unpack_body(body: bytes) -> dict[str, Any]:
    try:
        fields = msgpack.unpackb(body, raw=False)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise InvalidAdvert("malformed", "body is not msgpack") from exc
    if not isinstance(fields, dict) or set(fields) not in _BODY_KEY_SETS:
        raise InvalidAdvert("malformed", "body fields")
    if "r" in fields and (type(fields["r"]) is not list or not fields["r"]):
        raise InvalidAdvert("malformed", "relays must be a non-empty list")
    if "t" in fields and (type(fields["t"]) is not bytes or not fields["t"]):
        raise InvalidAdvert("malformed", "tag must be non-empty bytes")
    if fields["v"] != BODY_VERSION:
        raise InvalidAdvert("bad_version", f"body version {fields['v']!r}")
    return fields


def _advert_from_fields(fields: dict[str, Any]) -> Advert:
    try:
        return Advert(
            node_key=PublicKey(fields["n"]),
            address=fields["a"],
            vessel=fields["m"],
            user_key=PublicKey(fields["u"]),
            seq=fields["s"],
            expires_at=float(fields["e"]),
            withdrawn=fields["w"] is True,
            relays=tuple(fields.get("r", ())),
            tag=fields.get("t", b""),
        )
    except (OverlayUsageError, CoreError, ValueError, TypeError) as exc:
        raise InvalidAdvert("malformed", str(exc)) from exc


def _node_key_of(body: bytes) -> PublicKey:
    """Peek the signer's key. The body is decoded only to find who must have signed it."""
    fields = _unpack_body(body)
    try:
        return PublicKey(fields["n"])
    except CoreError as exc:
        raise InvalidAdvert("malformed", "node key") from exc


def verify_advert(blob: object, *, dht_key: bytes, now: float) -> Advert:
    """Check size, format, signature, key binding and expiry; return the Advert.

    Raises InvalidAdvert with ``reason`` set (see ``overlay.errors.REJECT_REASONS``).
    """
    body, sig = _split_blob(blob)
    signer = _node_key_of(body)
    try:
        signer.verify(ADVERT_DOMAIN, body, sig)
    except BadSignature as exc:
        raise InvalidAdvert("bad_signature", str(exc)) from exc
    advert = _advert_from_fields(_unpack_body(body))
    if dht_key not in dht_keys_for(advert.user_key):
        raise InvalidAdvert("wrong_key", "user key does not hash to this DHT key")
    if advert.expires_at <= now:
        raise InvalidAdvert("expired", f"expired {now - advert.expires_at:.0f}s ago")
    if advert.expires_at > now + MAX_TTL + CLOCK_SKEW:
        raise InvalidAdvert("too_far_expiry", "expiry beyond the maximum TTL")
    return advert


def open_advert(blob: object, *, now: float) -> Advert:
    """Verify a record whose DHT key is not known yet (a publisher's own blob); return it."""
    body, _ = _split_blob(blob)
    fields = _unpack_body(body)
    try:
        user = PublicKey(fields["u"])
    except CoreError as exc:
        raise InvalidAdvert("malformed", "user key") from exc
    return verify_advert(blob, dht_key=dht_key_for(user), now=now)
