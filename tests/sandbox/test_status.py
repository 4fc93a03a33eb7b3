"""The runner/supervisor status channel, alone: round trips and hostile lines."""

from __future__ import annotations

import pytest

from sandbox.process.status import (
    MAX_LINE,
    CompileError,
    Exit,
    Ready,
    StatusLines,
    UsageReport,
    encode_event,
    parse_event,
)


def test_each_event_round_trips() -> None:
    assert parse_event(encode_event("ready", protection="uid+nnp", rss=123).rstrip()) == \
        Ready("uid+nnp", 123)
    assert parse_event(encode_event("compile_error", errors=["Line 2: no"])) == \
        CompileError(("Line 2: no",))
    assert parse_event(encode_event("usage", usage={"fileread": 10, "lograte": 2.5})) == \
        UsageReport({"fileread": 10.0, "lograte": 2.5})
    assert parse_event(encode_event("exit", code=6, reason="uncaught")) == Exit(6, "uncaught")


@pytest.mark.parametrize("line", [
    b"", b"not json", b"[1, 2]", b'"ready"', b'{"event": "ready"}', b'{"event": "nope"}',
    b'{"event": "exit", "code": "6"}', b'{"event": "exit", "code": true}',
    b'{"event": "compile_error", "errors": "Line 1"}', b'{"event": "usage", "usage": [1]}',
    b'{"event": ["ready"]}', b"[" * 100_000, b'{"event": "ready", "protection": 7}',
])
def test_malformed_lines_are_dropped(line: bytes) -> None:
    assert parse_event(line) is None


def test_values_are_bounded_and_coerced() -> None:
    event = parse_event(encode_event("compile_error", errors=["x" * 5000] * 500))
    assert isinstance(event, CompileError)
    assert len(event.errors) == 50 and all(len(e) == 500 for e in event.errors)
    assert parse_event(encode_event("ready", protection="p", rss=-5)) == Ready("p", 0)
    assert parse_event(encode_event("compile_error", errors=[])) == CompileError(("compile error",))
    usage = parse_event(encode_event("usage", usage={"a": 1, "b": "2", "c": None, "d": True}))
    assert usage == UsageReport({"a": 1.0})


def test_lines_split_across_chunks_and_oversized_lines_skipped() -> None:
    lines = StatusLines()
    assert lines.feed(b'{"event": "ex') == []
    assert lines.feed(b'it", "code": 0}\n{"a"') == [b'{"event": "exit", "code": 0}']
    assert lines.feed(b": 1}\n") == [b'{"a": 1}']
    assert lines.feed(b"y" * (MAX_LINE + 10)) == []  # dropped, and its tail too:
    assert lines.feed(b"y" * 100 + b"\nnext\n") == [b"next"]
    assert lines.feed(b"z" * (MAX_LINE + 1) + b"\nafter\n") == [b"after"]
