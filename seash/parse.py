"""Command lines -> tokens, and small typed argument parsers (pure).

A script is split into commands at newlines and at ``;`` outside quotes; ``#`` starts a
comment. Tokens follow POSIX shell quoting (``shlex``)::

    >>> split_script('browse; on %1 show log  # comment')
    ['browse', 'on %1 show log']
    >>> tokenize('upload "my file.py" prog.py')
    ['upload', 'my file.py', 'prog.py']
"""

from __future__ import annotations

import shlex

from seash.errors import UsageError

TRUE_WORDS = frozenset({"on", "true", "yes", "1"})
FALSE_WORDS = frozenset({"off", "false", "no", "0"})


def tokenize(line: str) -> list[str]:
    """Split one command line into words; ``#`` outside quotes starts a comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line!r}: {exc}") from exc


def split_script(text: str) -> list[str]:
    """Split a script into command lines at newlines and unquoted ``;`` (comments dropped)."""
    commands: list[str] = []
    for raw_line in text.splitlines():
        current: list[str] = []
        quote: str | None = None
        for char in raw_line:
            if quote is not None:
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
