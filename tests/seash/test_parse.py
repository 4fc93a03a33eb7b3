"""parse.py: lines, scripts and small typed values."""

from __future__ import annotations

import pytest

from seash.errors import UsageError
from seash.parse import (
    parse_bool,
    parse_contact,
    parse_hostport,
    parse_positive,
    parse_vessel_address,
    split_script,
    tokenize,
)


def test_tokenize_quotes_and_comments() -> None:
    assert tokenize('upload "my file.py" x  # note') == ["upload", "my file.py", "x"]
    assert tokenize("") == []
    with pytest.raises(UsageError):
        tokenize('cat "unterminated')


def test_split_script_on_newlines_and_semicolons() -> None:
    script = 'genkeys a; browse\n# comment\n\nset ownerinfo "x; y"  # trailing\n'
    assert split_script(script) == ["genkeys a", "browse", 'set ownerinfo "x; y"']


@pytest.mark.parametrize(("text", "value"), [("on", True), ("OFF", False), ("yes", True), ("0", False)])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_bad_values_are_usage_errors() -> None:
    for call in (lambda: parse_bool("maybe"), lambda: parse_positive("-1", "t"),
                 lambda: parse_positive("x", "t"), lambda: parse_hostport("nope"),
                 lambda: parse_hostport("h:70000"), lambda: parse_vessel_address("h:1")):
        with pytest.raises(UsageError):
            call()


def test_addresses() -> None:
    assert parse_hostport("[::1]:80") == ("::1", 80)
    assert parse_vessel_address("10.0.0.1:1224:v3") == ("10.0.0.1", 1224, "v3")
    assert parse_contact("h:1") == ("h", 1, None)
    assert parse_contact("h:1:v2") == ("h", 1, "v2")
