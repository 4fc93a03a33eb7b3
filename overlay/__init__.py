"""Serverless vessel discovery: signed adverts in a Kademlia DHT, driven from trio.

See docs/overlay.md. Pure parts: ``advert`` (record format), ``store`` (validating merge),
``select`` (reader choice), ``answers`` (one decoder per RPC answer), ``nodeid`` (key-derived
ids), ``netgroup`` (address groups), ``routing`` (k-buckets with diversity limits),
``lookup`` (disjoint-path lookup state), ``wire`` (the datagram format), ``results`` (result
types, the ``Directory`` seam and its in-memory ``FakeDirectory``). I/O:
``dht`` (the wire protocol), ``crawl`` and ``publishing`` (asyncio drivers), ``node`` (DHT node
under trio_asyncio), ``client`` (short-lived lookups and status queries), ``service`` (the node
manager's ``Announcer``).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from seattlecore.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from overlay.advert import (
        REPLICA_KEYS,
        Advert,
        dht_key_for,
        dht_keys_for,
        make_advert,
        open_advert,
        sign_advert,
        verify_advert,
    )
    from overlay.client import lookup_once, open_client, parse_hostport, query_status
    from overlay.errors import BadAnswer, DhtUnavailable, InvalidAdvert, OverlayError, OverlayUsageError
    from overlay.netgroup import DiversityLimits
    from overlay.node import DhtConfig, DhtNode, dht_loop, open_dht_node, serve_dht
    from overlay.nodeid import NodeIdentity
    from overlay.results import Directory, FakeDirectory, LookupResult, NodeStats, PublishResult
    from overlay.select import Rejection, Selection, select_adverts
    from overlay.service import ADVERT_TTL, REPUBLISH_INTERVAL, Announcer, AnnouncerStats
    from overlay.status import read_status_file
    from overlay.store import AdvertStore, StoreLimits, StoreStats

__getattr__ = _lazy_exports(__name__, {
    "overlay.advert": (
        "REPLICA_KEYS", "Advert", "dht_key_for", "dht_keys_for", "make_advert", "open_advert",
        "sign_advert", "verify_advert",
    ),
    "overlay.client": (
        "lookup_once", "open_client", "parse_hostport", "query_status",
    ),
    "overlay.errors": (
        "BadAnswer", "DhtUnavailable", "InvalidAdvert", "OverlayError", "OverlayUsageError",
    ),
    "overlay.netgroup": (
        "DiversityLimits",
    ),
    "overlay.node": (
        "DhtConfig", "DhtNode", "dht_loop", "open_dht_node", "serve_dht",
    ),
    "overlay.nodeid": (
        "NodeIdentity",
    ),
    "overlay.results": (
        "Directory", "FakeDirectory", "LookupResult", "NodeStats", "PublishResult",
    ),
    "overlay.select": (
        "Rejection", "Selection", "select_adverts",
    ),
    "overlay.service": (
        "ADVERT_TTL", "REPUBLISH_INTERVAL", "Announcer", "AnnouncerStats",
    ),
    "overlay.status": (
        "read_status_file",
    ),
    "overlay.store": (
        "AdvertStore", "StoreLimits", "StoreStats",
    ),
})

__all__ = [
    "ADVERT_TTL",
    "REPLICA_KEYS",
    "REPUBLISH_INTERVAL",
    "Advert",
    "AdvertStore",
    "Announcer",
    "AnnouncerStats",
    "BadAnswer",
    "DhtConfig",
    "DhtNode",
    "DhtUnavailable",
    "Directory",
    "DiversityLimits",
    "FakeDirectory",
    "InvalidAdvert",
    "LookupResult",
    "NodeIdentity",
    "NodeStats",
    "OverlayError",
    "OverlayUsageError",
    "PublishResult",
    "Rejection",
    "Selection",
    "StoreLimits",
    "StoreStats",
    "dht_key_for",
    "dht_keys_for",
    "dht_loop",
    "lookup_once",
    "make_advert",
    "open_advert",
    "open_client",
    "open_dht_node",
    "parse_hostport",
    "query_status",
    "read_status_file",
    "select_adverts",
    "serve_dht",
    "sign_advert",
    "verify_advert",
]
