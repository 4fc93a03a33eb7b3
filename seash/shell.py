"""The front end: terminal and JSON reporters, the interactive prompt, and script runs.

Interactive use runs ``cmd.Cmd`` (line editing, readline history and completion) in a worker
thread; each line runs on the trio loop through ``trio.from_thread.run``, so connections in
the pool live for the whole session. Ctrl-C cancels the running command, not the shell.
"""

from __future__ import annotations

import cmd
import contextlib
import getpass
import json
import os
import re
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from seash.client import NodeResult
from seash.commands import ArgKind, complete
from seash.errors import SeashError, StateFileError
from seash.executor import Executor, PassphraseSource, Summary
from seash.parse import tokenize
from seash.session import Session
from seash.settings import autosave
from seash.tree import TREE
from seattlecore import PublicKey

STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "yellow"}
UNSHOWABLE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                           "\u2066-\u2069]")
"""What a terminal would act on rather than show: controls (escape sequences), line and
paragraph separators, bidirectional overrides. Newlines and tabs are kept."""


def printable(text: str) -> str:
    """``text`` with every unshowable character written as a visible escape (``\\x1b``).

    Everything seash prints may come from a node or a vessel program (owner info, exit
    reasons, logs, error messages), so nothing it prints may steer the terminal.
    """
    return UNSHOWABLE_RE.sub(lambda m: ascii(m.group())[1:-1], text)


