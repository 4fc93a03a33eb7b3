"""The command tree: one declaration drives dispatch, help and tab completion (pure).

A ``Command`` has a name, aliases, help text, typed ``Arg``s, ``Option``s and children.
``resolve`` walks the tree along the words of a line and binds the remaining words to the
node's arguments; ``complete`` walks the same tree to propose the next word; ``usage`` and
``help_text`` render it. Argument *kinds* (target, identity, group, path, ...) tell the
completer where candidates come from, so the tree itself holds no state.

Example::

    >>> show = Command("show", help="show things", children=(
    ...     Command("log", help="read the log", handler=None, options=(Option("--follow"),)),))
    >>> root = Command("", children=(show,))
    >>> usage(resolve(root, ["show", "log"]).path, resolve(root, ["show", "log"]).command)
    'show log [--follow]'
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from seash.errors import UsageError

ArgKind = Literal["word", "target", "identity", "group", "path", "keyname", "hostport",
                  "bool", "number", "text", "command"]
Handler = Callable[[Any, "Args"], Awaitable[None]]
"""``async def handler(context, args)``; the context type belongs to the executor."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument. ``keyword`` args are written ``KEYWORD VALUE`` anywhere on the line."""

    name: str
    kind: ArgKind = "word"
    optional: bool = False
    many: bool = False
    keyword: str | None = None


@dataclass(frozen=True, slots=True)
class Option:
    """A ``--flag`` or, with ``value``, a ``--name VALUE`` option."""

    name: str
    value: str | None = None
    help: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str = ""
    handler: Handler | None = None
    args: tuple[Arg, ...] = ()
    children: tuple[Command, ...] = ()
    aliases: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()

    def child(self, word: str) -> Command | None:
        for child in self.children:
            if word == child.name or word in child.aliases:
                return child
        return None

    def names(self) -> list[str]:
        """Names and aliases of the children (what may follow this command)."""
        return [name for child in self.children for name in (child.name, *child.aliases)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest choice to a mistyped ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class Args:
    """Bound arguments of one invocation."""

    values: dict[str, str | list[str] | None] = field(default_factory=dict)
    options: dict[str, str | bool] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        if isinstance(value, list):
            return " ".join(value)
        return value

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise UsageError(f"missing {name.upper()}")
        return value

    def many(self, name: str) -> list[str]:
        value = self.values.get(name)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def flag(self, name: str) -> bool:
        return bool(self.options.get(name, False))

    def option(self, name: str) -> str | None:
        value = self.options.get(name)
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A line resolved against the tree."""

    path: tuple[str, ...]
    command: Command
    args: Args


def _walk(root: Command, words: Sequence[str]) -> tuple[list[str], Command, int]:
    node, path, index = root, [], 0
    while index < len(words):
        child = node.child(words[index])
        if child is None:
            break
        node = child
        path.append(child.name)
        index += 1
    return path, node, index


def _split_options(command: Command, words: Sequence[str]) -> tuple[list[str], dict[str, str | bool]]:
    if not command.options or any(arg.kind == "command" for arg in command.args):
        return list(words), {}
    known = {option.name: option for option in command.options}
    rest: list[str] = []
    options: dict[str, str | bool] = {}
    index = 0
    while index < len(words):
        word = words[index]
        option = known.get(word)
        if option is None and word.startswith("--") and len(word) > 2:
            hint = did_you_mean(word, known) or " (see 'help')"
            raise UsageError(f"unknown option {word}{hint}")
        if option is None:
            rest.append(word)
        elif option.value is None:
            options[option.name] = True
        elif index + 1 < len(words):
            index += 1
            options[option.name] = words[index]
        else:
            raise UsageError(f"option {word} needs a {option.value}")
        index += 1
    return rest, options


def bind(command: Command, words: Sequence[str], path: Sequence[str] = ()) -> Args:
    """Bind words to ``command``'s arguments; raise UsageError with the usage line."""
    where = usage(path, command)
    rest, options = _split_options(command, words)
    values: dict[str, str | list[str] | None] = {}
    for arg in command.args:
        if arg.keyword is not None and arg.keyword in rest:
            at = rest.index(arg.keyword)
            if at + 1 >= len(rest):
                raise UsageError(f"'{arg.keyword}' needs a {arg.name.upper()}; usage: {where}")
            values[arg.name] = rest[at + 1]
            del rest[at: at + 2]
    for arg in command.args:
        if arg.keyword is not None:
            if arg.name not in values and not arg.optional:
                raise UsageError(f"missing '{arg.keyword} {arg.name.upper()}'; usage: {where}")
            values.setdefault(arg.name, None)
        elif arg.many:
            if not rest and not arg.optional:
                raise UsageError(f"missing {arg.name.upper()}; usage: {where}")
            values[arg.name] = list(rest) if rest else None
            rest = []
        elif rest:
            values[arg.name] = rest.pop(0)
        elif arg.optional:
            values[arg.name] = None
        else:
            raise UsageError(f"missing {arg.name.upper()}; usage: {where}")
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}; usage: {where}")
    return Args(values, options)


