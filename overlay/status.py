"""The node status document: built from a running node, read back by ``seattle-dht`` (pure).

The same JSON-able dict is the reply to the status RPC and the content of
``STATE_DIR/dht-status.json`` (rewritten every ``status_interval`` seconds).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from overlay.errors import OverlayUsageError
from overlay.results import NodeStats
from overlay.routing import RoutingTable
from overlay.store import StoreStats

STATUS_FILE = "dht-status.json"
STATUS_VERSION = 1
MAX_PEERS_LISTED = 160


def _peer_rows(router: RoutingTable) -> list[dict[str, Any]]:
    return [
        {"id": entry.contact.node_id.hex(), "address": entry.contact.label, "bucket": index,
         "last_seen": entry.seen}
        for index, entry in router.entries()
    ][:MAX_PEERS_LISTED]


def build_status(
    *,
    stats: NodeStats,
    store: StoreStats,
    router: RoutingTable,
    host: str,
    now: float,
    mode: str = "server",
) -> dict[str, Any]:
    """Assemble the status document (str keys, JSON and msgpack friendly)."""
    return {
        "version": STATUS_VERSION,
        "written_at": now,
        "address": f"{host}:{stats.port}",
        "mode": mode,
        "stats": dataclasses.asdict(stats),
        "buckets": router.bucket_rows(now),
        "peers": _peer_rows(router),
        "store": {
            "keys": store.keys,
            "records": store.records,
            "tombstones": store.tombstones,
            "bytes": store.bytes,
            "sources": store.groups,
            "evicted": store.evicted,
            "per_key": [list(kv) for kv in store.per_key[:20]],
        },
    }


def read_status_file(state_dir: Path) -> dict[str, Any]:
    """Read the status file a node writes into its state directory."""
    path = state_dir / STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OverlayUsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != STATUS_VERSION:
        raise OverlayUsageError(f"{path} is not a version {STATUS_VERSION} status file")
    return data
