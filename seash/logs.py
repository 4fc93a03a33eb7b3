"""``show log``: each byte of each vessel's log printed once, gaps said, restarts noticed.

A node numbers every byte a program logs (ReadVesselLog ``since``/``start``/``total``). A
``LogReader`` keeps, per target, the offset it has read up to and asks only for what
follows; bytes the node's bounded log dropped in between are reported as a gap line
(``[... 83,968 bytes not kept ...]``). An answer whose ``total`` is below our offset means
a new run of the program (a new start clears the log): reading starts over at 0.

Following holds a partial last line back until its newline, so every printed line is whole
and can carry its vessel prefix; the held text is printed when following ends. A vessel's
row (its header) is printed once, with its first text; its later text follows as more lines
(``%N | ...``), and the command's summary comes once, when following ends.
"""

from __future__ import annotations

import codecs
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import trio

from nodemanager import LogChunk, NodeClient
from seash.client import Job, NodeResult
from seash.commands import Args
from seash.discovery import node_info_op
from seash.executor import Executor
from seash.files import per_vessel_path, write_local
from seash.parse import parse_positive

FOLLOW_INTERVAL = 0.5
RESTARTED = "[... the program was started again: its log starts over ...]"


def gap_line(dropped: int) -> str:
    """The line shown where the node did not keep ``dropped`` bytes."""
    return f"[... {dropped:,} bytes not kept ...]"


def _utf8() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("replace")


@dataclass(slots=True)
class LogStream:
    """What has been read of one vessel's log (pure: fed ``LogChunk``s, returns text)."""

    offset: int = 0
    run: str | None = None
    """The program run being followed (None before the first read)."""
    decoder: codecs.IncrementalDecoder = field(default_factory=_utf8)
    partial: str = ""

    def take(self, chunk: LogChunk, *, whole_lines: bool) -> str:
        """The text of ``chunk`` (read with ``since=self.offset``), gap lines included; with
        ``whole_lines`` an unfinished last line is held back for the next chunk."""
        text = self.partial
        if chunk.dropped:
            self.decoder = _utf8()  # a character cut by the gap cannot be completed
            text += ("\n" if text and not text.endswith("\n") else "") + gap_line(chunk.dropped) + "\n"
        text += self.decoder.decode(chunk.data)
        self.offset = chunk.total
        self.run = chunk.run
        self.partial = ""
        if whole_lines and not text.endswith("\n"):
            text, _, self.partial = text.rpartition("\n")
            text += "\n" if text else ""
        return text

    def flush(self) -> str:
        """Whatever was held back (the unfinished last line)."""
        text, self.partial = self.partial + self.decoder.decode(b"", final=True), ""
        return text


class LogReader:
    """Per-target ``LogStream``s and the fan-out operation that advances them."""

    def __init__(self, *, whole_lines: bool) -> None:
        self.whole_lines = whole_lines
        self.streams: dict[str, LogStream] = {}

    async def read(self, client: NodeClient, job: Job) -> str:
        """A VesselOp: the new text of ``job``'s log since the last read."""
        stream = self.streams.setdefault(job.target, LogStream())
        chunk = await client.read_log_since(job.vessel, stream.offset, stream.run)
        prefix = ""
        if chunk.restarted:  # a new run: its stream starts at 0 again
            prefix = stream.flush() + RESTARTED + "\n"
            stream = self.streams[job.target] = LogStream()
            chunk = await client.read_log_since(job.vessel, 0)
        return prefix + stream.take(chunk, whole_lines=self.whole_lines)


def _block(text: object) -> str | None:
    """A result's text as a block below its row; nothing for no new text."""
    body = str(text).rstrip("\n")
    return "\n" + body if body else None


def _once_text(text: object) -> str:
    return _block(text) or "(log is empty)"


async def show_log(ex: Executor, args: Args) -> None:
    if args.get("file") is not None:
        await _log_to_files(ex, args.need("file"))
        return
    limit = args.option("--for")
    seconds = parse_positive(limit, "--for") if limit else None
    if not args.flag("--follow") and seconds is None:
        await ex.fan("log", LogReader(whole_lines=False).read, _once_text)
        return
    await _show_following(ex, seconds)


class _Printer:
    """Following: a vessel's header once (its first text or its failure), later text of it
    as more lines under that header."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.headed: set[str] = set()

    def first(self, result: NodeResult) -> None:
        """A result of the first round (every target reports, for the progress count)."""
        if result.ok and not result.value:
            self.ex.reporter.result(result, None)
        else:
            self.later(result)

    def later(self, result: NodeResult) -> None:
        text = _block(result.value) if result.ok else None
        if result.ok and text is None:
            return
        if result.target in self.headed and text is not None:
            self.ex.reporter.more(result, text)
            return
        self.headed.add(result.target)
        self.ex.reporter.result(result, text)


async def _show_following(ex: Executor, seconds: float | None) -> None:
    """``show log --follow`` / ``--for``: the summary comes once, when following ends."""
    reader = LogReader(whole_lines=True)
    printer = _Printer(ex)
    jobs = ex.jobs()
    start = trio.current_time()
    ex.reporter.start("log", len(jobs))
    results = await ex.gather(reader.read, jobs, on_result=printer.first)
    with trio.move_on_after(seconds if seconds is not None else float("inf")):
        await _follow(ex, reader, printer, [j for j, r in zip(jobs, results, strict=True) if r.ok])
    for result in results:
        stream = reader.streams.get(result.target)
        held = stream.flush() if stream is not None else ""
        if held:
            printer.later(dataclasses.replace(result, value=held))
    ex.conclude("log", results, start)


async def _follow(ex: Executor, reader: LogReader, printer: _Printer, jobs: list[Job]) -> None:
    """Poll the jobs' logs until every program has ended (then read the rest once)."""
    while jobs:
        await trio.sleep(FOLLOW_INTERVAL)
        running = await _running(ex, jobs)
        for result in await ex.gather(reader.read, jobs):
            if result.ok:
                printer.later(result)
        jobs = [job for job in jobs if job.target in running]


async def _running(ex: Executor, jobs: list[Job]) -> set[str]:
    """Targets whose program still runs (or that did not answer: keep asking them)."""
    results = await ex.gather(node_info_op(), jobs)
    return {r.target for r in results if not r.ok or r.value.status == "Started"}


async def _log_to_files(ex: Executor, local: str) -> None:
    """``show log to FILE``: each vessel's kept log into ``FILE.<host>_<port>_<vessel>``."""
    async def op(client: NodeClient, job: Job) -> str:
        chunk = await client.read_log_since(job.vessel, 0)
        path: Path = per_vessel_path(local, job)
        await write_local(path, chunk.data)
        note = f" (the {chunk.dropped:,} bytes before them were not kept)" if chunk.dropped else ""
        return f"{len(chunk.data)} bytes -> {path}{note}"

    await ex.fan("log", op, str)
