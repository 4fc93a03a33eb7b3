"""Managed installs: software versions side by side under a prefix, switched atomically.

Layout (``SoftwareLayout``)::

    PREFIX/versions/V/      a venv per version (venvs are not relocatable: built in place)
    PREFIX/current          symlink -> versions/V   (what start.sh's launcher runs)
    PREFIX/previous         symlink -> versions/U   (where a failed update rolls back to)
    PREFIX/bin/seattle-installer   shim: the current version's installer, this prefix
    PREFIX/launcher.py      the launcher (installer/donor/launcher.py), run by the base python
    PREFIX/updates/         root.json (TUF trust anchor), TUF cache, mirror, pending.json,
                            bad/V, events.log, status.json: outside versions/, so they survive

``stage_update`` is what a node manager runs (as ``seattle-installer stage-update``) once
its updater verified version V's wheels: build ``versions/V`` with no index, self-test it,
write ``pending.json``, move ``previous`` to the old version and flip ``current`` to V. The
node manager then exits with the launcher's restart code; see ``launcher.py`` for the trial.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.donor import launcher
from installer.errors import InstallError
from installer.packing import pyzmain

log = logging.getLogger(__name__)

PROJECT = "seattle-p2p"
HEALTH_DEADLINE = 120.0
"""Seconds a new version has to pass its health check before the launcher rolls back."""
SELF_TEST = "import installer, nodemanager, overlay, sandbox, seattlecore, tuf.ngclient"


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftwareLayout:
    """Where a managed install keeps its versions."""

    prefix: Path

    @property
    def versions(self) -> Path:
        return self.prefix / "versions"

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    @property
    def previous(self) -> Path:
        return self.prefix / "previous"

    @property
    def python(self) -> Path:
        """The current version's interpreter (through the ``current`` symlink)."""
        return self.current / "bin" / "python"

    @property
    def shim(self) -> Path:
        return self.prefix / "bin" / "seattle-installer"

    @property
    def launcher(self) -> Path:
        return self.prefix / "launcher.py"

    @property
    def updates(self) -> Path:
        return self.prefix / "updates"

    @property
    def root(self) -> Path:
        return self.updates / "root.json"

    @property
    def wheels(self) -> Path:
        """Wheels of the installed versions (verified; the updater reuses unchanged ones)."""
        return self.updates / "wheels"

    @property
    def pending(self) -> Path:
        return self.updates / "pending.json"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def linked_version(self, link: Path) -> str | None:
        """The version a symlink (``current``/``previous``) points at, if any."""
        try:
            return Path(os.readlink(link)).name
        except OSError:
            return None

    def is_bad(self, version: str) -> bool:
        return (self.updates / "bad" / version).exists()


def shim_text(prefix: Path) -> str:
    """``PREFIX/bin/seattle-installer``: the current version's installer for this prefix."""
    quoted = shlex.quote(str(prefix))
    python = shlex.quote(str(SoftwareLayout(prefix=prefix).python))
    return ("#!/bin/sh\n# seattle-installer of the managed install in this prefix.\n"
            f'SEATTLE_PREFIX="${{SEATTLE_PREFIX:-{quoted}}}" exec {python} -m installer "$@"\n')


def launcher_source() -> bytes:
    return Path(launcher.__file__).read_bytes()


def launcher_argv(prefix: Path, base_python: str, child_args: Sequence[str]) -> list[str]:
    """start.sh's command: the launcher, which runs ``current/bin/python CHILD_ARGS``."""
    return [base_python, str(SoftwareLayout(prefix=prefix).launcher), "--prefix", str(prefix),
            "--", *child_args]


def base_python() -> str:
    """The interpreter venvs are made from (survives every version; runs the launcher)."""
    return str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())


