"""The self-contained installer's first stage: standard library only.

This file is the ``__main__.py`` of ``lab-installer.pyz`` (a zipapp), so it runs on a donor
machine that has nothing but Python >= 3.11. It also serves ``seattle-installer install``,
which imports ``ensure_version`` from here, so both paths build a version the same way.

A pyz holds::

    __main__.py                this file
    seattle-bundle.tar.gz      the signed bundle (manifest.json, planner.publickey, manifest.sig)
    payload/NAME               wheels and the TUF root, each listed with size and sha256
                               in the signed manifest

``python3 lab-installer.pyz install --trust P.publickey [--prefix DIR] ...``:

1. reads the manifest and checks every payload file's size and sha256 against it (refusing
   unlisted or missing files);
2. builds ``DIR/versions/VERSION``: a venv (no pip in it) filled by running pip *from the
   bundled pip wheel* with ``--isolated --no-index --find-links`` (no package index is
   contacted) unless the bundle was built project-only;
3. hands over to that venv's ``seattle-installer install`` (``python -m installer``), which
   verifies the planner's signature with the trusted key *before* writing anything outside
   ``versions/`` (a bundle that fails it has its fresh version directory removed), then
   installs as usual.

Step 1 guards against corruption only: whoever can alter the pyz can alter this file too, so
a donor checks the pyz's own sha256 out of band (docs/donor.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path
from typing import Any

BUNDLE_MEMBER = "seattle-bundle.tar.gz"
MANIFEST_MEMBER = "seattle-bundle/manifest.json"
PAYLOAD_DIR = "payload/"
MAX_PAYLOAD_FILES = 256
MAX_PAYLOAD_FILE = 64 * 1024 * 1024
MAX_PAYLOAD_TOTAL = 256 * 1024 * 1024
MAX_BUNDLE = 1024 * 1024
COMPLETE = ".complete"
"""Marker written last into a finished version directory."""
PIP_TIMEOUT = 600


class PyzError(Exception):
    """Raised when a pyz is malformed or its payload does not match its manifest."""


def read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    """The manifest JSON inside the pyz's bundle (shape-checked, *not* signature-checked)."""
    try:
        info = archive.getinfo(BUNDLE_MEMBER)
    except KeyError as exc:
        raise PyzError(f"no {BUNDLE_MEMBER} in the installer") from exc
    if info.file_size > MAX_BUNDLE:
        raise PyzError("the bundle inside the installer is too large")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.read(info)), mode="r:gz") as tar:
            member = tar.getmember(MANIFEST_MEMBER)
            handle = tar.extractfile(member)
            if handle is None or member.size > MAX_BUNDLE:
                raise PyzError("bad manifest entry")
            manifest = json.loads(handle.read())
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise PyzError(f"cannot read the manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("payload"), list):
        raise PyzError("the bundle carries no software (manifest without a payload)")
    return manifest


def payload_entries(manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """``{name: (size, sha256)}`` of the manifest's payload, with every field checked."""
    entries: dict[str, tuple[int, str]] = {}
    for item in manifest["payload"]:
        name, size, digest = item.get("name"), item.get("size"), item.get("sha256")
        if (type(name) is not str or "/" in name or name.startswith(".") or name in entries
                or type(size) is not int or not 0 <= size <= MAX_PAYLOAD_FILE
                or type(digest) is not str or len(digest) != 64):
            raise PyzError(f"bad payload entry {str(item)[:120]}")
        entries[name] = (size, digest)
    if len(entries) > MAX_PAYLOAD_FILES or sum(s for s, _ in entries.values()) > MAX_PAYLOAD_TOTAL:
        raise PyzError("payload exceeds the installer's caps")
    return entries


def extract_payload(archive: zipfile.ZipFile, manifest: dict[str, Any],
                    dest: Path | None) -> list[str]:
    """Check each payload file against the manifest; write it into ``dest`` unless None."""
    entries = payload_entries(manifest)
    present = {i.filename[len(PAYLOAD_DIR):]: i for i in archive.infolist()
               if i.filename.startswith(PAYLOAD_DIR) and i.filename != PAYLOAD_DIR}
    if set(present) != set(entries):
        odd = sorted(set(present) ^ set(entries))[:5]
        raise PyzError(f"payload files do not match the manifest: {odd}")
    written = []
    for name, (size, digest) in sorted(entries.items()):
        if present[name].file_size != size:
            raise PyzError(f"{name}: size {present[name].file_size}, manifest says {size}")
        data = archive.read(present[name])
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise PyzError(f"{name} does not match its sha256 in the manifest")
        if dest is not None:
            (dest / name).write_bytes(data)
        written.append(name)
    return written


def software_of(manifest: dict[str, Any]) -> tuple[str, str, bool]:
    """(project, version, no_index) from the manifest's ``software`` entry."""
    software = manifest.get("software")
    if not isinstance(software, dict):
        raise PyzError("the manifest names no software version")
    project, version = software.get("project"), software.get("version")
    if type(project) is not str or type(version) is not str or not check_version_text(version):
        raise PyzError(f"bad software entry {str(software)[:120]}")
    return project, version, software.get("no_index") is not False


def check_version_text(version: str) -> bool:
    """Release versions are dotted numbers (``2``, ``0.1.0``): safe as directory names."""
    parts = version.split(".")
    return 0 < len(version) <= 32 and all(p.isdigit() and len(p) <= 9 for p in parts)


def pip_wheel(wheels: Path) -> Path:
    """The bundled pip wheel (pip runs straight from it)."""
    found = sorted(wheels.glob("pip-*.whl"))
    if not found:
        raise PyzError("the payload has no pip wheel")
    return found[-1]


def install_command(python: Path, wheels: Path, requirement: str, no_index: bool) -> list[str]:
    """pip, run from its wheel, filling the venv of ``python`` from ``wheels``."""
    argv = [str(python), str(pip_wheel(wheels) / "pip"), "install", "--quiet",
            "--disable-pip-version-check", "--no-compile", "--find-links", str(wheels)]
    if no_index:
        argv += ["--isolated", "--no-index"]
    return [*argv, requirement]


def build_venv(target: Path, wheels: Path, requirement: str, *, no_index: bool = True,
               base_python: str | None = None) -> None:
    """Create ``target`` as a venv holding ``requirement`` from ``wheels``; marker last.

    A half-built directory (no marker) is removed first, so a crash here is repaired by
    running the same install again.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if base_python is None:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    else:
        run([base_python, "-m", "venv", "--without-pip", str(target)])
    run(install_command(target / "bin" / "python", wheels, requirement, no_index))
    (target / COMPLETE).write_text(requirement + "\n")


def run(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PyzError(f"cannot run {argv[0]}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-12:])
        raise PyzError(f"{' '.join(argv[:3])} ... failed:\n{tail}")


def version_dir(prefix: Path, version: str) -> Path:
    return prefix / "versions" / version


def ensure_version(pyz: Path, prefix: Path) -> tuple[str, Path]:
    """Build ``prefix/versions/VERSION`` from the pyz unless it is complete; (version, dir)."""
    with zipfile.ZipFile(pyz) as archive:
        manifest = read_manifest(archive)
        project, version, no_index = software_of(manifest)
        target = version_dir(prefix, version)
        if (target / COMPLETE).exists():
            return version, target
        with tempfile.TemporaryDirectory(prefix="seattle-wheels-") as tmp:
            extract_payload(archive, manifest, Path(tmp))
            build_venv(target, Path(tmp), f"{project}=={version}", no_index=no_index)
    return version, target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 lab-installer.pyz",
        description="Install this Seattle node (everything it needs is inside this file).")
    parser.add_argument("command", choices=["install", "status", "uninstall"])
    parser.add_argument("--prefix", type=Path, default=None,
                        help="install directory (default $SEATTLE_PREFIX or ~/.local/share/seattle-p2p)")
    return parser


def default_prefix() -> Path:
    if os.environ.get("SEATTLE_PREFIX"):
        return Path(os.environ["SEATTLE_PREFIX"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "seattle-p2p"


def main(argv: list[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(argv)
    prefix = (args.prefix or default_prefix()).absolute()
    if args.command != "install":
        shim = prefix / "bin" / "seattle-installer"
        if not shim.exists():
            if args.command == "uninstall":  # twice, or after --purge (docs/donor.md)
                print(f"nothing installed in {prefix}; nothing to do")
                return 0
            print(f"not installed in {prefix}", file=sys.stderr)
            return 1
        os.execv("/bin/sh", ["/bin/sh", str(shim), args.command, "--prefix", str(prefix), *rest])
    pyz = Path(sys.argv[0]).absolute()
    try:
        version, target = ensure_version(pyz, prefix)
    except (PyzError, OSError, zipfile.BadZipFile) as exc:
        print(f"lab-installer: {exc}", file=sys.stderr)
        return 2
    python = target / "bin" / "python"
    argv2 = [str(python), "-m", "installer", "install", str(pyz), "--prefix", str(prefix), *rest]
    print(f"software {version} ready in {target}; installing the node", file=sys.stderr)
    os.execv(str(python), argv2)


if __name__ == "__main__":
    sys.exit(main())
