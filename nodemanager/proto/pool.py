"""The community pool's signed objects (pure): credentials, consents, listing key, tags.

A pool is named by its planner's public key ``P`` (docs/pool.md). Three signed objects:

- a **credential** (``P`` signs): researcher ``R`` may hold ``vessels`` leases at once in
  pool ``P`` from ``issued`` until ``expires``; ``serial`` names it for revocation;
- a **consent** (``R`` signs, carried by AcquireVessel): R asks node ``N`` for vessel ``V``
  of pool ``P`` at time ``t``. It is copied into the lease record so that a node cannot
  invent leases that count against R's quota;
- **adverts** carry a *tag* (overlay's opaque field): a free pool vessel's attributes
  (``FreeTag``, under the pool's listing key) or a lease record (``LeaseTag``, under R's key).

Every encoding is msgpack; every signature is domain-separated (seattlecore.keys).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import msgpack

from nodemanager import errors
from overlay.advert import pool_listing_key
from seattlecore import BadSignature, CoreError, KeyPair, PublicKey

CREDENTIAL_DOMAIN = b"seattle-pool-credential-v1"
CONSENT_DOMAIN = b"seattle-pool-consent-v1"
CREDENTIAL_FORMAT = 1
MAX_CREDENTIAL_BYTES = 512
MAX_VESSELS = 1000
"""The most leases one credential may allow at once."""
MAX_LEASE_EVER = 7 * 86400.0
"""No pool's lease may be longer than this (the consent in a lease record is at most this old)."""
CLOCK_SKEW = 120.0
WORK_DOMAIN = b"seattle-pool-work-v1"
MIN_WORK, MAX_WORK = 8, 40
"""Difficulty of an open pool's proof of work, in leading zero bits (docs/pool.md, Open pool)."""
MAX_WORK_BYTES = 16
NAT_KINDS = ("public", "nat", "unknown")


