"""A fake ``crontab`` command for installer and update tests: it keeps the table in the file
named by ``$FAKE_CRONTAB_FILE`` instead of the user's real crontab."""

from __future__ import annotations

import stat
from pathlib import Path

FAKE_CRONTAB = """#!/bin/sh
F="${FAKE_CRONTAB_FILE:?}"
case "$1" in
  -l) if [ -f "$F" ]; then cat "$F"; else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) cat > "$F" ;;
  *) exit 2 ;;
esac
"""


def install_fake_crontab(command: Path) -> Path:
    """Write the fake ``crontab`` at ``command`` (its directory is created); returns it."""
    command.parent.mkdir(parents=True, exist_ok=True)
    command.write_text(FAKE_CRONTAB)
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    return command
