"""logs.py: each byte once, gaps said, restarts noticed (pure ``LogStream``)."""

from __future__ import annotations

from nodemanager import LogChunk
from seash.logs import LogStream, gap_line


def chunk(data: bytes, start: int, since: int) -> LogChunk:
    return LogChunk(data=data, start=start, total=start + len(data), since=since)


def test_each_byte_once_and_whole_lines() -> None:
    stream = LogStream()
    assert stream.take(chunk(b"one\ntw", 0, 0), whole_lines=True) == "one\n"
    assert stream.offset == 6
    assert stream.take(chunk(b"", 6, 6), whole_lines=True) == ""
    assert stream.take(chunk(b"o\nthr", 6, 6), whole_lines=True) == "two\n"
    assert stream.flush() == "thr"
    assert stream.take(chunk(b"ee\n", 11, 11), whole_lines=False) == "ee\n"


def test_a_gap_is_one_line_with_the_count() -> None:
    stream = LogStream(offset=10)
    text = stream.take(chunk(b"tail\n", 83_978, 10), whole_lines=False)
    assert text == gap_line(83_968) + "\n" + "tail\n"
    assert gap_line(83_968) == "[... 83,968 bytes not kept ...]"
    held = LogStream(offset=0)
    assert held.take(chunk(b"half", 0, 0), whole_lines=True) == ""
    assert held.take(chunk(b"rest\n", 100, 4), whole_lines=True) == (
        "half\n" + gap_line(96) + "\nrest\n")


def test_a_character_split_between_chunks() -> None:
    stream = LogStream()
    data = "héllo\n".encode()
    assert stream.take(chunk(data[:2], 0, 0), whole_lines=False) == "h"
    assert stream.take(chunk(data[2:], 2, 2), whole_lines=False) == "éllo\n"


def test_a_restart_is_noticed_by_its_run_name_even_when_longer() -> None:
    stream = LogStream()
    first = LogChunk(data=b"abc\n", start=0, total=4, since=0, run="r1")
    assert stream.take(first, whole_lines=False) == "abc\n"
    assert stream.run == "r1"
    again = LogChunk(data=b"", start=4, total=9, since=4, run="r2", previous_run=stream.run)
    assert again.restarted  # the new run already wrote more than was read of the old one
    same = LogChunk(data=b"x", start=4, total=5, since=4, run="r1", previous_run="r1")
    assert not same.restarted
    legacy = LogChunk(data=b"", start=0, total=2, since=4)  # a node before revision 5
    assert legacy.restarted
