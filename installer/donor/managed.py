"""CLI glue for self-contained installers and managed installs (``seattle-installer``).

``build -o X.pyz`` writes a self-contained installer (wheels + signed manifest, pyz.py);
``install X.pyz`` verifies it and installs a managed prefix (software.py, launcher.py);
``stage-update`` is what a node manager's updater runs to switch to a verified version.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from installer.donor.plan import InstallOptions, Step, software_steps
from installer.donor.software import (
    HEALTH_DEADLINE,
    SoftwareLayout,
    base_python,
    launcher_source,
    stage_update,
)
from installer.errors import BundleError, InstallError
from installer.packing import pyzmain
from installer.packing.pyz import ROOT_NAME, OpenedPyz, build_pyz, is_pyz, open_pyz
from installer.packing.wheels import (
    PROJECT,
    Wheelhouse,
    build_wheelhouse,
    describe_files,
    open_wheelhouse,
    project_source,
)
from installer.planner.bundle import Manifest, Software, build_bundle
from seattlecore import KeyPair, PublicKey, subparser

log = logging.getLogger(__name__)

DEFAULT_UPDATE_INTERVAL = 600.0


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``build`` for self-contained installers (``-o NAME.pyz``)."""
    parser.add_argument("--wheelhouse", type=Path, default=None,
                        help="(.pyz) use the wheels in DIR instead of building them")
    parser.add_argument("--source", type=Path, default=None,
                        help="(.pyz) project source tree to build the wheel from (default: this checkout)")
    parser.add_argument("--project-only", action="store_true",
                        help="(.pyz) ship only the project's wheel; dependencies come from the "
                             "package index at install time")
    parser.add_argument("--tuf-root", type=Path, default=None, metavar="REPO/metadata/1.root.json",
                        help="(.pyz) TUF root metadata: enables signed peer-to-peer updates")


def add_install_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--update-interval", type=float, default=DEFAULT_UPDATE_INTERVAL,
                        help="(managed installs with a TUF root) seconds between update checks, "
                             f"jittered +-50%% (default {DEFAULT_UPDATE_INTERVAL:.0f})")


def gather_wheels(args: argparse.Namespace, workdir: Path) -> Wheelhouse:
    if args.wheelhouse is not None:
        return open_wheelhouse(args.wheelhouse)
    source = args.source or project_source()
    if source is None:
        raise InstallError("no source tree to build the wheel from: pass --source or --wheelhouse")
    print(f"building wheels from {source} (pip, with this machine's package configuration)")
    return build_wheelhouse(source, workdir, deps=not args.project_only)


def write_self_contained(args: argparse.Namespace, manifest: Manifest, planner: KeyPair) -> int:
    """Wheels (+ TUF root) beside the signed manifest, in one ``.pyz``; return its size."""
    with tempfile.TemporaryDirectory(prefix="seattle-build-") as tmp:
        house = gather_wheels(args, Path(tmp) / "wheels")
        files = house.files(project_only=args.project_only)
        if args.tuf_root is not None:
            root = Path(tmp) / ROOT_NAME
            shutil.copyfile(args.tuf_root, root)
            files.append(root)
        software = Software(project=PROJECT, version=house.version,
                            no_index=not args.project_only)
        full = replace(manifest, payload=describe_files(files), software=software)
        size = build_pyz(build_bundle(full, planner), files, args.output)
    print(f"  software {PROJECT} {house.version}: {len(files)} files"
          + (" (project only: dependencies from the index at install)" if args.project_only else "")
          + ("; TUF root included (updates on)" if args.tuf_root else ""))
    return size


def discard_unverified(pyz: Path, prefix: Path) -> None:
    """Remove the version directory the pyz's first stage built for a bundle that failed."""
    try:
        with zipfile.ZipFile(pyz) as archive:
            _, version, _ = pyzmain.software_of(pyzmain.read_manifest(archive))
    except (OSError, zipfile.BadZipFile, pyzmain.PyzError):
        return
    layout = SoftwareLayout(prefix=prefix)
    if layout.linked_version(layout.current) != version and layout.linked_version(
            layout.previous) != version:
        shutil.rmtree(layout.version_dir(version), ignore_errors=True)


def open_pyz_source(path: Path, trust: PublicKey | None, prefix: Path) -> OpenedPyz | None:
    """The verified self-contained installer at ``path``, or None if it is no ``.pyz``."""
    if not is_pyz(path):
        return None
    try:
        return open_pyz(path, trust=trust)
    except BundleError:
        discard_unverified(path, prefix)
        raise


def managed_parts(opened: OpenedPyz, options: InstallOptions,
                  interval: float) -> tuple[InstallOptions, list[Step]]:
    """Options and extra steps of a managed install from a verified ``.pyz``."""
    root = opened.read_payload(ROOT_NAME)
    soft = SoftwareLayout(prefix=options.prefix)
    options = replace(options, python=str(soft.python), launcher_python=base_python(),
                      update_interval=interval if root is not None else None)
    steps = software_steps(options.prefix, opened.path.absolute(), opened.version,
                           launcher=launcher_source(), root=root)
    return options, steps


def cmd_stage_update(args: argparse.Namespace) -> int:
    """Internal (run by a node manager's updater): switch to verified version V."""
    stage_update(args.prefix.absolute(), args.version, args.wheels, deadline=args.deadline)
    print(f"version {args.version} is current (on trial for {args.deadline:.0f} s)")
    return 0


def add_stage_parser(sub: Any) -> None:
    stage = subparser(sub, "stage-update", help="internal: install a verified version beside "
                      "the running one and make it current (used by the node's updater)")
    stage.add_argument("--prefix", type=Path, required=True)
    stage.add_argument("--version", required=True)
    stage.add_argument("--wheels", type=Path, required=True, help="directory of verified wheels")
    stage.add_argument("--deadline", type=float, default=HEALTH_DEADLINE,
                       help="seconds the new version has to pass its health check")

