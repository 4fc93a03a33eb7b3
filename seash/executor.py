"""Runs command lines against a session: resolve in the tree, call the handler, report.

The executor owns the session, the connection pool and a ``Reporter`` (the shell's output
seam: terminal or JSON). Handlers (actions.py) call ``fan`` to run an operation on every
vessel of the target; ``fan`` streams each ``NodeResult`` to the reporter, prints a summary
and sets the ``<cmd>good`` / ``<cmd>fail`` groups.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from seash.client import Job, NodePool, NodeResult, VesselOp, fan_out
from seash.commands import Command, resolve
from seash.errors import SeashError
from seash.parse import tokenize
from seash.session import Session
from seattlecore import KeyPair

log = logging.getLogger(__name__)

Render = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Summary:
    command: str
    ok: int
    failed: int
    timeout: int
    elapsed: float


class InOrder:
    """Releases results in a fixed order of keys: each once it and all before it arrived
    (pure). A key may repeat; a result for an unknown key is released at once."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._slots: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            self._slots.setdefault(key, []).append(index)
        self._held: dict[int, NodeResult] = {}
        self._next = 0
        self._size = len(keys)

    def arrived(self, key: str, result: NodeResult) -> list[NodeResult]:
        """Record ``result`` for ``key``; the results now releasable, in order."""
        slots = self._slots.get(key)
        if not slots:
            return [result]
        self._held[slots.pop(0)] = result
        ready = []
        while self._next in self._held:
            ready.append(self._held.pop(self._next))
            self._next += 1
        return ready

    def rest(self) -> list[NodeResult]:
        """Results still held behind a key that never arrived, in order."""
        ready = [self._held.pop(i) for i in sorted(self._held)]
        self._next = self._size
        return ready


class Reporter(Protocol):
    """Where command output goes; implemented by the shell (terminal and JSON)."""

    def begin(self, line: str) -> None: ...
    def text(self, text: str) -> None: ...
    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...
    def start(self, command: str, total: int) -> None: ...
    def result(self, result: NodeResult, text: str | None) -> None: ...
    def more(self, result: NodeResult, text: str) -> None:
        """More text (``"\n..."``) of a target whose row was already printed."""
    def finish(self, summary: Summary) -> None: ...
    def error(self, message: str) -> None: ...
    def end(self, ok: bool) -> None: ...


PassphraseSource = Callable[[bool], Awaitable[str]]
"""``await source(confirm)`` -> a passphrase (``confirm``: ask twice when saving)."""


def _message(raised: Exception, command: str) -> str:
    """The user's line for an exception from a command (unwrapping trio's groups)."""
    exc: BaseException = raised
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, SeashError):
        return str(exc)
    log.debug("%s failed unexpectedly", command, exc_info=raised)
    return f"internal error in '{command}': {type(exc).__name__}: {exc} (seash -v shows more)"


class Executor:
    """Executes lines; ``failed`` is set when any command (or any target) failed."""

    def __init__(self, root: Command, session: Session, reporter: Reporter, *, home: Path,
                 passphrase: PassphraseSource | None = None, pool: NodePool | None = None) -> None:
        self.root = root
        self.session = session
        self.reporter = reporter
        self.home = home
        self.passphrase = passphrase
        self.pool = pool if pool is not None else NodePool()
        self.failed = False
        self.exiting = False
        self._command_failed = False

    async def execute(self, line: str) -> bool:
        """Run one line (comments and blank lines are no-ops); True when it fully succeeded."""
        try:
            words = tokenize(line, self.session.variables)
        except SeashError as exc:
            self.reporter.begin(line)
            self.reporter.error(str(exc))
            self.reporter.end(False)
            self.failed = True
            return False
        if not words:
            return True
        self.reporter.begin(line)
        self._command_failed = False
        try:
            await self.run_words(words)
        except Exception as raised:  # one command's error (or bug) must not end the session
            self.reporter.error(_message(raised, words[0]))
            self._command_failed = True
        ok = not self._command_failed
        self.reporter.end(ok)
        self.failed |= not ok
        return ok

    async def run_words(self, words: Sequence[str]) -> None:
        """Resolve and run ``words`` (used by ``on``/``as`` for their trailing command)."""
        resolved = resolve(self.root, words)
        assert resolved.command.handler is not None
        await resolved.command.handler(self, resolved.args)

    def mark_failed(self) -> None:
        self._command_failed = True

    # ---- fan-out helpers for handlers ----

    def jobs(self, *, deadline: float | None = None) -> list[Job]:
        """One job per vessel of the current target."""
        session = self.session
        ids = session.resolve()
        if not ids:
            raise SeashError(f"target {session.target} has no vessels (use 'browse' or 'contact')")
        return [Job(f"%{n}", ref.host, ref.port, ref.vessel, ref.node_key, deadline)
                for n in sorted(ids) for ref in (session.vessels[n],)]

    async def fan(self, command: str, op: VesselOp, render: Render | None = None, *,
                  jobs: Sequence[Job] | None = None, identity: KeyPair | None = None,
                  groups: bool = True, quiet: bool = False,
                  paths: bool = False) -> list[NodeResult]:
        """Run ``op`` on every job (default: the current target), reporting in job order
        (``%N`` order): each result as soon as it and every earlier job's have arrived.

        With ``paths``, a line of a node not reached directly ends with its path:
        ``[relay H:P]``, or ``[punched]`` (direct through NATs after a relayed start)."""
        todo = list(self.jobs() if jobs is None else jobs)
        start = trio.current_time()
        self.reporter.start(command, len(todo))

        def report(result: NodeResult) -> None:
            if quiet and result.ok:
                self.reporter.result(result, None)
                return
            text = render(result.value) if render is not None and result.ok else None
            if paths and text is not None and result.path.startswith(("relay", "punched")):
                text = f"{text}  [{result.path}]"
            self.reporter.result(result, text)

        order = InOrder([job.target for job in todo])

        def sink(result: NodeResult) -> None:
            for ready in order.arrived(result.target, result):
                report(ready)

        results = await self.gather(op, todo, on_result=sink, identity=identity)
        for left in order.rest():  # results that never came (none expected): still shown
            report(left)
        self.conclude(command, results, start, groups=groups)
        return results

    async def gather(self, op: VesselOp, jobs: Sequence[Job] | None = None, *,
                     on_result: Callable[[NodeResult], None] | None = None,
                     identity: KeyPair | None = None) -> list[NodeResult]:
        """Run ``op`` on every job under the session's settings; report nothing (polling)."""
        todo = list(self.jobs() if jobs is None else jobs)
        key = identity if identity is not None else self.session.signing_key()
        settings = self.session.settings
        return await fan_out(self.pool, todo, op, identity=key,
                             limiter=trio.CapacityLimiter(max(1, settings.concurrency)),
                             timeout=settings.timeout, on_result=on_result)

    def conclude(self, command: str, results: Sequence[NodeResult], start: float, *,
                 groups: bool = True) -> None:
        """The summary line, the ``<command>good``/``fail`` groups, and the failed flag."""
        counts = {status: sum(1 for r in results if r.status == status)
                  for status in ("ok", "failed", "timeout")}
        self.reporter.finish(Summary(command, counts["ok"], counts["failed"], counts["timeout"],
                                     trio.current_time() - start))
        if groups:
            good = [int(r.target[1:]) for r in results if r.ok and r.target.startswith("%")]
            bad = [int(r.target[1:]) for r in results if not r.ok and r.target.startswith("%")]
            self.session.record_outcome(command, good, bad)
        if counts["ok"] != len(results):
            self.mark_failed()

    async def aclose(self) -> None:
        await self.pool.aclose()
