"""``seattle-installer release ...``: publish signed releases (the repository side of updates).

    seattle-installer release-init --repo REPO --keys ONLINE --root-keys OFFLINE
                                   [--root-count N --root-threshold K]
    seattle-installer release --version V --repo REPO --keys ONLINE
                              [--source DIR | --project-wheel W] [--wheelhouse DEPS]
    seattle-installer release-timestamp --repo REPO --keys ONLINE
    seattle-installer publish --repo REPO --prefix NODE_PREFIX

``release-init`` makes the keys and ``REPO/metadata/1.root.json`` (put it in bundles with
``build --tuf-root``); the root keys go to their own directory, to be kept offline. ``release``
builds the project's wheel stamped with version V (plus its dependencies' wheels and pip) and
signs new targets, snapshot and timestamp metadata. ``publish`` hands the repository to one
node manager on this machine (its ``updates/inbox``); from there it spreads peer to peer.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from installer.donor.software import SoftwareLayout
from installer.errors import InstallError
from installer.packing.wheels import (
    WHEEL_PREFIX,
    build_project_wheel,
    download_dependencies,
    project_source,
    wheel_version,
)
from installer.release.tufrepo import EXPIRY_DAYS, add_release, init_repository, resign_timestamp
from installer.release.tufrepo import Repository as TufRepository
from nodemanager.updates.updatecore import Release
from seattlecore import subparser


def _days(args: argparse.Namespace) -> dict[str, float]:
    days = dict(EXPIRY_DAYS)
    if getattr(args, "timestamp_days", None) is not None:
        days["timestamp"] = args.timestamp_days
    return days


def cmd_release_init(args: argparse.Namespace) -> int:
    root = init_repository(args.repo, args.root_keys, args.keys, root_count=args.root_count,
                           root_threshold=args.root_threshold)
    print(f"wrote {root} (root: {args.root_threshold} of {args.root_count} keys in "
          f"{args.root_keys}; keep them offline)")
    print(f"online keys (targets, snapshot, timestamp) in {args.keys}")
    print(f"build bundles with: seattle-installer build ... --tuf-root {root} -o NAME.pyz")
    return 0


def _release_wheels(args: argparse.Namespace, work: Path) -> list[Path]:
    """The project wheel stamped ``args.version`` plus dependency wheels and pip."""
    if args.project_wheel is not None:
        if wheel_version(args.project_wheel) != args.version:
            raise InstallError(f"{args.project_wheel.name} is not version {args.version}")
        shutil.copy2(args.project_wheel, work / args.project_wheel.name)
    else:
        source = args.source or project_source()
        if source is None:
            raise InstallError("no source tree: pass --source or --project-wheel")
        build_project_wheel(source, work, version=args.version)
    (project,) = work.glob(f"{WHEEL_PREFIX}*.whl")
    if args.wheelhouse is not None:
        for wheel in args.wheelhouse.glob("*.whl"):
            if not wheel.name.startswith(WHEEL_PREFIX):
                shutil.copy2(wheel, work / wheel.name)
    else:
        download_dependencies(project, work)
    if not any(work.glob("pip-*.whl")):
        raise InstallError("the release needs a pip wheel (nodes run pip from it)")
    return sorted(work.glob("*.whl"))


def cmd_release(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="seattle-release-") as tmp:
        wheels = _release_wheels(args, Path(tmp))
        release = Release(version=args.version, wheels=tuple(w.name for w in wheels),
                          python=f"{sys.version_info.major}.{sys.version_info.minor}",
                          machine=platform.machine(), published=round(time.time(), 3))
        version = add_release(args.repo, args.keys, release, wheels, days=_days(args))
    print(f"released {release.version}: {len(wheels)} wheels, targets metadata v{version} "
          f"(python {release.python}, {release.machine})")
    return 0


def cmd_release_timestamp(args: argparse.Namespace) -> int:
    version = resign_timestamp(TufRepository(args.repo), args.keys, days=_days(args))
    print(f"timestamp v{version} signed")
    return 0


def publish_repo(repo: Path, prefix: Path) -> Path:
    """Copy the repository into a local node's inbox (its updater takes it from there)."""
    updates = SoftwareLayout(prefix=prefix.absolute()).updates
    if not (updates / "root.json").exists():
        raise InstallError(f"{prefix} is not a managed install with updates enabled")
    inbox = updates / "inbox"
    staging = updates / "inbox.new"
    shutil.rmtree(staging, ignore_errors=True)
    if (repo / "targets").is_dir():
        shutil.copytree(repo / "targets", staging / "targets")
    shutil.copytree(repo / "metadata", staging / "metadata")
    shutil.rmtree(inbox, ignore_errors=True)
    staging.rename(inbox)
    return inbox


def cmd_publish(args: argparse.Namespace) -> int:
    inbox = publish_repo(args.repo, args.prefix)
    print(f"published {args.repo} to {inbox}; the node picks it up at its next check")
    return 0


def add_release_parsers(sub: Any) -> None:
    init = subparser(sub, "release-init", help="release manager: create TUF keys and root")
    init.add_argument("--repo", type=Path, required=True)
    init.add_argument("--keys", type=Path, required=True, help="online keys (targets, snapshot, timestamp)")
    init.add_argument("--root-keys", type=Path, required=True, help="root keys (keep offline)")
    init.add_argument("--root-count", type=int, default=1)
    init.add_argument("--root-threshold", type=int, default=1)
    rel = subparser(sub, "release", help="release manager: build and sign version V")
    rel.add_argument("--version", required=True, help="dotted numbers, e.g. 0.2.0")
    rel.add_argument("--repo", type=Path, required=True)
    rel.add_argument("--keys", type=Path, required=True)
    rel.add_argument("--source", type=Path, default=None, help="source tree (default: this checkout)")
    rel.add_argument("--project-wheel", type=Path, default=None, help="a prebuilt wheel of version V")
    rel.add_argument("--wheelhouse", type=Path, default=None,
                     help="dependency wheels to use instead of downloading them")
    rel.add_argument("--timestamp-days", type=float, default=None)
    stamp = subparser(sub, "release-timestamp", help="release manager: re-sign the timestamp")
    stamp.add_argument("--repo", type=Path, required=True)
    stamp.add_argument("--keys", type=Path, required=True)
    stamp.add_argument("--timestamp-days", type=float, default=None)
    pub = subparser(sub, "publish", help="hand a release repository to a node on this machine")
    pub.add_argument("--repo", type=Path, required=True)
    pub.add_argument("--prefix", type=Path, required=True)


COMMANDS = {"release-init": cmd_release_init, "release": cmd_release,
            "release-timestamp": cmd_release_timestamp, "publish": cmd_publish}
