"""Start-at-boot entries: a systemd user unit where systemd runs, else a crontab ``@reboot`` line.

Rendering and editing the crontab text are pure; ``BootManager`` runs the crontab command or
writes the unit files. Both the crontab command and the systemd user directory are injectable
(``--crontab-cmd`` / ``SEATTLE_CRONTAB``, ``--systemd-dir`` / ``SEATTLE_SYSTEMD_USER_DIR``),
so tests never touch a real crontab or ``~/.config``.

Seattle (docs/seattle.md, Installers) added ``@reboot`` lines on Linux and Mac; this keeps that and
prefers systemd's user manager when the machine booted with systemd.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from installer.errors import BootEntryError

log = logging.getLogger(__name__)

BootKind = Literal["systemd", "cron", "none"]
ServiceChoice = Literal["auto", "systemd", "cron", "none"]
MARKER = "seattle-p2p"
CRONTAB_ENV = "SEATTLE_CRONTAB"
SYSTEMD_DIR_ENV = "SEATTLE_SYSTEMD_USER_DIR"


@dataclass(frozen=True, slots=True, kw_only=True)
class BootEntry:
    """The start-at-boot entry for one installation prefix."""

    kind: BootKind
    script: Path
    """The prefix's ``start.sh``."""
    note: str = ""
    """Why there is no entry (kind ``none``), for the report."""

    @property
    def tag(self) -> str:
        """Marks the crontab line as ours (and names the prefix)."""
        return f"# {MARKER}:{self.script.parent}"

    @property
    def cron_line(self) -> str:
        return f"@reboot /bin/sh {shlex.quote(str(self.script))} {self.tag}"

    @property
    def unit_name(self) -> str:
        digest = hashlib.sha256(str(self.script.parent).encode()).hexdigest()[:10]
        return f"seattle-nodemanager-{digest}.service"

    @property
    def unit_text(self) -> str:
        return (
            "[Unit]\n"
            f"Description=Seattle node manager ({MARKER}) in {self.script.parent}\n"
            "After=network-online.target\n\n"
            "[Service]\n"
            "Type=simple\n"
            f"ExecStart=/bin/sh {shlex.quote(str(self.script))}\n"
            "Restart=on-failure\n\n"
            "[Install]\n"
            "WantedBy=default.target\n"
        )

    def describe(self) -> str:
        if self.kind == "cron":
            return f"crontab entry: {self.cron_line}"
        if self.kind == "systemd":
            return f"systemd user unit {self.unit_name}"
        return f"no start-at-boot entry ({self.note or 'disabled'})"


def add_cron_line(text: str, line: str) -> str:
    """The crontab ``text`` with ``line`` present exactly once."""
    lines = [row for row in text.splitlines() if row != line]
    return "\n".join([*lines, line]) + "\n"


def remove_cron_line(text: str, tag: str) -> str:
    """The crontab ``text`` without any line ending in ``tag``."""
    lines = [row for row in text.splitlines() if not row.rstrip().endswith(tag)]
    return "\n".join(lines) + "\n" if lines else ""


def systemd_booted() -> bool:
    """True if PID 1 is systemd (sd_booted's test)."""
    return Path("/run/systemd/system").is_dir()


@dataclass(frozen=True, slots=True, kw_only=True)
class BootManager:
    """Reads and changes start-at-boot entries (the I/O half)."""

    crontab_cmd: tuple[str, ...] = ("crontab",)
    systemd_dir: Path | None = None

    @classmethod
    def from_env(cls, crontab_cmd: str | None = None,
                 systemd_dir: Path | None = None) -> BootManager:
        command = crontab_cmd or os.environ.get(CRONTAB_ENV) or "crontab"
        directory = systemd_dir or (Path(os.environ[SYSTEMD_DIR_ENV])
                                    if os.environ.get(SYSTEMD_DIR_ENV) else None)
        return cls(crontab_cmd=tuple(shlex.split(command)), systemd_dir=directory)

    @property
    def unit_dir(self) -> Path:
        if self.systemd_dir is not None:
            return self.systemd_dir
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config) / "systemd" / "user"

    def choose(self, choice: ServiceChoice, script: Path) -> BootEntry:
        """Resolve ``auto`` to what this machine supports; explain a missing crontab."""
        if choice == "none":
            return BootEntry(kind="none", script=script, note="--no-service")
        if choice == "systemd" or (choice == "auto" and systemd_booted()):
            return BootEntry(kind="systemd", script=script)
        if shutil.which(self.crontab_cmd[0]) is None:
            return BootEntry(kind="none", script=script,
                             note=f"no '{self.crontab_cmd[0]}' command on this machine; "
                                  "start the node after a reboot with the start.sh script")
        return BootEntry(kind="cron", script=script)

    def _crontab(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([*self.crontab_cmd, *args], input=stdin, capture_output=True,
                                  text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BootEntryError(f"cannot run {self.crontab_cmd[0]}: {exc}") from exc

    def read_crontab(self) -> str:
        result = self._crontab("-l")
        if result.returncode != 0:
            if "no crontab" in result.stderr.lower():
                return ""
            raise BootEntryError(f"crontab -l failed: {result.stderr.strip()}")
        return result.stdout

    def write_crontab(self, text: str) -> None:
        result = self._crontab("-", stdin=text)
        if result.returncode != 0:
            raise BootEntryError(f"cannot write the crontab: {result.stderr.strip()}")

    def is_present(self, entry: BootEntry) -> bool:
        """Is ``entry`` installed? (``none`` entries never are.)"""
        if entry.kind == "cron":
            if shutil.which(self.crontab_cmd[0]) is None:
                return False
            return any(row.rstrip().endswith(entry.tag) for row in self.read_crontab().splitlines())
        if entry.kind == "systemd":
            return (self.unit_dir / entry.unit_name).exists()
        return False

    def add(self, entry: BootEntry) -> None:
        if entry.kind == "cron":
            self.write_crontab(add_cron_line(remove_cron_line(self.read_crontab(), entry.tag),
                                             entry.cron_line))
        elif entry.kind == "systemd":
            self._add_unit(entry)
        log.info("added %s", entry.describe())

    def remove(self, entry: BootEntry) -> None:
        if entry.kind == "cron":
            current = self.read_crontab()
            if entry.tag in current:
                self.write_crontab(remove_cron_line(current, entry.tag))
        elif entry.kind == "systemd":
            (self.unit_dir / "default.target.wants" / entry.unit_name).unlink(missing_ok=True)
            (self.unit_dir / entry.unit_name).unlink(missing_ok=True)
            self._reload()
        log.info("removed %s", entry.describe())

    def _add_unit(self, entry: BootEntry) -> None:
        wants = self.unit_dir / "default.target.wants"
        try:
            wants.mkdir(parents=True, exist_ok=True)
            (self.unit_dir / entry.unit_name).write_text(entry.unit_text)
            link = wants / entry.unit_name
            link.unlink(missing_ok=True)
            link.symlink_to(self.unit_dir / entry.unit_name)
        except OSError as exc:
            raise BootEntryError(f"cannot write the systemd unit: {exc}") from exc
        self._reload()

    def _reload(self) -> None:
        """Tell a running user manager about the change (only for the real unit dir)."""
        if self.systemd_dir is not None or not systemd_booted() or not shutil.which("systemctl"):
            return
        subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True,
                       timeout=30, check=False)
