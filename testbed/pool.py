"""A testbed whose vessels are a community pool (``seattle-testbed up --pool``; docs/pool.md).

A planner key (``keys/planner.*``) names the pool; every vessel of every node is a pool
vessel; the demo identity gets a credential (``keys/demo.grant``) for ``DEMO_QUOTA``
vessels, so ``seash``'s ``loadgrant demo.grant; get 3`` works at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from installer.planner.grant import make_grant
from seattlecore import KeyPair, write_atomic

PLANNER = "planner"
"""``keys/planner.*``: the pool's key (testbed/local.py ``demo_identity(directory, PLANNER)``)."""
GRANT = "demo.grant"
DEMO_QUOTA = 10
GRANT_DAYS = 30.0


def pool_node_spec(tables: list[dict[str, Any]], planner: KeyPair,
                   lease: float | None = None) -> dict[str, Any]:
    """A node spec whose vessels (resource maps ``tables``) are all in the pool."""
    policy: dict[str, Any] = {"key": planner.public.to_text()}
    if lease is not None:
        policy["lease"] = lease
    return {"vessels": [{"pool": True, "resources": table} for table in tables], "pool": policy}


def write_grant(directory: Path, planner: KeyPair, researcher: KeyPair,
                vessels: int = DEMO_QUOTA) -> Path:
    """The researcher's credential, in ``keys/demo.grant``."""
    _, blob = make_grant(planner, researcher.public, vessels=vessels, days=GRANT_DAYS,
                         now=time.time())
    path = directory / "keys" / GRANT
    write_atomic(path, blob, 0o600)
    return path
