"""Vessel specs for ``seattle-nodemanager init`` (pure parsing) and the init action.

A spec is JSON::

    {"offcut": "<resource file text>",            # optional, default Seattle's offcut
     "vessels": [{"name": "v1",                   # optional, default v1, v2, ...
                  "owner": "<64 hex digits>",
                  "users": ["<64 hex digits>", ...],  # optional
                  "owner_info": "",                   # optional
                  "advertise": true,                  # optional
                  "resources": "<resource file text>" or {"cpu": 0.1, ...},
                  "pool": true}],                     # optional: a pool vessel (no owner)
     "pool": {"key": "<64 hex>", "lease": 14400, "max_lease": 604800}}  # with pool vessels

A pool vessel is owned by the node's own key (filled in by ``init_node``) and lent to the
members of the pool named by ``pool.key`` (docs/pool.md).

The installer is assumed to have paid one offcut per vessel already (docs/seattle.md, Installers), so a
new node holds ``len(vessels)`` offcuts: joining two vessels returns one of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nodemanager.errors import BadArguments, BadPoolRecord, NodeManagerError
from nodemanager.node.files import VesselStore
from nodemanager.node.leases import save_config
from nodemanager.node.model import Vessel
from nodemanager.node.pool import DEFAULT_LEASE, DEFAULT_MAX_LEASE, PoolConfig
from nodemanager.node.state import NodeState
from nodemanager.proto import messages
from sandbox import DEFAULT_OFFCUT, ResourceParseError, ResourceTable, parse_resources
from seattlecore import KeyFormatError, KeyPair, PublicKey, load_private, save_keypair

NODE_KEY_NAME = "node"
STATE_FILE = "state.sqlite"


class SpecError(NodeManagerError):
    """Raised when a vessel spec is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """A parsed vessel spec."""

    vessels: tuple[Vessel, ...]
    offcut: ResourceTable
    pool: PoolConfig | None = None
    """The pool of the vessels marked ``pool`` (their owner is a placeholder until init)."""

    @property
    def next_index(self) -> int:
        numbers = [int(v.name[1:]) for v in self.vessels if v.name[1:].isdigit()]
        return max(numbers, default=0) + 1


def _resources(value: object) -> ResourceTable:
    try:
        if isinstance(value, str):
            return parse_resources(value)
        if isinstance(value, Mapping):
            return ResourceTable.from_dict(value)
    except ResourceParseError as exc:
        raise SpecError(f"resources: {exc}") from exc
    raise SpecError("resources must be resource-file text or a map")


def _vessel(raw: object, index: int) -> Vessel:
    if not isinstance(raw, Mapping):
        raise SpecError(f"vessel #{index} must be an object")
    unknown = set(raw) - {"name", "owner", "users", "owner_info", "advertise", "resources",
                          "pool"}
    if unknown:
        raise SpecError(f"vessel #{index}: unknown field(s) {sorted(unknown)}")
    in_pool = raw.get("pool", False) is True
    if in_pool and ("owner" in raw or raw.get("users")):
        raise SpecError(f"vessel #{index}: a pool vessel has no owner or users (the node owns it)")
    try:
        return Vessel(
            name=messages.check_vessel(raw.get("name", f"v{index}")),
            owner=POOL_PLACEHOLDER if in_pool else PublicKey.from_text(str(raw["owner"])),
            users=messages.check_keys([PublicKey.from_text(str(k)) for k in raw.get("users", [])]),
            owner_info=messages.check_owner_info(raw.get("owner_info", "")),
            advertise=messages.check_bool(raw.get("advertise", True)),
            resources=_resources(raw.get("resources")),
        )
    except KeyError as exc:
        raise SpecError(f"vessel #{index}: missing {exc}") from exc
    except (KeyFormatError, BadArguments) as exc:
        raise SpecError(f"vessel #{index}: {exc}") from exc


POOL_PLACEHOLDER = PublicKey(bytes(32))
"""The owner of a pool vessel in a parsed spec, replaced by the node's key at init."""


def _pool(data: Mapping[str, Any], vessels: tuple[Vessel, ...]) -> PoolConfig | None:
    names = tuple(v.name for v in vessels if v.owner == POOL_PLACEHOLDER)
    raw = data.get("pool")
    if raw is None:
        if names:
            raise SpecError("pool vessels need a 'pool' section with the pool's key")
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"key", "lease", "max_lease"}:
        raise SpecError("pool must be an object with key, lease, max_lease")
    if not names:
        raise SpecError("a 'pool' section needs at least one vessel marked \"pool\": true")
    try:
        return PoolConfig(key=PublicKey.from_text(str(raw["key"])), vessels=names,
                          lease=float(raw.get("lease", DEFAULT_LEASE)),
                          max_lease=float(raw.get("max_lease", DEFAULT_MAX_LEASE)))
    except (KeyError, KeyFormatError, ValueError, TypeError, BadPoolRecord) as exc:
        raise SpecError(f"pool: {exc}") from exc


def parse_spec(text: str) -> NodeSpec:
    """Parse a JSON vessel spec; raise SpecError with the reason."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"spec is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("vessels"), list):
        raise SpecError("spec must be an object with a 'vessels' list")
    vessels = tuple(_vessel(raw, i) for i, raw in enumerate(data["vessels"], start=1))
    if len({v.name for v in vessels}) != len(vessels):
        raise SpecError("vessel names must be unique")
    offcut = _resources(data["offcut"]) if "offcut" in data else DEFAULT_OFFCUT
    return NodeSpec(vessels=vessels, offcut=offcut, pool=_pool(data, vessels))


def init_node(state_dir: Path, spec: NodeSpec) -> PublicKey:
    """Create the node key (if absent), the state database and the vessel directories."""
    state_dir.mkdir(parents=True, exist_ok=True)
    private = state_dir / f"{NODE_KEY_NAME}.privatekey"
    if private.exists():
        keys = load_private(private)
    else:
        keys = KeyPair.generate()
        save_keypair(state_dir, NODE_KEY_NAME, keys)
    vessels = tuple(replace(v, owner=keys.public) if v.owner == POOL_PLACEHOLDER else v
                    for v in spec.vessels)
    with NodeState(state_dir / STATE_FILE) as state:
        state.initialize({v.name: v for v in vessels}, offcut=spec.offcut,
                         next_index=spec.next_index, offcuts_held=len(vessels))
        if spec.pool is not None:
            save_config(state, spec.pool)
    store = VesselStore(state_dir)
    for vessel in spec.vessels:
        store.ensure(vessel.name)
    return keys.public
