"""Serverless vessel discovery: signed adverts in a Kademlia DHT, driven from trio.

See docs/overlay.md. Pure parts: ``advert`` (record format), ``store`` (validating merge),
``select`` (reader choice), ``answers`` (one decoder per RPC answer), ``nodeid`` (key-derived
ids), ``netgroup`` (address groups), ``routing`` (k-buckets with diversity limits),
``lookup`` (disjoint-path lookup state). I/O: ``dht`` (the wire protocol), ``crawl`` and
``publishing`` (asyncio drivers), ``node`` (DHT node under trio_asyncio), ``client``
(short-lived lookups and status queries), ``service`` (the node manager's ``Announcer``).
"""

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
from overlay.fake import FakeDirectory
from overlay.netgroup import DiversityLimits
from overlay.node import DhtConfig, DhtNode, dht_loop, open_dht_node, serve_dht
from overlay.nodeid import NodeIdentity
from overlay.results import Directory, LookupResult, NodeStats, PublishResult
from overlay.select import Rejection, Selection, select_adverts
from overlay.service import ADVERT_TTL, REPUBLISH_INTERVAL, Announcer, AnnouncerStats
from overlay.status import read_status_file
from overlay.store import AdvertStore, StoreLimits, StoreStats

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
