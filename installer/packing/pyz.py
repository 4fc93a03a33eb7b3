"""Self-contained installers: the signed bundle plus its payload in one zipapp (``.pyz``).

``build_pyz`` writes the zip (``__main__.py`` is ``installer/packing/pyzmain.py``, the bundle, then
``payload/NAME`` for every file the signed manifest lists). ``open_pyz`` is what
``seattle-installer install X.pyz`` runs first: the planner's signature over the manifest
(``open_bundle``), then every payload file's size and sha256 against it. The zip is bounded
(``pyzmain.MAX_PAYLOAD_*``) before anything is read.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.errors import BundleError
from installer.packing import pyzmain
from installer.planner.bundle import OpenedBundle, open_bundle
from seattlecore import PublicKey

ROOT_NAME = "1.root.json"
"""Payload name of the TUF trust anchor (the first root metadata) in update-enabled bundles."""
MAX_PYZ = pyzmain.MAX_PAYLOAD_TOTAL + 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedPyz:
    """A verified self-contained installer: its bundle and where it lies."""

    path: Path
    bundle: OpenedBundle

    @property
    def version(self) -> str:
        software = self.bundle.manifest.software
        assert software is not None  # open_pyz refuses bundles without software
        return software.version

    def read_payload(self, name: str) -> bytes | None:
        """One payload file's bytes, checked against the signed manifest (None if absent)."""
        wanted = {f.name: f for f in self.bundle.manifest.payload}.get(name)
        if wanted is None:
            return None
        try:
            with zipfile.ZipFile(self.path) as archive:
                data = archive.read(pyzmain.PAYLOAD_DIR + name)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise BundleError(f"cannot read {name} from {self.path}: {exc}") from exc
        if len(data) != wanted.size or hashlib.sha256(data).hexdigest() != wanted.sha256:
            raise BundleError(f"{name} in {self.path} does not match the signed manifest")
        return data


def is_pyz(path: Path) -> bool:
    """True if ``path`` is a zip (a self-contained installer) rather than a ``.tar.gz``."""
    return zipfile.is_zipfile(path)


def build_pyz(bundle: bytes, payload: Sequence[Path], output: Path) -> int:
    """Write the installer to ``output`` (atomically); return its size."""
    main = Path(pyzmain.__file__).read_bytes()
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(b"#!/usr/bin/env python3\n")  # as zipapp does: the zip follows
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(zipfile.ZipInfo("__main__.py", (2020, 1, 1, 0, 0, 0)), main,
                             compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr(zipfile.ZipInfo(pyzmain.BUNDLE_MEMBER, (2020, 1, 1, 0, 0, 0)),
                             bundle)
            for path in payload:
                archive.write(path, pyzmain.PAYLOAD_DIR + path.name)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.chmod(0o755)
    os.replace(tmp, output)
    return output.stat().st_size


def open_pyz(path: Path, *, trust: PublicKey | None = None) -> OpenedPyz:
    """Verify a self-contained installer: signature, then every payload file."""
    try:
        if path.stat().st_size > MAX_PYZ:
            raise BundleError(f"{path} is larger than {MAX_PYZ} bytes")
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(pyzmain.BUNDLE_MEMBER)
            if info.file_size > pyzmain.MAX_BUNDLE:
                raise BundleError("the bundle inside the installer is too large")
            bundle = open_bundle(archive.read(info), trust=trust)
            if bundle.manifest.software is None:
                raise BundleError("the installer's manifest names no software")
            pyzmain.extract_payload(archive, pyzmain.read_manifest(archive), None)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a readable installer: {exc}") from exc
    except pyzmain.PyzError as exc:
        raise BundleError(str(exc)) from exc
    return OpenedPyz(path=path, bundle=bundle)
