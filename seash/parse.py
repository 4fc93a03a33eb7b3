"""Command lines -> tokens, and small typed argument parsers (pure).

A script is split into commands at newlines and at ``;`` outside quotes; ``#`` starts a
comment. Tokens follow POSIX shell quoting: ``'...'`` is literal, ``"..."`` keeps spaces,
a backslash escapes the next character::

    >>> split_script('browse; on %1 show log  # comment')
    ['browse', 'on %1 show log']
    >>> tokenize('upload "my file.py" prog.py')
    ['upload', 'my file.py', 'prog.py']

Variables (``set NAME VALUE``) are expanded while a line is split into words: ``$NAME`` and
``${NAME}`` outside single quotes become the value, ``$$``, ``\\$`` and ``'$'`` a literal
dollar sign. A value is always part of one word: it is never split at spaces nor read again
for quotes, ``;``, ``#`` or ``$``, so a variable cannot add a word or a command, and an
undefined one is an error, never an empty string::

    >>> tokenize('upload $file "${dir}/x"', {"file": "a b; exit", "dir": "d"})
    ['upload', 'a b; exit', 'd/x']
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from seash.errors import UsageError

TRUE_WORDS = frozenset({"on", "true", "yes", "1"})
FALSE_WORDS = frozenset({"off", "false", "no", "0"})

VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VARIABLE_NAME = 64
MAX_VARIABLE_VALUE = 64 * 1024
"""Characters of one variable's value."""
MAX_VARIABLES = 1000
MAX_EXPANDED_LINE = 1024 * 1024
"""Characters of one command line once its variables are expanded."""
_SPACE = " \t\r\n"


def check_variable_name(name: str) -> str:
    """A variable name: a letter or ``_``, then letters, digits or ``_`` (at most 64)."""
    if not VARIABLE_RE.fullmatch(name) or len(name) > MAX_VARIABLE_NAME:
        raise UsageError(f"{name[:80]!r} cannot be a variable name (a letter or '_', then "
                         f"letters, digits or '_'; at most {MAX_VARIABLE_NAME})")
    return name


def _lookup(name: str, variables: Mapping[str, str]) -> str:
    check_variable_name(name)
    try:
        return variables[name]
    except KeyError:
        raise UsageError(f"undefined variable ${name} (define it with 'set {name} VALUE'; "
                         "'show variables' lists them)") from None


def _dollar(line: str, at: int, variables: Mapping[str, str] | None) -> tuple[str, int]:
    """The text of the ``$`` form at ``line[at]`` and the index after it."""
    if variables is None:  # completion: keep the form as written
        return "$", at + 1
    following = line[at + 1: at + 2]
    if following == "$":
        return "$", at + 2
    if following == "{":
        end = line.find("}", at + 2)
        if end < 0:
            raise UsageError("'${' without a closing '}'")
        return _lookup(line[at + 2: end], variables), end + 1
    match = VARIABLE_RE.match(line, at + 1)
    if match is None:
        raise UsageError("a lone '$': write $$, \\$ or '$' for a dollar sign, "
                         "$NAME or ${NAME} for a variable")
    return _lookup(match.group(), variables), match.end()


def _double_quoted(line: str, at: int, variables: Mapping[str, str] | None,
                   out: list[str]) -> int:
    """Append the text of the ``"..."`` starting at ``line[at]``; the index after it."""
    index = at + 1
    while index < len(line):
        char = line[index]
        if char == '"':
            return index + 1
        if char == "\\" and line[index + 1: index + 2] in ('"', "\\", "$"):
            out.append(line[index + 1])
            index += 2
        elif char == "$":
            text, index = _dollar(line, index, variables)
            out.append(text)
        else:
            out.append(char)
            index += 1
    raise UsageError(f"cannot parse {line[:200]!r}: no closing quotation")


def tokenize(line: str, variables: Mapping[str, str] | None = None) -> list[str]:
    """Split one command line into words; ``#`` outside quotes starts a comment.

    With ``variables``, ``$NAME``/``${NAME}`` are expanded (module docstring); without,
    dollar signs are kept as written (tab completion).
    """
    words: list[str] = []
    current: list[str] = []
    in_word = False
    index = 0
    while index < len(line):
        char = line[index]
        if char in _SPACE:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            index += 1
            continue
        if char == "#":
            break
        in_word = True
        if char == "\\":
            if index + 1 >= len(line):
                raise UsageError(f"cannot parse {line[:200]!r}: no escaped character")
            current.append(line[index + 1])
            index += 2
        elif char == "'":
            end = line.find("'", index + 1)
            if end < 0:
                raise UsageError(f"cannot parse {line[:200]!r}: no closing quotation")
            current.append(line[index + 1: end])
            index = end + 1
        elif char == '"':
            index = _double_quoted(line, index, variables, current)
        elif char == "$":
            text, index = _dollar(line, index, variables)
            current.append(text)
        else:
            current.append(char)
            index += 1
    if in_word:
        words.append("".join(current))
    if variables is not None and sum(map(len, words)) > MAX_EXPANDED_LINE:
        raise UsageError(f"the line is longer than {MAX_EXPANDED_LINE} characters "
                         "once its variables are expanded")
    return words


def split_script(text: str) -> list[str]:
    """Split a script into command lines at newlines and unquoted, unescaped ``;`` (comments
    dropped)."""
    commands: list[str] = []
    for raw_line in text.splitlines():
        current: list[str] = []
        quote: str | None = None
        escaped = False
        for char in raw_line:
            if escaped:
                current.append(char)
                escaped = False
            elif char == "\\" and quote != "'":
                current.append(char)
                escaped = True
            elif quote is not None:
                current.append(char)
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
                current.append(char)
            elif char == "#":
                break
            elif char == ";":
                commands.append("".join(current))
                current = []
            else:
                current.append(char)
        commands.append("".join(current))
    return [command.strip() for command in commands if command.strip()]


def parse_bool(text: str) -> bool:
    """``on``/``off`` (and true/false, yes/no, 1/0) -> bool."""
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UsageError(f"expected on or off, got {text!r}")


def parse_positive(text: str, what: str) -> float:
    """A positive finite number, e.g. a timeout in seconds."""
    try:
        value = float(text)
    except ValueError as exc:
        raise UsageError(f"{what} must be a number, got {text!r}") from exc
    if not 0 < value < 1e9:
        raise UsageError(f"{what} must be a positive number, got {text!r}")
    return value


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); IPv6 hosts may be bracketed."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_vessel_address(text: str) -> tuple[str, int, str]:
    """``HOST:PORT:VESSEL`` -> (host, port, vessel)."""
    rest, sep, vessel = text.rpartition(":")
    if not sep or not vessel:
        raise UsageError(f"expected HOST:PORT:VESSEL, got {text!r}")
    host, port = parse_hostport(rest)
    return host, port, vessel


def parse_contact(text: str) -> tuple[str, int, str | None]:
    """``HOST:PORT`` or ``HOST:PORT:VESSEL`` (vessel names start with a letter)."""
    rest, sep, last = text.rpartition(":")
    if sep and last and not last.isdigit():
        host, port = parse_hostport(rest)
        return host, port, last
    host, port = parse_hostport(text)
    return host, port, None
