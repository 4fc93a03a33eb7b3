"""A local testbed of *managed* installs, for update tests and ``benchmarks/update.py``.

Unlike ``seattle-testbed`` (nodes run from this checkout), each node here is a real donor
install from a self-contained ``.pyz``: its own prefix, private venv, launcher and updater.
A one-node ``seattle-testbed`` is the DHT bootstrap peer the installers name.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from installer.donor.procs import read_int_file, stop_process
from installer.donor.software import SoftwareLayout, base_python
from installer.packing.pyz import ROOT_NAME, build_pyz
from installer.packing.wheels import PROJECT, Wheelhouse, build_project_wheel, describe_files, stage_source
from installer.planner.bundle import Software, build_bundle, new_manifest
from installer.planner.spec import VesselShare, complete_shares
from installer.release.tufrepo import add_release, init_repository
from nodemanager.updates.updatecore import Release
from seattlecore import KeyPair

Patch = Callable[[Path], None]
"""Edits a staged source tree before its wheel is built (tests: a release that crashes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Repo:
    """A release repository and its keys."""

    repo: Path
    keys: Path
    root: Path
    """``metadata/1.root.json``: the trust anchor bundles carry."""


def create_repo(directory: Path) -> Repo:
    root = init_repository(directory / "repo", directory / "root-keys", directory / "keys")
    return Repo(repo=directory / "repo", keys=directory / "keys", root=root)


def build_installer(directory: Path, house: Wheelhouse, planner: KeyPair, *, root: Path | None,
                    bootstrap: Sequence[str]) -> Path:
    """A self-contained installer with one vessel owned by ``planner`` (and the reserve)."""
    files = house.files()
    if root is not None:
        anchor = directory / ROOT_NAME
        anchor.write_bytes(root.read_bytes())
        files.append(anchor)
    shares = complete_shares([VesselShare(percent=50, owner=planner.public)], planner.public)
    manifest = new_manifest(planner.public, shares, tuple(bootstrap), now=time.time(),
                            payload=describe_files(files),
                            software=Software(project=PROJECT, version=house.version))
    out = directory / "lab-installer.pyz"
    build_pyz(build_bundle(manifest, planner), files, out)
    return out


async def install_node(pyz: Path, planner_public: Path, prefix: Path, *, interval: float,
                       sandbox: bool = True, env: dict[str, str] | None = None,
                       cwd: Path | None = None) -> None:
    """``python3 lab-installer.pyz install ...`` into ``prefix`` (raises on failure)."""
    argv = [base_python(), str(pyz), "install", "--trust", str(planner_public), "--prefix",
            str(prefix), "--no-service", "--host", "127.0.0.1", "--update-interval", str(interval)]
    if not sandbox:
        argv.append("--no-sandbox")
    done = await trio.run_process(argv, env=env, cwd=cwd, capture_stdout=True,
                                  capture_stderr=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"install into {prefix} failed:\n{done.stdout.decode()}"
                           f"{done.stderr.decode()}")


async def install_nodes(pyz: Path, planner_public: Path, prefixes: Sequence[Path], *,
                        interval: float, sandbox: bool = True, env: dict[str, str] | None = None,
                        limit: int = 2) -> None:
    """Install several nodes, ``limit`` at a time (pip is CPU-bound)."""
    limiter = trio.CapacityLimiter(limit)

    async def one(prefix: Path) -> None:
        async with limiter:
            await install_node(pyz, planner_public, prefix, interval=interval, sandbox=sandbox,
                               env=env)

    async with trio.open_nursery() as nursery:
        for prefix in prefixes:
            nursery.start_soon(one, prefix)


def release(repo: Repo, version: str, house: Wheelhouse, source: Path, *,
            patch: Patch | None = None, python: str | None = None,
            machine: str | None = None) -> Release:
    """Build the project at ``version`` (``patch`` applied) and publish it with ``house``'s deps."""
    with tempfile.TemporaryDirectory(prefix="seattle-rel-") as tmp:
        staged = Path(tmp) / "src"
        staged.mkdir()
        stage_source(source, staged, None)
        if patch is not None:
            patch(staged)
        wheel = build_project_wheel(staged, Path(tmp) / "out", version=version)
        wheels = [wheel, *(w for w in house.files() if w != house.project_wheel)]
        record = Release(version=version, wheels=tuple(w.name for w in wheels),
                         python=python or f"{sys.version_info.major}.{sys.version_info.minor}",
                         machine=machine or platform.machine(), published=time.time())
        add_release(repo.repo, repo.keys, record, wheels)
    return record


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeState:
    """A managed node seen from its files."""

    prefix: Path
    current: str | None
    pending: dict[str, Any] | None
    status: dict[str, Any] = field(default_factory=dict)
    bad: tuple[str, ...] = ()

    @property
    def healthy_on(self) -> str | None:
        """The version it runs with no trial pending (None while on trial)."""
        return None if self.pending is not None else self.current


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_node(prefix: Path) -> NodeState:
    layout = SoftwareLayout(prefix=prefix)
    bad_dir = layout.updates / "bad"
    return NodeState(prefix=prefix, current=layout.linked_version(layout.current),
                     pending=_json(layout.pending), status=_json(layout.updates / "status.json") or {},
                     bad=tuple(sorted(p.name for p in bad_dir.iterdir())) if bad_dir.is_dir() else ())


def events(prefix: Path) -> list[dict[str, Any]]:
    """The launcher's and updater's event log (staged, healthy, rollback)."""
    try:
        lines = (SoftwareLayout(prefix=prefix).updates / "events.log").read_text().splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def stop_node(prefix: Path) -> None:
    """Stop a managed node (its launcher and whatever version runs)."""
    pid = read_int_file(prefix / "nodemanager.pid")
    if pid is not None:
        stop_process(pid, str(prefix) + os.sep, timeout=20.0)
