"""Batches on the client side (protocol revision 7, docs/protocol.md §16).

``call_batch`` sends several calls on vessels of one node as one signed ``Batch`` and
returns one outcome per call: its result map, or the ``RequestError`` the node answered for
that call. ``Batcher`` lets ordinary code batch without knowing it: several tasks, each
written against a ``NodeClient`` (``await client.list_files(vessel)``), get a
``BatchedClient`` instead; whenever every task that has not finished waits for an answer,
their calls go out together, as few frames as the limits allow, and each task gets its own
outcome back. Against a node older than revision 7 (it answers ``UnknownOperation``) the
calls are sent one by one, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from nodemanager.errors import (
    BadResponse,
    BatchFull,
    NodeManagerError,
    RequestError,
    UnknownOperation,
    error_for_code,
)
from nodemanager.proto import messages as m
from nodemanager.proto.client import NodeClient, NodeInfo, node_info
from nodemanager.proto.messages import MAX_BATCH_CALLS, MAX_FILE_BYTES, Batch, Request, batchable

Outcome = dict[str, Any] | RequestError
"""A call's result map, or the error the node answered for it."""
REQUEST_BYTES = MAX_FILE_BYTES
"""Estimated argument bytes one batch request may carry (the frame adds 64 KiB)."""


def read_results(result: dict[str, Any], count: int) -> list[Outcome]:
    """The outcomes of a batch answer's ``results``; BadResponse unless there are ``count``."""
    entries = result.get("results")
    if type(entries) is not list or len(entries) != count:
        raise BadResponse(f"a batch of {count} calls was answered with "
                          f"{len(entries) if type(entries) is list else 'no'} results")
    outcomes: list[Outcome] = []
    for entry in entries:
        if not isinstance(entry, dict) or type(entry.get("ok")) is not bool:
            raise BadResponse("a batch result entry is not an {ok, result, error} map")
        if entry["ok"]:
            if not isinstance(entry.get("result"), dict):
                raise BadResponse("a successful batch entry has no result map")
            outcomes.append(dict(entry["result"]))
            continue
        error = entry.get("error")
        if not isinstance(error, dict) or not all(
                type(error.get(key)) is str for key in ("code", "message")):
            raise BadResponse("a failed batch entry has no code and message")
        outcomes.append(error_for_code(error["code"], error["message"]))
    return outcomes


async def call_batch(client: NodeClient, requests: Sequence[Request]) -> list[Outcome]:
    """Send ``requests`` (operations on vessels of the client's node) as one signed Batch.

    Raises what a single call raises when the batch as a whole is refused (the node is too
    old: ``UnknownOperation``; ``ReplayedNonce``, ``ConnectionFailed``, ...).
    """
    result = await client.call(Batch(calls=tuple(requests)), sign=True)
    return read_results(result, len(requests))


def _weight(request: Request) -> int:
    """A request's argument bytes, roughly (data, text), for splitting batches by size."""
    total = 256
    for value in request.to_args().values():
        if isinstance(value, bytes | str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(item) + 8 for item in value if isinstance(item, bytes | str))
    return total


def split(requests: Sequence[_Call]) -> list[list[_Call]]:
    """Consecutive groups of at most MAX_BATCH_CALLS calls and REQUEST_BYTES each."""
    groups: list[list[_Call]] = []
    weight = 0
    for call in requests:
        size = _weight(call.request)
        if not groups or len(groups[-1]) >= MAX_BATCH_CALLS or weight + size > REQUEST_BYTES:
            groups.append([])
            weight = 0
        groups[-1].append(call)
        weight += size
    return groups


@dataclass(eq=False)
class _Call:
    request: Request
    sign: bool | None
    timeout: float
    done: trio.Event = field(default_factory=trio.Event)
    outcome: Outcome | NodeManagerError | None = None

    def settle(self, outcome: Outcome | NodeManagerError) -> None:
        if not self.done.is_set():
            self.outcome = outcome
            self.done.set()


@dataclass(eq=False)
class _Shared:
    done: trio.Event = field(default_factory=trio.Event)
    value: NodeInfo | None = None
    error: NodeManagerError | None = None


class BatchedClient(NodeClient):
    """A ``NodeClient`` for one task of a ``Batcher``: its typed calls (``list_files``...)
    are queued and answered by the batcher; it owns no connection of its own."""

    def __init__(self, batcher: Batcher, base: NodeClient) -> None:
        # Deliberately not NodeClient.__init__: this object never touches a stream; it only
        # reuses the typed methods, which all go through ``call``.
        self._batcher = batcher
        self.identity = base.identity
        self.node_key = base.node_key
        self.timeout = base.timeout
        self.path = base.path
        self._clock = base._clock  # a call bound to its own moment (AcquireVessel) reads it
        self._broken = False

    async def call(self, request: m.Request, *, sign: bool | None = None,
                   timestamp: float | None = None) -> dict[str, Any]:
        if timestamp is not None:  # bound to its own moment (a pool consent): sent alone
            return await self._batcher.client.call(request, sign=sign, timestamp=timestamp)
        return await self._batcher.submit(request, sign, self.timeout)

    async def get_vessels(self, *, sign: bool | None = None) -> NodeInfo:
        """One GetVessels for every task asking at the same moment, decoded once (a
        node's answer lists all its vessels: each task decoding it cost N^2)."""
        return await self._batcher.node_info(sign, self.timeout)

    async def aclose(self) -> None:
        """Nothing to close: the batcher's connection belongs to its owner."""


