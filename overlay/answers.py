"""One validating decoder per RPC answer: nothing a peer sends reaches the crawl unchecked (pure).

Every answer arrives as whatever msgpack value the peer chose. Each ``decode_*`` either
returns typed data or raises ``BadAnswer``; callers count the peer as failed for that call.
Checks: types, id and key lengths, the id puzzle of every contact (``nodeid.check_id``), IP
literals, ports, address scope (``netgroup.may_introduce``), list and page sizes.

Wire forms (msgpack; see docs/overlay.md "Wire protocol")::

    contact      = [id: bin20, host: str (IP literal), port: int, pk: bin32, nonce: bin8]
    ping         -> id: bin20
    hello        -> {"id": bin20, "pk": bin32, "nonce": bin8, "sig": bin64}
    find_node    -> [contact, ...]                                  (at most k)
    find_value   -> [contact, ...]  |  {"value": page, "pages": int, "more": bool, "nodes": [contact]}
    find_ads_page-> {"value": page, "more": bool}  |  nil
    store        -> bool
    page         = bin: msgpack [record: bin, ...]                  (records are verified later)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgpack

from overlay.advert import MAX_RECORD_BYTES
from overlay.errors import BadAnswer
from overlay.netgroup import MAX_HOST_CHARS, Scope, host_scope, may_introduce, parse_ip
from overlay.nodeid import CHALLENGE_BYTES, ID_BYTES, NONCE_BYTES, PUZZLE_BITS, check_id, hello_signature_ok

PAGE_BYTES = 6000
"""Record bytes per reply page; with 20 contacts a reply stays under rpcudp's 8 KB."""
MAX_PAGE_RECORDS = 64
MAX_PAGE_PACKED = PAGE_BYTES + MAX_RECORD_BYTES + 3 * MAX_PAGE_RECORDS
MAX_PAGES = 20
"""Pages a reader fetches from one holder (1,000+ records at the typical ~230 bytes)."""
MAX_CONTACTS = 20
_VALUE_KEYS = frozenset({"value", "pages", "nodes"})


@dataclass(frozen=True, slots=True)
class Contact:
    """A DHT peer: its key-derived id with the proof, and where it listens."""

    node_id: bytes
    host: str
    port: int
    pk: bytes
    nonce: bytes

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def distance(self, target: int) -> int:
        return int.from_bytes(self.node_id, "big") ^ target

    def wire(self) -> list[Any]:
        return [self.node_id, self.host, self.port, self.pk, self.nonce]


@dataclass(frozen=True, slots=True)
class ValueAnswer:
    """A ``find_value`` answer that carries records: page 0, the page count, contacts."""

    records: list[bytes]
    pages: int
    contacts: list[Contact]


def _bin(value: object, size: int, what: str) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise BadAnswer(f"{what} is not {size} bytes")
    return value


def decode_contact(item: object, *, bits: int = PUZZLE_BITS) -> Contact:
    """One wire contact -> Contact (scope is checked by ``decode_contacts``)."""
    if not isinstance(item, list | tuple) or len(item) != 5:
        raise BadAnswer("contact is not [id, host, port, pk, nonce]")
    node_id = _bin(item[0], ID_BYTES, "id")
    pk, nonce = _bin(item[3], 32, "pk"), _bin(item[4], NONCE_BYTES, "nonce")
    host, port = item[1], item[2]
    if type(port) is not int or not 0 < port < 65536:
        raise BadAnswer("port out of range")
    if not isinstance(host, str) or len(host) > MAX_HOST_CHARS:
        raise BadAnswer("host is not an IP literal")
    contact = _checked(node_id, host, port, pk, nonce, bits)
    if contact is None:
        raise BadAnswer("bad host or an id that does not match its key and puzzle")
    return contact


@functools.lru_cache(maxsize=16384)
def _checked(node_id: bytes, host: str, port: int, pk: bytes, nonce: bytes, bits: int) -> Contact | None:
    """The contact if its host is an IP literal and its id solves the puzzle (cached: the same
    contacts come back in answer after answer)."""
    try:
        ip = parse_ip(host)
    except ValueError:
        return None
    if not check_id(node_id, pk, nonce, bits):
        return None
    return Contact(node_id, str(ip), port, pk, nonce)


