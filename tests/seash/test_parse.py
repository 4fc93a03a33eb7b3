"""parse.py: lines, scripts and small typed values."""

from __future__ import annotations

import pytest

from seash.errors import UsageError
from seash.parse import (
    MAX_EXPANDED_LINE,
    MAX_VARIABLE_VALUE,
    check_variable_name,
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


VARS = {"f": "a b; exit", "dir": "d", "empty": "", "cmd": "set owner bob", "q": "'\"$x#"}


@pytest.mark.parametrize(("line", "words"), [
    ("upload $f", ["upload", "a b; exit"]),            # one word, never split nor a separator
    ('cat "${dir}/x"', ["cat", "d/x"]),
    ("cat ${dir}x$dir", ["cat", "dxd"]),
    ("on %1 $cmd", ["on", "%1", "set owner bob"]),       # a value is never a second command
    ("cat $q", ["cat", "'\"$x#"]),                       # not read again for quotes, $ or #
    ("set e $empty", ["set", "e", ""]),                  # an empty value is still one word
    ("cat $$ \\$f '$f' \"\\$f\" a$$b", ["cat", "$", "$f", "$f", "$f", "a$b"]),
    ("cat $f # $undefined in a comment", ["cat", "a b; exit"]),
])
def test_variables_expand_to_exactly_one_word(line: str, words: list[str]) -> None:
    assert tokenize(line, VARS) == words


@pytest.mark.parametrize(("line", "message"), [
    ("cat $nope", "undefined variable \\$nope"),
    ("cat ${nope}", "undefined variable \\$nope"),
    ('cat "$nope"', "undefined variable \\$nope"),
    ("cat 5$", "lone '\\$'"),
    ("cat $-x", "lone '\\$'"),
    ("cat ${dir", "without a closing"),
    ("cat ${1x}", "cannot be a variable name"),
    ("cat ${}", "cannot be a variable name"),
    ("cat $" + "a" * 65, "cannot be a variable name"),
])
def test_variable_errors_are_clear(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        tokenize(line, VARS)


def test_expansion_is_bounded() -> None:
    big = {"b": "x" * (MAX_VARIABLE_VALUE)}
    line = "cat " + "$b" * (MAX_EXPANDED_LINE // MAX_VARIABLE_VALUE + 1)
    with pytest.raises(UsageError, match="longer than"):
        tokenize(line, big)
    assert len(tokenize("cat $b$b", big)[1]) == 2 * MAX_VARIABLE_VALUE


def test_without_variables_dollars_stay_as_written() -> None:
    assert tokenize("cat $x ${y}") == ["cat", "$x", "${y}"]


def test_split_script_honours_backslashes() -> None:
    assert split_script('set a \\; b; cat "x\\"; y"; d') == ["set a \\; b", 'cat "x\\"; y"', "d"]
    assert split_script("cat 'a\\'; b") == ["cat 'a\\'", "b"]


def test_variable_names() -> None:
    assert check_variable_name("_a1") == "_a1"
    for bad in ("1a", "a-b", "", "a" * 65, "a b", "é"):
        with pytest.raises(UsageError):
            check_variable_name(bad)
