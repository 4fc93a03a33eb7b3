"""Nothing seash prints can steer the terminal: text from nodes and programs is escaped."""

from __future__ import annotations

import io

from seash.client import NodeResult
from seash.shell import ConsoleReporter, printable

HOSTILE = "lab\x1b]0;owned\x07\x1b[2J\u202etxt.exe\x9b"


def test_printable_escapes_controls_but_keeps_lines_and_tabs() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable(HOSTILE) == "lab\\x1b]0;owned\\x07\\x1b[2J\\u202etxt.exe\\x9b"


def test_console_output_carries_no_escape_from_a_node() -> None:
    for terminal in (False, True):
        out, err = io.StringIO(), io.StringIO()
        reporter = ConsoleReporter(out=out, err=err, terminal=terminal)
        reporter.text(HOSTILE)
        reporter.table("vessels", ["name", "info"], [["v1", HOSTILE]])
        reporter.result(NodeResult("%1", "127.0.0.1:1", "ok"), HOSTILE)
        reporter.result(NodeResult("%2", "127.0.0.1:1", "failed", error=HOSTILE), None)
        reporter.error(HOSTILE)
        printed = out.getvalue() + err.getvalue()
        assert printed.count("owned") == 5
        for forbidden in ("\x07", "\x9b", "\u202e", "\x1b]", "\x1b[2J"):
            assert forbidden not in printed, (terminal, forbidden)