def decode_contacts(
    listing: object, *, introducer: Scope, limit: int = MAX_CONTACTS, bits: int = PUZZLE_BITS
) -> list[Contact]:
    """A contact list. Malformed items or too many refuse the whole answer; contacts outside
    the introducer's scope, unroutable ones and repeated ids are dropped silently."""
    if not isinstance(listing, list | tuple) or len(listing) > limit:
        raise BadAnswer(f"contacts are not a list of at most {limit}")
    out: dict[bytes, Contact] = {}
    for item in listing:
        contact = decode_contact(item, bits=bits)
        try:
            scope = host_scope(contact.host)
        except ValueError:
            continue
        if may_introduce(introducer, scope) and contact.node_id not in out:
            out[contact.node_id] = contact
    return list(out.values())


def decode_ping(answer: object) -> bytes:
    return _bin(answer, ID_BYTES, "ping answer")


def decode_hello(
    answer: object, *, challenge: bytes, addr: tuple[str, int], bits: int = PUZZLE_BITS
) -> Contact:
    """A ``hello`` answer -> the proven Contact at ``addr`` (the address we asked)."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError("challenge size")
    if not isinstance(answer, dict) or set(answer) != {"id", "pk", "nonce", "sig"}:
        raise BadAnswer("hello answer fields")
    contact = decode_contact([answer["id"], addr[0], addr[1], answer["pk"], answer["nonce"]], bits=bits)
    sig = _bin(answer["sig"], 64, "signature")
    if not hello_signature_ok(contact.pk, challenge, contact.node_id, sig):
        raise BadAnswer("hello signature does not verify")
    return contact


def decode_store(answer: object) -> bool:
    if type(answer) is not bool:
        raise BadAnswer("store answer is not a bool")
    return answer


def decode_records(page: object) -> list[bytes]:
    """A packed page of record blobs (each still to be verified by ``select``)."""
    if type(page) is not bytes or len(page) > MAX_PAGE_PACKED:
        raise BadAnswer("page is not bounded bytes")
    try:
        items = msgpack.unpackb(page, raw=False, max_array_len=MAX_PAGE_RECORDS,
                                max_bin_len=MAX_RECORD_BYTES, max_str_len=0, max_map_len=0)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.StackError) as exc:
        raise BadAnswer("page is not a msgpack list of records") from exc
    if not isinstance(items, list) or not all(type(b) is bytes for b in items):
        raise BadAnswer("page is not a list of byte strings")
    return items


def decode_find_value(
    answer: object, *, introducer: Scope, limit: int = MAX_CONTACTS, bits: int = PUZZLE_BITS
) -> ValueAnswer | list[Contact]:
    """A ``find_value`` answer: records (with contacts) or just contacts."""
    if not isinstance(answer, dict):
        return decode_contacts(answer, introducer=introducer, limit=limit, bits=bits)
    if not set(answer) >= _VALUE_KEYS or len(answer) > 4:
        raise BadAnswer("find_value answer fields")
    pages = answer["pages"]
    if type(pages) is not int or not 1 <= pages <= MAX_PAGES:
        raise BadAnswer("page count out of range")
    records = decode_records(answer["value"])
    if pages > 1 and sum(map(len, records)) < PAGE_BYTES - MAX_RECORD_BYTES:
        raise BadAnswer("more pages announced after a page that is not full")
    return ValueAnswer(
        records=records,
        pages=pages,
        contacts=decode_contacts(answer["nodes"], introducer=introducer, limit=limit, bits=bits),
    )


def decode_page(answer: object) -> list[bytes]:
    """A ``find_ads_page`` answer: the page's records ([] for nil: no such page)."""
    if answer is None:
        return []
    if not isinstance(answer, dict) or "value" not in answer or len(answer) > 2:
        raise BadAnswer("page answer fields")
    return decode_records(answer["value"])
