"""The node status document: built from a running node, read back by ``seattle-dht`` (pure).

The same JSON-able dict is the reply to the status RPC and the content of
``STATE_DIR/dht-status.json`` (rewritten every ``status_interval`` seconds).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overlay.errors import OverlayUsageError
from overlay.results import NodeStats
from overlay.store import StoreStats

STATUS_FILE = "dht-status.json"
STATUS_VERSION = 1
MAX_PEERS_LISTED = 160


def _bucket_rows(
    buckets: Sequence[Any], last_seen: dict[tuple[str, int], float], monotonic_now: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, peers = [], []
    for index, bucket in enumerate(buckets):
        nodes = list(bucket.nodes.values())
        rows.append(
            {
                "index": index,
                "depth": max(0, 160 - (bucket.range[1] - bucket.range[0]).bit_length()),
                "peers": len(nodes),
                "replacements": len(bucket.replacement_nodes),
                "idle": round(monotonic_now - bucket.last_updated, 1),
            }
        )
        for node in nodes:
            peers.append(
                {
                    "id": bytes(node.id).hex(),
                    "address": f"{node.ip}:{node.port}",
                    "bucket": index,
                    "last_seen": last_seen.get((node.ip, node.port)),
                }
            )
    return rows, peers[:MAX_PEERS_LISTED]


def build_status(
    *,
    stats: NodeStats,
    store: StoreStats,
    buckets: Sequence[Any],
    last_seen: dict[tuple[str, int], float],
    host: str,
    now: float,
    monotonic_now: float,
) -> dict[str, Any]:
    """Assemble the status document (str keys, JSON and msgpack friendly)."""
    rows, peers = _bucket_rows(buckets, last_seen, monotonic_now)
    return {
        "version": STATUS_VERSION,
        "written_at": now,
        "address": f"{host}:{stats.port}",
        "stats": dataclasses.asdict(stats),
        "buckets": rows,
        "peers": peers,
        "store": {
            "keys": store.keys,
            "records": store.records,
            "tombstones": store.tombstones,
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
