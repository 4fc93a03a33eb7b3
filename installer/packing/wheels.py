"""Build the wheels a self-contained bundle or a release carries (runs pip at build time).

``build_wheelhouse`` builds the project's wheel from a source tree (optionally stamped with
another version, for releases) and downloads its dependencies' wheels for this machine's
platform, plus pip itself (the installer runs pip straight from its wheel). pip uses the
builder's own configuration (its index or local mirror); donors never need an index.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.errors import InstallError
from installer.packing.pyzmain import check_version_text
from installer.planner.bundle import PayloadFile

log = logging.getLogger(__name__)

PROJECT = "seattle-p2p"
WHEEL_PREFIX = "seattle_p2p-"
SOURCE_ITEMS = ("pyproject.toml", "README.md", "seattlecore", "sandbox", "nodemanager",
                "overlay", "seash", "installer")
VERSION_LINE = re.compile(r'^version = "[^"]*"$', re.MULTILINE)
PIP_TIMEOUT = 900


@dataclass(frozen=True, slots=True, kw_only=True)
class Wheelhouse:
    """A directory of wheels: the project's (``project_wheel``) and what it needs."""

    directory: Path
    project_wheel: Path
    version: str

    def files(self, *, project_only: bool = False) -> list[Path]:
        """The wheels to ship: all, or (``project_only``) the project's and pip's."""
        wheels = sorted(self.directory.glob("*.whl"))
        if project_only:
            wheels = [w for w in wheels if w == self.project_wheel or w.name.startswith("pip-")]
        return wheels


def project_source() -> Path | None:
    """The source tree this installer runs from, if it is a checkout (has pyproject.toml)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "installer").is_dir() else None


def wheel_version(path: Path) -> str:
    """The version in a project wheel's file name (``seattle_p2p-2.0-py3-none-any.whl``)."""
    parts = path.name.split("-")
    if len(parts) < 5 or not path.name.startswith(WHEEL_PREFIX):
        raise InstallError(f"{path.name} is not a {PROJECT} wheel")
    return parts[1]


def open_wheelhouse(directory: Path) -> Wheelhouse:
    """An existing wheel directory (``--wheelhouse``): exactly one project wheel and pip."""
    projects = sorted(directory.glob(f"{WHEEL_PREFIX}*.whl"))
    if len(projects) != 1:
        raise InstallError(f"{directory} must hold exactly one {PROJECT} wheel, "
                           f"found {len(projects)}")
    if not any(directory.glob("pip-*.whl")):
        raise InstallError(f"{directory} has no pip wheel (the installer runs pip from it)")
    return Wheelhouse(directory=directory, project_wheel=projects[0],
                      version=wheel_version(projects[0]))


def _pip(args: Sequence[str], python: str) -> None:
    argv = [python, "-m", "pip", *args]
    log.info("running %s", " ".join(argv))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run pip: {exc}") from exc
    if result.returncode != 0:
        log.info("pip %s said:\n%s", args[0], result.stderr.strip())
        raise InstallError(f"pip {args[0]} failed: {pip_cause(result.stderr, result.returncode)}")


def pip_cause(stderr: str, returncode: int) -> str:
    """The line of pip's output that names why it failed (its last ``ERROR:`` line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else f"exit status {returncode}, no message"


def stage_source(source: Path, dest: Path, version: str | None) -> None:
    """Copy what the wheel needs from ``source`` into ``dest``; stamp ``version`` if given."""
    for item in SOURCE_ITEMS:
        path = source / item
        if path.is_dir():
            shutil.copytree(path, dest / item,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, dest / item)
    if version is not None:
        if not check_version_text(version):
            raise InstallError(f"release versions are dotted numbers (e.g. 2 or 0.2.0), "
                               f"not {version!r}")
        toml = (dest / "pyproject.toml").read_text()
        (dest / "pyproject.toml").write_text(VERSION_LINE.sub(f'version = "{version}"', toml, 1))


def build_project_wheel(source: Path, out: Path, *, version: str | None = None,
                        python: str = sys.executable) -> Path:
    """``pip wheel`` the project from ``source`` into ``out``; return the wheel."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seattle-src-") as tmp:
        stage_source(source, Path(tmp), version)
        before = set(out.glob(f"{WHEEL_PREFIX}*.whl"))
        for old in before:
            old.unlink()
        _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), tmp], python)
    built = sorted(out.glob(f"{WHEEL_PREFIX}*.whl"))
    if len(built) != 1:
        raise InstallError("pip wheel did not produce one project wheel")
    return built[0]


def download_dependencies(project_wheel: Path, out: Path, *,
                          python: str = sys.executable) -> None:
    """Binary wheels of everything ``project_wheel`` needs, and pip, for this platform."""
    _pip(["download", "--quiet", "--only-binary=:all:", "--dest", str(out),
          str(project_wheel), "pip"], python)


def build_wheelhouse(source: Path, out: Path, *, version: str | None = None,
                     deps: bool = True, python: str = sys.executable) -> Wheelhouse:
    """Project wheel (+ dependencies and pip) in ``out``."""
    wheel = build_project_wheel(source, out, version=version, python=python)
    if deps:
        download_dependencies(wheel, out, python=python)
    else:
        _pip(["download", "--quiet", "--only-binary=:all:", "--no-deps", "--dest", str(out),
              "pip"], python)
    return Wheelhouse(directory=out, project_wheel=wheel, version=wheel_version(wheel))


def describe_files(paths: Sequence[Path]) -> tuple[PayloadFile, ...]:
    """Name, size and sha256 of each file (what the signed manifest lists)."""
    out = []
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        out.append(PayloadFile(name=path.name, size=path.stat().st_size,
                               sha256=digest.hexdigest()))
    return tuple(out)
