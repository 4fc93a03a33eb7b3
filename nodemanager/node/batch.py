"""Carrying out a ``Batch`` (protocol revision 7, docs/protocol.md §16).

The batch was authenticated as one request (signature, time window). Its nonce is consumed
first, in its own transaction, so a replayed batch is refused whole and none of its calls
runs twice. Then the calls run in order, each through the same path as a request that came
alone (``execute``: its vessels, the requester's right on each, its preconditions, its own
transaction), except that they record no nonce of their own. One call's refusal or failure
becomes that call's entry and does not stop the others.

The answer must fit in one frame: once the entries hold ``RESULT_BYTES``, the remaining
calls are not carried out and are answered ``BatchFull`` (a client sends them again); a
read-only call whose result would overflow is answered so too (it changed nothing). A call
that changes state runs only with ``MUTATION_ROOM`` left, and its entry is always kept. The
first call always runs, as it would alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from nodemanager import errors
from nodemanager.proto.auth import Verified
from nodemanager.proto.messages import MAX_FILE_BYTES, Batch
from nodemanager.proto.wire import pack

log = logging.getLogger(__name__)

RESULT_BYTES = MAX_FILE_BYTES
"""Bytes of packed entries one batch answer may hold (the frame adds 64 KiB of envelope)."""
MUTATION_ROOM = 64 * 1024
"""Room a call that changes state must find left before it runs (its answer is small)."""
MESSAGE_CHARS = 8192
"""Error messages in entries are cut to this (a long compile error list stays readable,
and an entry of a call that changed state always fits in ``MUTATION_ROOM``)."""

Entry = dict[str, object]
Execute = Callable[[Verified], Awaitable[dict[str, object]]]


def ok_entry(result: Mapping[str, object]) -> Entry:
    return {"ok": True, "result": dict(result), "error": None}


def error_entry(exc: errors.RequestError) -> Entry:
    message = str(exc)[:MESSAGE_CHARS]
    return {"ok": False, "result": None, "error": {"code": exc.code, "message": message}}


def any_call_ok(result: Mapping[str, object]) -> bool:
    """Whether some call of a batch answer succeeded (what earns a connection trust)."""
    entries = result.get("results")
    return isinstance(entries, list) and any(
        isinstance(entry, dict) and entry.get("ok") is True for entry in entries)


async def run_batch(verified: Verified, execute: Execute,
                    consume_nonce: Callable[[Verified], None]) -> dict[str, object]:
    """Consume the batch's nonce, then carry out its calls in order; the answer's result."""
    batch = verified.request
    assert isinstance(batch, Batch)
    consume_nonce(verified)  # ReplayedNonce here refuses the whole batch
    entries: list[Entry] = []
    used = 0
    full = False
    for call in batch.calls:
        if full or (entries and call.mutates and used > RESULT_BYTES - MUTATION_ROOM):
            full = True
            entries.append(error_entry(errors.BatchFull("the batch's answer is full")))
            continue
        entry = await _one(replace(verified, request=call), execute)
        size = len(pack(entry))
        if entries and not call.mutates and used + size > RESULT_BYTES:
            full = True
            entry = error_entry(errors.BatchFull("the batch's answer is full"))
            size = len(pack(entry))
        used += size
        entries.append(entry)
    return {"results": entries}


async def _one(verified: Verified, execute: Execute) -> Entry:
    try:
        return ok_entry(await execute(verified))
    except errors.RequestError as exc:
        log.debug("refused batched call: %s: %s", exc.code, exc)
        return error_entry(exc)
    except Exception:
        log.exception("internal error in a batched %s", verified.request.op)
        return error_entry(errors.InternalError("internal error"))