def _pack(value: object) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def _unpack(blob: object, what: str, limit: int = MAX_CREDENTIAL_BYTES) -> Any:
    if type(blob) is not bytes or len(blob) > limit:
        raise errors.BadPoolRecord(f"{what} must be at most {limit} bytes")
    try:
        return msgpack.unpackb(blob, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise errors.BadPoolRecord(f"{what} is not msgpack") from exc


def listing_key(pool: PublicKey) -> PublicKey:
    """The key a pool's free vessels are advertised under (a hash: nobody holds its secret)."""
    return pool_listing_key(pool)


# ---- credentials ----

@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """Membership: ``researcher`` may hold ``vessels`` leases at once in ``pool``."""

    pool: PublicKey
    researcher: PublicKey
    vessels: int
    issued: float
    expires: float
    serial: int
    work: int = 0
    """0: membership of ``researcher`` alone. Else an **open pool**: any key may use the
    credential (``researcher`` is the pool key) for ``vessels`` leases per key, each
    acquisition carrying a proof of work of ``work`` leading zero bits."""

    @property
    def open(self) -> bool:
        return self.work > 0

    def __post_init__(self) -> None:
        if type(self.vessels) is not int or not 1 <= self.vessels <= MAX_VESSELS:
            raise errors.BadPoolRecord(f"vessels must be 1..{MAX_VESSELS}")
        if not (math.isfinite(self.issued) and math.isfinite(self.expires)
                and self.issued < self.expires):
            raise errors.BadPoolRecord("a credential must expire after it is issued")
        if type(self.serial) is not int or not 0 <= self.serial < 1 << 63:
            raise errors.BadPoolRecord("serial must be a non-negative 63-bit integer")
        if type(self.work) is not int or not (self.work == 0 or MIN_WORK <= self.work <= MAX_WORK):
            raise errors.BadPoolRecord(f"work must be 0 or {MIN_WORK}..{MAX_WORK} bits")
        if self.work and self.researcher != self.pool:
            raise errors.BadPoolRecord("an open pool's credential names the pool key as researcher")


def _credential_body(cred: Credential) -> bytes:
    fields: dict[str, object] = {"v": CREDENTIAL_FORMAT, "p": cred.pool.raw,
                                 "r": cred.researcher.raw, "n": cred.vessels,
                                 "i": float(cred.issued), "x": float(cred.expires),
                                 "s": cred.serial}
    if cred.work:
        fields["w"] = cred.work
    return _pack(fields)


def sign_credential(planner: KeyPair, cred: Credential) -> bytes:
    """The credential blob ``[1, body, sig]``, signed by the pool's (planner's) key."""
    if planner.public != cred.pool:
        raise errors.BadPoolRecord("a credential must be signed by its pool's key")
    body = _credential_body(cred)
    return _pack([CREDENTIAL_FORMAT, body, planner.sign(CREDENTIAL_DOMAIN, body)])


def read_credential(blob: object) -> Credential:
    """Decode a credential and check its signature by the pool key it names (not its times)."""
    outer = _unpack(blob, "credential")
    if not isinstance(outer, list) or len(outer) != 3 or outer[0] != CREDENTIAL_FORMAT:
        raise errors.BadCredential("credential is not [1, body, signature]")
    _, body, sig = outer
    if type(body) is not bytes or type(sig) is not bytes:
        raise errors.BadCredential("credential body and signature must be bytes")
    fields = _unpack(body, "credential body")
    try:
        if not isinstance(fields, dict) or set(fields) not in (set("vprnixs"), set("vprnixsw")) \
                or fields["v"] != 1:
            raise errors.BadCredential("credential fields")
        cred = Credential(pool=PublicKey(fields["p"]), researcher=PublicKey(fields["r"]),
                          vessels=fields["n"], issued=float(fields["i"]),
                          expires=float(fields["x"]), serial=fields["s"],
                          work=fields.get("w", 0))
    except (CoreError, TypeError, ValueError, errors.BadPoolRecord) as exc:
        raise errors.BadCredential(f"credential: {exc}") from exc
    try:
        cred.pool.verify(CREDENTIAL_DOMAIN, body, sig)
    except BadSignature as exc:
        raise errors.BadCredential("credential signature does not verify") from exc
    return cred


def check_credential(blob: object, *, pool: PublicKey, researcher: PublicKey, now: float,
                     revoked: frozenset[int] = frozenset()) -> Credential:
    """A credential valid for ``researcher`` in ``pool`` at ``now``; raise a PoolError."""
    try:
        cred = read_credential(blob)
    except errors.BadPoolRecord as exc:
        raise errors.BadCredential(str(exc)) from exc
    if cred.pool != pool:
        raise errors.BadCredential("credential is for another pool")
    if cred.researcher != researcher and not cred.open:
        raise errors.BadCredential("credential is for another researcher key")
    if cred.issued > now + CLOCK_SKEW:
        raise errors.BadCredential("credential is not valid yet")
    if cred.expires <= now:
        raise errors.CredentialExpired(f"credential expired {now - cred.expires:.0f} s ago")
    if cred.serial in revoked:
        raise errors.CredentialRevoked(f"credential serial {cred.serial} was revoked")
    return cred


# ---- consents ----

def consent_body(pool: PublicKey, node: PublicKey, vessel: str, at: float) -> bytes:
    return _pack([pool.raw, node.raw, vessel, float(at)])


def sign_consent(researcher: KeyPair, pool: PublicKey, node: PublicKey, vessel: str,
                 at: float) -> bytes:
    """R's 64-byte consent to lease ``vessel`` of ``node`` in ``pool`` at time ``at``."""
    return researcher.sign(CONSENT_DOMAIN, consent_body(pool, node, vessel, at))


def consent_valid(researcher: PublicKey, pool: PublicKey, node: PublicKey, vessel: str,
                  at: float, signature: bytes) -> bool:
    try:
        researcher.verify(CONSENT_DOMAIN, consent_body(pool, node, vessel, at), signature)
    except BadSignature:
        return False
    return True


# ---- proof of work (open pools) ----

def work_digest(pool: PublicKey, researcher: PublicKey, node: PublicKey, vessel: str,
                at: float, work: bytes) -> bytes:
    """The digest whose leading zero bits are the work done for this acquisition: bound to
    the researcher, node, vessel and request time, so it serves one acquisition only."""
    return hashlib.blake2b(WORK_DOMAIN + consent_body(pool, node, vessel, at) + researcher.raw
                           + work, digest_size=32).digest()


def zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def check_work(cred: Credential, researcher: PublicKey, node: PublicKey, vessel: str,
               at: float, work: bytes | None) -> bytes:
    """The work's digest if it meets ``cred``'s difficulty; InsufficientWork otherwise."""
    if work is None:
        raise errors.InsufficientWork(
            f"this open pool asks a proof of work of {cred.work} bits per acquisition")
    if type(work) is not bytes or not 0 < len(work) <= MAX_WORK_BYTES:
        raise errors.InsufficientWork(f"work must be 1..{MAX_WORK_BYTES} bytes")
    digest = work_digest(cred.pool, researcher, node, vessel, at, work)
    if zero_bits(digest) < cred.work:
        raise errors.InsufficientWork(f"the work has {zero_bits(digest)} of the "
                                      f"{cred.work} leading zero bits asked")
    return digest


def solve_work(pool: PublicKey, researcher: PublicKey, node: PublicKey, vessel: str,
               at: float, bits: int, start: int = 0) -> bytes:
    """Search the work (CPU: about 2**bits hashes); pure, and slow by design."""
    base = hashlib.blake2b(WORK_DOMAIN + consent_body(pool, node, vessel, at) + researcher.raw,
                           digest_size=32)
    limit = 1 << (256 - bits)
    counter = start
    while True:
        work = counter.to_bytes(8, "big")
        trial = base.copy()
        trial.update(work)
        if int.from_bytes(trial.digest(), "big") < limit:
            return work
        counter += 1


# ---- advert tags ----

@dataclass(frozen=True, slots=True, kw_only=True)
class FreeTag:
    """A free pool vessel's attributes, advertised under ``listing_key(pool)``."""

    pool: PublicKey
    cpu: float
    memory: int
    disk: int
    reach: str
    """``public`` (dial directly), ``nat`` (through relays) or ``unknown``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTag:
    """A lease record, advertised under the researcher's key (docs/pool.md, Quota)."""

    pool: PublicKey
    granted: float
    deadline: float
    consent_at: float
    consent: bytes
    tentative: bool = False
    """A claim published before the grant is decided (docs/pool.md, Quota): counted by
    acquisitions, never by the recount that gives leases back."""


Tag = FreeTag | LeaseTag


def encode_tag(tag: Tag) -> bytes:
    if isinstance(tag, FreeTag):
        return _pack({"k": "free", "p": tag.pool.raw, "c": float(tag.cpu), "m": int(tag.memory),
                      "d": int(tag.disk), "n": tag.reach})
    fields: dict[str, object] = {"k": "lease", "p": tag.pool.raw, "g": float(tag.granted),
                                 "x": float(tag.deadline), "t": float(tag.consent_at),
                                 "s": tag.consent}
    if tag.tentative:
        fields["c"] = True
    return _pack(fields)


def decode_tag(blob: bytes) -> Tag:
    """The pool tag in an advert; BadPoolRecord if it is none or malformed."""
    fields = _unpack(blob, "pool tag", 400)
    try:
        if not isinstance(fields, dict):
            raise TypeError("not a map")
        if fields.get("k") == "free" and set(fields) == set("kpcmdn"):
            if fields["n"] not in NAT_KINDS:
                raise ValueError("reach")
            return FreeTag(pool=PublicKey(fields["p"]), cpu=float(fields["c"]),
                           memory=int(fields["m"]), disk=int(fields["d"]), reach=fields["n"])
        if fields.get("k") == "lease" and set(fields) in (set("kpgxts"), set("kpgxtsc")):
            if fields.get("c", True) is not True:
                raise ValueError("claim flag")
            if type(fields["s"]) is not bytes or len(fields["s"]) != 64:
                raise ValueError("consent")
            values = [float(fields[name]) for name in "gxt"]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("times")
            return LeaseTag(pool=PublicKey(fields["p"]), granted=values[0], deadline=values[1],
                            consent_at=values[2], consent=fields["s"], tentative="c" in fields)
    except (CoreError, TypeError, ValueError) as exc:
        raise errors.BadPoolRecord(f"pool tag: {exc}") from exc
    raise errors.BadPoolRecord("not a pool tag")