def resolve(root: Command, words: Sequence[str]) -> Resolved:
    """Find the command named by the leading words and bind the rest."""
    if not words:
        raise UsageError("empty command")
    path, node, index = _walk(root, words)
    if node is root:
        hint = did_you_mean(words[0], root.names()) or " (type 'help')"
        raise UsageError(f"unknown command {words[0]!r}{hint}")
    if node.handler is None:
        choices = ", ".join(child.name for child in node.children)
        got = ""
        if index < len(words):
            got = did_you_mean(words[index], node.names()) or f" (got {words[index]!r})"
        raise UsageError(f"'{' '.join(path)}' needs one of: {choices}{got}")
    return Resolved(tuple(path), node, bind(node, words[index:], path))


def usage(path: Sequence[str], command: Command) -> str:
    parts = [" ".join(path)]
    for arg in command.args:
        name = arg.name.upper() + ("..." if arg.many else "")
        text = f"{arg.keyword} {name}" if arg.keyword else name
        parts.append(f"[{text}]" if arg.optional else text)
    for option in command.options:
        parts.append(f"[{option.name}{' ' + option.value if option.value else ''}]")
    return " ".join(parts)


def iter_commands(node: Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    """Every command with a handler, depth first, with its path."""
    out: list[tuple[tuple[str, ...], Command]] = []
    for child in node.children:
        here = (*path, child.name)
        if child.handler is not None:
            out.append((here, child))
        out.extend(iter_commands(child, here))
    return out


def help_text(root: Command, words: Sequence[str] = ()) -> str:
    """``help`` (a summary of everything) or ``help CMD...`` (usage, text, subcommands)."""
    if not words:
        rows = iter_commands(root)
        width = max(len(usage(p, c)) for p, c in rows)
        lines = [f"  {usage(p, c):<{width}}  {c.help.splitlines()[0] if c.help else ''}" for p, c in rows]
        return "Commands (help CMD for details):\n" + "\n".join(lines)
    path, node, _ = _walk(root, words)
    if node is root:
        hint = did_you_mean(words[0], root.names()) or " (type 'help')"
        raise UsageError(f"no command {' '.join(words)!r}{hint}")
    lines = []
    if node.handler is not None:
        lines += [f"usage: {usage(path, node)}", "", node.help]
        lines += [f"  {o.name}{' ' + o.value if o.value else ''}: {o.help}" for o in node.options]
        if node.aliases:
            lines.append(f"aliases: {', '.join(node.aliases)}")
    elif node.help:
        lines.append(node.help)
    if node.children:
        lines += ["", "subcommands:"]
        lines += [f"  {usage((*path, c.name), c)}  {c.help.splitlines()[0] if c.help else ''}"
                  for c in node.children]
    return "\n".join(line for line in lines).strip()


Candidates = Callable[[ArgKind], Sequence[str]]


def complete(root: Command, words: Sequence[str], prefix: str, candidates: Candidates) -> list[str]:
    """Possible next words after ``words`` that start with ``prefix`` (sorted, unique)."""
    _, node, index = _walk(root, words)
    rest = list(words[index:])
    options: list[str] = []
    if node is root or (node.children and not rest):
        options += [c.name for c in node.children]
    if node is not root and node.handler is not None:
        options += _complete_args(root, node, rest, prefix, candidates)
    return sorted({word for word in options if word.startswith(prefix)})


def _complete_args(root: Command, node: Command, rest: list[str], prefix: str,
                   candidates: Candidates) -> list[str]:
    if rest and rest[-1] in {o.name for o in node.options if o.value}:
        return []
    keyword_args = {a.keyword: a for a in node.args if a.keyword}
    if rest and rest[-1] in keyword_args:
        return list(candidates(keyword_args[rest[-1]].kind))
    positional = [a for a in node.args if a.keyword is None]
    plain = [w for w in rest if not w.startswith("--")]
    used = 0
    skip = False
    for word in plain:
        if skip:
            skip = False
        elif word in keyword_args:
            skip = True
        else:
            used += 1
    out: list[str] = [o.name for o in node.options if prefix.startswith("-")]
    slot = min(used, len(positional) - 1) if positional else -1
    if slot >= 0 and (used < len(positional) or positional[-1].many):
        arg = positional[slot]
        if arg.kind == "command":
            return complete(root, plain[slot:], prefix, candidates)
        out += candidates(arg.kind)
    if used >= sum(1 for a in positional if not a.optional):
        out += [k for k in keyword_args if k not in rest]
    return out