@dataclass(frozen=True, slots=True)
class BuildVersion:
    """Build ``versions/V`` from a verified installer's wheels (idempotent)."""

    pyz: Path
    prefix: Path
    version: str

    def describe(self) -> str:
        return (f"build {self.prefix}/versions/{self.version} from the installer's wheels "
                "(no package index)")

    def perform(self) -> None:
        try:
            pyzmain.ensure_version(self.pyz, self.prefix)
        except pyzmain.PyzError as exc:
            raise InstallError(f"cannot build version {self.version}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class KeepWheels:
    """Keep the installer's verified wheels in ``updates/wheels``: a later release then only
    downloads the wheels that changed (the updater checks each one's hash against TUF)."""

    pyz: Path
    prefix: Path

    def describe(self) -> str:
        return f"keep the installer's wheels in {SoftwareLayout(prefix=self.prefix).wheels}"

    def perform(self) -> None:
        target = SoftwareLayout(prefix=self.prefix).wheels
        target.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(self.pyz) as archive:
                pyzmain.extract_payload(archive, pyzmain.read_manifest(archive), target)
        except (pyzmain.PyzError, zipfile.BadZipFile) as exc:
            raise InstallError(f"cannot keep the installer's wheels: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SwitchVersion:
    """Point ``current`` at ``versions/V`` (atomically)."""

    prefix: Path
    version: str

    def describe(self) -> str:
        return f"point {self.prefix}/current at versions/{self.version}"

    def perform(self) -> None:
        launcher.flip(SoftwareLayout(prefix=self.prefix).current, f"versions/{self.version}")


def self_test(python: Path) -> None:
    """Import every package with the new version's interpreter; raise if that fails."""
    try:
        result = subprocess.run([str(python), "-c", SELF_TEST], capture_output=True, text=True,
                                timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"self-test of {python} could not run: {exc}") from exc
    if result.returncode != 0:
        raise InstallError(f"self-test of {python} failed: {result.stderr.strip()[-400:]}")


def prune(layout: SoftwareLayout) -> list[str]:
    """Delete versions that neither ``current`` nor ``previous`` names; return them."""
    keep = {layout.linked_version(layout.current), layout.linked_version(layout.previous)}
    removed = []
    if layout.versions.is_dir():
        for path in sorted(layout.versions.iterdir()):
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


def keep_wheels(layout: SoftwareLayout, wheels: Path) -> None:
    """Replace the kept wheels with those of the version just built."""
    fresh = layout.wheels.with_name("wheels.new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for wheel in wheels.glob("*.whl"):
        shutil.copyfile(wheel, fresh / wheel.name)  # follows the updater's symlinks
    shutil.rmtree(layout.wheels, ignore_errors=True)
    fresh.rename(layout.wheels)


def stage_update(prefix: Path, version: str, wheels: Path, *,
                 deadline: float = HEALTH_DEADLINE, now: float | None = None) -> None:
    """Install version ``version`` beside the running one and make it current (on trial)."""
    layout = SoftwareLayout(prefix=prefix)
    running = layout.linked_version(layout.current)
    if not pyzmain.check_version_text(version):
        raise InstallError(f"bad version {version!r}")
    if running is None:
        raise InstallError(f"{prefix} is not a managed install (no current version)")
    if version == running or layout.is_bad(version):
        raise InstallError(f"version {version} is {'running' if version == running else 'bad'}")
    if layout.pending.exists():
        raise InstallError("another update is on trial (pending.json exists)")
    prune(layout)
    target = layout.version_dir(version)
    try:
        pyzmain.build_venv(target, wheels, f"{PROJECT}=={version}")
    except pyzmain.PyzError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise InstallError(f"cannot build version {version}: {exc}") from exc
    self_test(target / "bin" / "python")
    keep_wheels(layout, wheels)
    started = time.time() if now is None else now
    pending = {"from": running, "to": version, "deadline": started + deadline, "boots": 0,
               "staged_at": started}
    layout.updates.mkdir(parents=True, exist_ok=True)
    launcher.write_json(layout.pending, pending)
    launcher.flip(layout.previous, f"versions/{running}")
    launcher.flip(layout.current, f"versions/{version}")
    launcher.log_event(layout.updates, {"event": "staged", "from": running, "to": version})
    log.info("version %s staged (was %s); on trial until %s", version, running,
             json.dumps(pending["deadline"]))
