"""A guide's commands taken from its own code blocks, so tests run what the docs say.

``doc_commands`` reads the commands of a page's code blocks (``seattle-*``, ``seash`` and
``python3`` lines, a trailing ``\\`` joining lines, ``# comments`` dropped, a description
column after three spaces cut off). ``runnable`` turns one into an argv: each placeholder
the test names is replaced by a real value, and optional ``[...]`` groups of a synopsis are
dropped unless the test keeps them. A renamed command, a dropped option or a changed
default then fails the guide's test instead of going stale.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROGRAMS = ("seattle-", "seash", "python3 ")
DESCRIPTION = re.compile(r"\s{3,}(?=[a-z(])")
"""Where a two-column block (``command      what it does``) turns into its description."""


def doc_commands(page: str) -> list[str]:
    """Every command line of ``docs/PAGE``'s code blocks, in order."""
    commands: list[str] = []
    in_block, pending = False, ""
    for raw in (DOCS / page).read_text().splitlines():
        if raw.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.startswith(PROGRAMS):
            commands.append(DESCRIPTION.split(line, maxsplit=1)[0].strip())
    return commands


def find(commands: list[str], start: str) -> str:
    """The one command that starts with ``start`` (the test fails if the doc lost it)."""
    found = [c for c in commands if c.startswith(start)]
    assert len(found) == 1, f"the guide should have one command starting {start!r}: {found}"
    return found[0]


def runnable(command: str, values: Mapping[str, str] = {}, *,
             keep: Collection[str] = ()) -> list[str]:
    """``command`` as an argv: ``values`` substituted (longest placeholder first), optional
    ``[...]`` groups dropped unless they open with a flag in ``keep`` (then kept, unbracketed),
    ``# comments`` dropped, console scripts taken from this interpreter's environment."""
    for placeholder in sorted(values, key=len, reverse=True):
        command = command.replace(placeholder, values[placeholder])
    words: list[str] = []
    depth, keeping = 0, False
    for word in shlex.split(command, comments=True):
        opens, closes = word.count("["), word.count("]")
        if depth == 0 and opens:
            keeping = word.lstrip("[") in keep
        depth += opens
        if depth == 0 or keeping:
            bare = word.replace("[", "").replace("]", "")
            if bare:
                words.append(bare)
        depth -= closes
    return [_program(words[0]), *words[1:]]


def _program(name: str) -> str:
    if name == "python3":
        return sys.executable
    return str(Path(sys.executable).with_name(name))