class ConsoleReporter:
    """Human output: results as they arrive, a progress line on a terminal, then a summary."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 terminal: bool | None = None) -> None:
        self.console = Console(file=out or sys.stdout, highlight=False, force_terminal=terminal,
                               soft_wrap=True)
        self.err = Console(file=err or sys.stderr, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = 0

    @property
    def terminal(self) -> bool:
        return self.console.is_terminal

    def begin(self, line: str) -> None:
        self.stop_progress()

    def text(self, text: str) -> None:
        self.console.print(printable(text), markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        rows = [[printable(str(cell)) for cell in row] for row in rows]
        if not rows:
            self.console.print(f"({title}: none)", markup=False)
        elif self.terminal:
            table = Table(*columns, title=None, box=None, header_style="bold")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
        else:
            widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
            for row in [columns, *rows]:
                self.console.print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)
                                             ).rstrip(), markup=False)

    def start(self, command: str, total: int) -> None:
        self._total = total
        if self.terminal and total > 1:
            self._progress = Progress(TextColumn(f"{command}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=self.console, transient=True)
            self._task = self._progress.add_task(command, total=total)
            self._progress.start()

    def result(self, result: NodeResult, text: str | None) -> None:
        """``%N  host:port:vessel  status detail``; a multi-line detail (``"\n..."``) follows
        on its own lines, each prefixed with the target when the command has many targets.
        An ok result with nothing to say prints nothing (the summary counts it)."""
        detail = text if result.ok else result.error
        if self._progress is not None:
            self._progress.advance(self._task)
            if self._progress.finished:
                self.stop_progress()  # every target answered (following goes on without it)
        if result.ok and not detail:
            return  # nothing to say (an empty log while following, 'update')
        where = result.target if result.address == result.target else f"{result.target:<6} {result.address}"
        line = Text(printable(f"{where:<31} "))
        line.append(result.status, style=STATUS_STYLE[result.status])
        if detail and not detail.startswith("\n"):
            line.append(" " + printable(detail))
        self.console.print(line)
        if detail and detail.startswith("\n"):
            self.text(block_lines(result.target, detail[1:], prefix=self._total > 1))

    def more(self, result: NodeResult, text: str) -> None:
        self.stop_progress()
        self.text(block_lines(result.target, text.lstrip("\n"), prefix=self._total > 1))

    def finish(self, summary: Summary) -> None:
        self.stop_progress()
        parts = [f"{summary.ok} ok"]
        if summary.failed:
            parts.append(f"{summary.failed} failed")
        if summary.timeout:
            parts.append(f"{summary.timeout} timed out")
        self.console.print(f"{summary.command}: {', '.join(parts)} in {summary.elapsed:.2f} s",
                           markup=False)

    def error(self, message: str) -> None:
        self.stop_progress()
        self.err.print(f"error: {printable(message)}", markup=False)

    def end(self, ok: bool) -> None:
        self.stop_progress()

    def stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def block_lines(target: str, block: str, *, prefix: bool) -> str:
    """A multi-line result; with ``prefix`` every line starts ``%N | `` (many vessels' logs
    interleave, and each line must still say where it came from)."""
    if not prefix:
        return block
    return "\n".join(f"{target:<4} | {line}" for line in block.split("\n"))


def jsonable(value: Any) -> Any:
    """Results as JSON values (dataclasses -> objects, keys -> hex, bytes -> text)."""
    if isinstance(value, PublicKey):
        return value.to_text()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(getattr(value, k)) for k in asdict(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class JsonReporter:
    """One JSON object per command on one line: text, tables, results, summary, error."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._doc: dict[str, Any] = {}

    def begin(self, line: str) -> None:
        self._doc = {"command": line, "ok": True, "text": [], "tables": [], "results": [],
                     "summaries": []}

    def text(self, text: str) -> None:
        self._doc["text"].append(text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self._doc["tables"].append({"title": title, "rows": [dict(zip(columns, r, strict=True))
                                                             for r in rows]})

    def start(self, command: str, total: int) -> None:
        pass

    def result(self, result: NodeResult, text: str | None) -> None:
        self._doc["results"].append({"target": result.target, "address": result.address,
                                     "status": result.status, "value": jsonable(result.value),
                                     "error": result.error, "elapsed": round(result.elapsed, 4),
                                     "path": result.path})

    def more(self, result: NodeResult, text: str) -> None:
        self.result(result, text)

    def finish(self, summary: Summary) -> None:
        self._doc["summaries"].append({"command": summary.command, "ok": summary.ok,
                                       "failed": summary.failed, "timeout": summary.timeout,
                                       "elapsed": round(summary.elapsed, 4)})

    def error(self, message: str) -> None:
        self._doc["error"] = message

    def end(self, ok: bool) -> None:
        self._doc["ok"] = ok
        self.out.write(json.dumps(self._doc) + "\n")
        self.out.flush()


# ---- interactive prompt ----


def _words(line: str) -> list[str]:
    try:
        return tokenize(line)
    except SeashError:
        return line.split()


class Shell(cmd.Cmd):
    """``cmd.Cmd`` for line editing and completion; runs each line on the trio loop."""

    intro = "seash: the Seattle shell. Type 'help' for commands, Ctrl-D to leave."

    def __init__(self, executor: Executor, token: trio.lowlevel.TrioToken) -> None:
        super().__init__()
        self.executor = executor
        self.token = token
        self._scope: trio.CancelScope | None = None

    @property
    def prompt(self) -> str:  # type: ignore[override]
        return self.executor.session.prompt()

    def emptyline(self) -> bool:
        return False

    def onecmd(self, line: str) -> bool:
        if line == "EOF":
            print()
            return True
        trio.from_thread.run(self._run_line, line, trio_token=self.token)
        return self.executor.exiting

    async def _run_line(self, line: str) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            await self.executor.execute(line)
        self._scope = None
        await autosave(self.executor)
        if scope.cancelled_caught:
            stop = getattr(self.executor.reporter, "stop_progress", None)
            if stop is not None:
                stop()
            print("interrupted")

    def interrupt(self) -> None:
        """Cancel the running command (called on SIGINT)."""
        if self._scope is not None:
            self._scope.cancel()

    # completion: the command tree proposes, the session and file system fill in

    def complete(self, text: str, state: int) -> str | None:  # type: ignore[override]
        if state == 0:
            import readline

            line = readline.get_line_buffer()
            begin = readline.get_begidx()
            self._matches = self.candidates(line[:begin], text)
        return self._matches[state] if state < len(self._matches) else None

    def candidates(self, before: str, text: str) -> list[str]:
        matches = complete(TREE, _words(before), text, self._source)
        return [m + ("" if m.endswith("/") else " ") for m in matches] if len(matches) == 1 else matches

    def _source(self, kind: ArgKind) -> list[str]:
        return sources(self.executor, kind)


def sources(executor: Executor, kind: ArgKind) -> list[str]:
    """Completion candidates of one argument kind."""
    session = executor.session
    if kind == "target":
        return session.target_names()
    if kind == "identity":
        return sorted(session.identities)
    if kind == "group":
        return sorted(session.groups)
    if kind == "bool":
        return ["on", "off"]
    if kind == "keyname":
        with contextlib.suppress(OSError):
            return sorted({p.stem for p in executor.home.iterdir()
                           if p.suffix in (".publickey", ".privatekey")})
        return []
    if kind == "path":
        with contextlib.suppress(OSError):
            return sorted(p.name + ("/" if p.is_dir() else "") for p in Path(".").iterdir())
    return []


# ---- entry points ----


def passphrase_source(file: Path | None, interactive: bool) -> PassphraseSource:
    """--passphrase-file, else $SEASH_PASSPHRASE, else getpass on a terminal."""

    async def source(confirm: bool) -> str:
        if file is not None:
            try:
                return file.read_text().rstrip("\n")
            except OSError as exc:
                raise StateFileError(f"cannot read passphrase file {file}: {exc.strerror}") from exc
        env = os.environ.get("SEASH_PASSPHRASE")
        if env:
            return env
        if not interactive:
            raise StateFileError("no passphrase: use --passphrase-file FILE or SEASH_PASSPHRASE")
        first = await trio.to_thread.run_sync(getpass.getpass, "passphrase: ")
        if confirm:
            again = await trio.to_thread.run_sync(getpass.getpass, "again: ")
            if again != first:
                raise StateFileError("passphrases differ")
        return first

    return source


async def run_script(executor: Executor, lines: Iterable[str]) -> None:
    try:
        for line in lines:
            await executor.execute(line)
            await autosave(executor)
            if executor.exiting:
                break
    finally:
        await executor.aclose()


async def run_interactive(executor: Executor, history: Path | None) -> None:
    import readline

    if history is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    readline.set_completer_delims(" \t\n;")
    shell = Shell(executor, trio.lowlevel.current_trio_token())
    previous = signal.signal(signal.SIGINT, _on_sigint(shell))
    try:
        await trio.to_thread.run_sync(shell.cmdloop, abandon_on_cancel=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        await executor.aclose()
        if history is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def _on_sigint(shell: Shell) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            shell.token.run_sync_soon(shell.interrupt)
    return handler


def make_executor(session: Session, *, home: Path, json_output: bool,
                  passphrase: PassphraseSource) -> Executor:
    reporter: Any = JsonReporter() if json_output else ConsoleReporter()
    return Executor(TREE, session, reporter, home=home, passphrase=passphrase)