Task = Callable[[NodeClient], Awaitable[None]]


class Batcher:
    """Runs tasks against one connection, sending their calls together (see the module)."""

    def __init__(self, client: NodeClient, *, batches: bool = True) -> None:
        self.client = client
        self.batches = batches
        """False once the node answered that it does not know ``Batch`` (or if told so)."""
        self._queued: list[_Call] = []
        self._active = 0
        self._sent = 0
        self._wake = trio.Event()
        self._joined = 0
        """Tasks waiting for a GetVessels another task asked for (they count as queued)."""
        self._infos: dict[bool | None, _Shared] = {}
        self.frames = 0
        """Request frames sent (batches and single calls): for tests and benchmarks."""

    async def run(self, tasks: Sequence[Task]) -> None:
        """Run every task with its own ``BatchedClient`` until all have finished."""
        self._active = len(tasks)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flusher)
            for task in tasks:
                nursery.start_soon(self._run_task, task)

    async def _run_task(self, task: Task) -> None:
        try:
            await task(BatchedClient(self, self.client))
        finally:
            self._active -= 1
            self._check()

    async def submit(self, request: Request, sign: bool | None, timeout: float) -> dict[str, Any]:
        call = _Call(request, sign, timeout)
        self._queued.append(call)
        self._check()
        try:
            await call.done.wait()
        except trio.Cancelled:
            if call in self._queued:  # not sent yet: forget it
                self._queued.remove(call)
                self._check()
            raise
        outcome = call.outcome
        if isinstance(outcome, NodeManagerError):
            raise outcome
        assert outcome is not None
        return outcome

    def _check(self) -> None:
        """Wake the flusher when every unfinished task waits for an answer."""
        waiting = len(self._queued) + self._sent + self._joined
        if (self._queued and waiting >= self._active) or not self._active:
            self._wake.set()

    async def node_info(self, sign: bool | None, timeout: float) -> NodeInfo:
        """GetVessels, shared by the tasks that ask while it is on its way."""
        shared = self._infos.get(sign)
        if shared is not None:
            self._joined += 1
            self._check()
            try:
                await shared.done.wait()
            finally:
                self._joined -= 1
        else:
            shared = self._infos[sign] = _Shared()
            try:
                shared.value = node_info(await self.submit(m.GetVessels(), sign, timeout))
            except NodeManagerError as exc:
                shared.error = exc
            finally:
                del self._infos[sign]
                shared.done.set()
        if shared.value is None:
            raise shared.error or BadResponse("GetVessels was given up")
        return shared.value

    async def _flusher(self) -> None:
        while self._active:
            await self._wake.wait()
            self._wake = trio.Event()
            if not self._queued:
                continue
            calls, self._queued = self._queued, []
            self._sent += len(calls)
            try:
                await self._send(calls)
            finally:
                self._sent -= len(calls)
                for call in calls:
                    call.settle(BadResponse("the batch was given up"))

    async def _send(self, calls: list[_Call]) -> None:
        """Answer ``calls``: node-wide ones alone (equal read-only ones once), the rest in
        batches."""
        grouped = [call for call in calls if batchable(type(call.request))
                   and call.sign is not False and self.client.identity is not None]
        singles: dict[object, list[_Call]] = {}
        for call in calls:
            if call not in grouped:
                key = (call.request, call.sign) if not call.request.mutates else call
                singles.setdefault(key, []).append(call)
        for same in singles.values():
            await self._single(same)
        for group in split(grouped):
            await self._batch(group)

    async def _single(self, calls: list[_Call]) -> None:
        first = calls[0]
        self.frames += 1
        self.client.timeout = first.timeout
        try:
            outcome: Outcome | NodeManagerError = await self.client.call(
                first.request, sign=first.sign)
        except NodeManagerError as exc:
            outcome = exc
        for call in calls:
            call.settle(dict(outcome) if isinstance(outcome, dict) else outcome)

    async def _batch(self, calls: list[_Call]) -> None:
        if len(calls) == 1 or not self.batches:
            for call in calls:
                await self._single([call])
            return
        self.frames += 1
        # one answer for all: the node carries the calls out one after another, so the
        # calls that change state (uploads, starts: the slow ones) have their deadlines
        # added up; read-only calls are quick and count once, with the longest deadline
        changes = sum(call.timeout for call in calls if call.request.mutates)
        self.client.timeout = max(changes, *(call.timeout for call in calls))
        try:
            outcomes = await call_batch(self.client, [call.request for call in calls])
        except UnknownOperation:  # a node before revision 7
            self.batches = False
            await self._batch(calls)
            return
        except NodeManagerError as exc:
            for call in calls:
                call.settle(exc)
            return
        again = []
        for call, outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, BatchFull):
                again.append(call)
            else:
                call.settle(outcome)
        if again:
            await self._batch(again)
