"""Resizing a donation in place (``seattle-installer share PCT``): plan (pure) and apply.

Every vessel keeps its name, keys, users, files and ports; its numeric resources are scaled
by ``new / old`` percent (``events`` stays: it is fixed per node, as at install). A shrink
that would leave a vessel less disk than its files already use is refused with the vessel,
what it stores and what it would get. The node's percent is kept in the state database
(meta ``donated_percent``) and changed in the same SQLite transaction as the vessels, so a
reshare is all or nothing and doing it again is a no-op: ``kill -9`` at any point leaves the
old share or the new one, never a mix.

The CLI asks a running node manager through ``STATE/reshare.request`` (JSON ``{"id",
"percent", "from_percent"}``); the daemon's donor control answers in ``reshare.result``.
With no node manager running, the CLI applies it to the database itself. A running node
manager also gives running programs their new limits at once (``apply_reshare(live=...)``:
docs/donor.md says what changes live and what waits for the next start).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nodemanager.errors import NodeManagerError
from nodemanager.node.files import VesselStore
from nodemanager.node.model import Vessel
from nodemanager.node.state import NodeState
from sandbox import ResourceTable
from seattlecore.keys import write_atomic

log = logging.getLogger(__name__)

REQUEST_FILE = "reshare.request"
RESULT_FILE = "reshare.result"
FIXED = frozenset({"events"})


class ReshareRefused(NodeManagerError):
    """The new share cannot hold what the vessels already have (the message says what)."""


@dataclass(frozen=True, slots=True)
class ReshareRequest:
    id: str
    percent: float
    from_percent: float | None = None


def scale(table: ResourceTable, ratio: float) -> ResourceTable:
    values = {k: (v if k in FIXED else v * ratio) for k, v in table.values.items()}
    return ResourceTable(values, table.messport, table.connport)


def plan_reshare(vessels: Mapping[str, Vessel], old: float, new: float,
                 disk: Mapping[str, int]) -> dict[str, ResourceTable]:
    """The vessels' new tables, or ReshareRefused (pure). ``disk``: bytes each one stores."""
    if not 0 < new <= 100:
        raise ReshareRefused(f"the share must be in (0, 100] percent, not {new}")
    if not 0 < old <= 100:
        raise ReshareRefused(f"the node's current share is unknown ({old})")
    ratio = new / old
    tables = {name: scale(v.resources, ratio) for name, v in vessels.items()}
    short = [f"{name} stores {disk[name]:,} bytes but would get {int(t['diskused']):,}"
             for name, t in sorted(tables.items()) if disk.get(name, 0) > t["diskused"]]
    if short:
        raise ReshareRefused(f"cannot shrink to {new:g} %: " + "; ".join(short)
                             + " (remove files first, or choose a larger share)")
    return tables


def apply_reshare(state: NodeState, store: VesselStore, request: ReshareRequest, *,
                  live: Callable[[str, ResourceTable], None] | None = None) -> None:
    """Carry out ``request`` on the node's state (one transaction); ReshareRefused if it cannot.

    ``live`` (the supervisor's ``set_resources``) then gives each vessel's running program
    its new limits at once, after the commit: a crash in between leaves the new share in
    the database and the programs with the old limits until they start again."""
    old = state.donated_percent or request.from_percent
    if old is None:
        raise ReshareRefused("the node's current share is unknown (no install record)")
    if old == request.percent:
        if state.donated_percent is None:  # learn the percent the install recorded
            state.reshare({}, request.percent)
        return
    disk = {name: store.disk_use(name) for name in state.vessels}
    tables = plan_reshare(state.vessels, old, request.percent, disk)
    state.reshare(tables, request.percent)
    log.info("reshared from %g %% to %g %%", old, request.percent)
    if live is not None:
        for name, table in sorted(tables.items()):
            live(name, table)


def read_request(state_dir: Path) -> ReshareRequest | None:
    try:
        data = json.loads((state_dir / REQUEST_FILE).read_bytes())
        from_percent = data.get("from_percent")
        return ReshareRequest(str(data["id"]), float(data["percent"]),
                              None if from_percent is None else float(from_percent))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.error("bad %s (%s): ignored", REQUEST_FILE, exc)
        (state_dir / REQUEST_FILE).unlink(missing_ok=True)
        return None


def write_request(state_dir: Path, request: ReshareRequest) -> None:
    (state_dir / RESULT_FILE).unlink(missing_ok=True)
    body = {"id": request.id, "percent": request.percent, "from_percent": request.from_percent}
    write_atomic(state_dir / REQUEST_FILE, json.dumps(body).encode(), mode=0o600)


def write_result(state_dir: Path, request: ReshareRequest, error: str | None) -> None:
    body = {"id": request.id, "ok": error is None, "error": error, "percent": request.percent}
    write_atomic(state_dir / RESULT_FILE, json.dumps(body).encode(), mode=0o600)
    (state_dir / REQUEST_FILE).unlink(missing_ok=True)


def read_result(state_dir: Path, request_id: str) -> dict[str, object] | None:
    try:
        data = json.loads((state_dir / RESULT_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("id") == request_id else None
