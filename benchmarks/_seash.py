"""The quiet seash reporter the benchmarks share (imported after ``seash`` itself: this
directory's ``seash.py`` would otherwise shadow the package)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from seash.client import NodeResult
from seash.executor import Summary


class Quiet:
    """A reporter that counts results and keeps errors (``echo``: also print them)."""

    def __init__(self, *, echo: bool = False) -> None:
        self.ok = 0
        self.failed: list[str] = []
        self.echo = echo

    def begin(self, line: str) -> None: ...
    def text(self, text: str) -> None: ...
    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...
    def start(self, command: str, total: int) -> None: ...
    def result(self, result: NodeResult, text: str | None) -> None:
        self.ok += result.ok
        if not result.ok:
            self.failed.append(str(result.error))
    def more(self, result: NodeResult, text: str) -> None: ...
    def finish(self, summary: Summary) -> None: ...
    def error(self, message: str) -> None:
        self.failed.append(message)
        if self.echo:
            print("error:", message, file=sys.stderr)
    def end(self, ok: bool) -> None: ...
