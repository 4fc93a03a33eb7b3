"""Planner bundles for installer tests."""

from __future__ import annotations

from installer import build_bundle, complete_shares, new_manifest
from installer.planner.spec import VesselShare
from seattlecore import KeyPair


def make_bundle(planner: KeyPair, owner: KeyPair, bootstrap: tuple[str, ...] = ("127.0.0.1:9",),
                percents: tuple[int, ...] = (30, 50)) -> bytes:
    """A signed bundle giving ``owner`` vessels of ``percents`` (the rest to the planner)."""
    shares = complete_shares([VesselShare(percent=p, owner=owner.public) for p in percents],
                             planner.public)
    return build_bundle(new_manifest(planner.public, shares, bootstrap, now=1000.0), planner)
