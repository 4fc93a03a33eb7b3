"""``seattle-sandbox port``: turn a Python 2 Repy V2 program into this sandbox's dialect.

Three passes, each reporting what it did by line:

1. Repy V1's ``include file.repy`` preprocessor lines become ``dy_import_module_symbols``.
2. fissix (a maintained lib2to3) applies the Python 2 -> 3 fixers that need no imports:
   ``print``, ``except X, e``, ``raise X, msg``, ``has_key``, ``xrange``, ``u"..."``,
   ``dict.keys()`` lists, ``next`` methods, backticks, ``<>``, octal literals, ...
3. Repy-specific rewrites on the Python 3 text: ``_context`` -> ``usercontext``;
   ``type(x) is T`` (``==``, ``!=``, ``is not``, ``in (A, B)``) -> ``isinstance``; names with
   a leading ``_`` (refused by the dialect) renamed consistently (``_helper`` -> ``helper_``).

What no pass can decide is listed as a problem: ``import`` statements, remaining ``type()``
calls, Repy V1 calls, methods the dialect refuses, and every error the policy still reports
when the result is compiled. ``readat``/``recv``/``getmessage`` calls are flagged because
they now return bytes where Seattle returned str.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fissix.pgen2.parse import ParseError
from fissix.refactor import RefactoringTool

from sandbox.lang.compiler import EXTRA_METHOD_NAMES, CompileFailed, compile_program

FIXERS = tuple(
    f"fissix.fixes.fix_{name}"
    for name in (
        "apply", "asserts", "basestring", "dict", "except", "exec", "filter", "funcattrs",
        "has_key", "isinstance", "long", "map", "methodattrs", "ne", "next", "numliterals",
        "paren", "print", "raise", "repr", "standarderror", "throw", "tuple_params", "types",
        "unicode", "xrange", "zip",
    )
)
"""2to3 fixers whose output needs no import (``reduce``/``intern``/``operator`` ones add one)."""
FIXER_WORDS = {
    "Print": "print statement -> print()", "Except": "except X, e -> except X as e",
    "Raise": "raise X, msg -> raise X(msg)", "HasKey": "has_key -> in",
    "Xrange": "xrange -> range", "Unicode": 'u"..." / unicode -> str', "Dict": "dict views",
    "Next": "next -> __next__", "Long": "long -> int", "Ne": "<> -> !=", "Repr": "`x` -> repr(x)",
    "Numliterals": "0777 -> 0o777", "Map": "map() -> list(map())", "Filter": "filter() -> list",
    "Zip": "zip() -> list(zip())", "Exec": "exec statement", "Basestring": "basestring -> str",
}
ALLOWED_DUNDERS = frozenset({"__init__", "__contains__", "__lt__", "__le__", "__eq__", "__ne__",
                             "__gt__", "__ge__"}) | EXTRA_METHOD_NAMES
REPY_V1_CALLS = frozenset({"settimer", "canceltimer", "recvmess", "sendmess", "waitforconn",
                           "openconn", "stopcomm", "open", "file", "getlock", "randomfloat",
                           "get_thread_name", "listdir"})
BYTES_CALLS = frozenset({"readat", "recv", "getmessage"})
INCLUDE_LINE = re.compile(r"^include[ \t]+([A-Za-z0-9_.\-]+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PortResult:
    """The converted text, what was changed, and what still needs a person."""

    source: str
    changes: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.problems


@dataclass
class Notes:
    """Accumulates ``Line N: ...`` notes."""

    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def change(self, line: int, text: str) -> None:
        self.changes.append(f"Line {line}: {text}")

    def problem(self, line: int, text: str) -> None:
        self.problems.append(f"Line {line}: {text}")


def port_source(source: str, name: str = "program.r2py") -> PortResult:
    """Convert ``source``; never raises for bad input (a parse failure is a problem)."""
    notes = Notes()
    fixed = python3_fixes(replace_includes(source.replace("\r\n", "\n"), notes), name, notes)
    if fixed is None:
        return PortResult(source, tuple(notes.changes), tuple(notes.problems))
    text = fixed
    try:
        text = rewrite_type_checks(text, notes)
        text = rename_private_names(text, notes)
    except (SyntaxError, tokenize.TokenError, ValueError) as exc:
        notes.problem(getattr(exc, "lineno", None) or 1, f"cannot parse as Python 3: {exc}")
        return PortResult(text, tuple(notes.changes), tuple(notes.problems))
    report_leftovers(text, notes)
    result = compile_program(text, filename=name)
    if isinstance(result, CompileFailed):
        notes.problems.extend(f"{e} (the policy still refuses this)" for e in result.errors)
    return PortResult(text, by_line(notes.changes), by_line(dict.fromkeys(notes.problems)))


def by_line(notes: Iterable[str]) -> tuple[str, ...]:
    """Notes ordered by their line number."""
    return tuple(sorted(notes, key=lambda note: int(note.split(":", 1)[0].removeprefix("Line "))))


def replace_includes(text: str, notes: Notes) -> str:
    """Repy V1's ``include x.repy`` lines -> ``dy_import_module_symbols("x.repy")``."""

    def swap(match: re.Match[str]) -> str:
        notes.change(text.count("\n", 0, match.start()) + 1, f"include {match.group(1)} -> dylink")
        return f'dy_import_module_symbols("{match.group(1)}")'

    return INCLUDE_LINE.sub(swap, text)


def python3_fixes(text: str, name: str, notes: Notes) -> str | None:
    """Run the fissix fixers; None (with a problem noted) if the text does not parse."""
    failure: ParseError | None = None
    for options in ({}, {"print_function": True}):
        seen: list[tuple[int, str]] = []
        tool = RefactoringTool(list(FIXERS), options)
        for fixer in tool.pre_order + tool.post_order:
            fixer.transform = _recording(fixer.transform, type(fixer).__name__[3:], seen)
        try:
            tree = tool.refactor_string(text if text.endswith("\n") else text + "\n", name)
        except ParseError as exc:
            failure = failure or exc
            continue
        for line, fixer_name in sorted(set(seen)):
            notes.change(line, FIXER_WORDS.get(fixer_name, f"Python 3 fix ({fixer_name.lower()})"))
        return str(tree)
    assert failure is not None
    notes.problem(_parse_error_line(failure), f"cannot parse: {failure.msg} {failure.value!r}")
    return None


def _parse_error_line(error: ParseError) -> int:
    try:
        return int(error.context[1][0])
    except (TypeError, IndexError, ValueError):
        return 1


def _recording(
    transform: Callable[..., Any], fixer: str, seen: list[tuple[int, str]]
) -> Callable[..., Any]:
    def wrapper(node: Any, results: Any) -> Any:
        before, line = str(node), node.get_lineno() or 1
        new = transform(node, results)
        if (new is not None or str(node) != before) and node.parent is not None:
            seen.append((line, fixer))
        return new

    return wrapper


def rewrite_type_checks(text: str, notes: Notes) -> str:
    """``type(x) is T`` and friends -> ``isinstance(x, T)`` (``not isinstance`` for negations);
    the string ``"_context"`` -> ``"usercontext"``."""
    tree = ast.parse(text)
    edits: list[tuple[int, int, int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == "_context":
            assert node.end_lineno is not None and node.end_col_offset is not None
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
                          '"usercontext"'))
            notes.change(node.lineno, "'_context' -> 'usercontext'")
            continue
        replacement = _isinstance_form(node, text)
        if replacement is not None and isinstance(node, ast.Compare):
            assert node.end_lineno is not None and node.end_col_offset is not None
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, replacement))
            notes.change(node.lineno, "type(x) comparison -> isinstance (subclasses now match too)")
    return apply_edits(text, edits)


def _isinstance_form(node: ast.AST, text: str) -> str | None:
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if not (isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "type"
            and len(left.args) == 1 and not left.keywords):
        return None
    subject = ast.get_source_segment(text, left.args[0])
    if isinstance(op, ast.In | ast.NotIn) and isinstance(right, ast.List | ast.Tuple | ast.Set):
        names = dict.fromkeys(ast.get_source_segment(text, e) or "" for e in right.elts)
        kinds = "(" + ", ".join(names) + ",)"
    elif isinstance(op, ast.Is | ast.IsNot | ast.Eq | ast.NotEq):
        kinds = ast.get_source_segment(text, right) or ""
    else:
        return None
    negate = isinstance(op, ast.IsNot | ast.NotEq | ast.NotIn)
    return f"{'not ' if negate else ''}isinstance({subject}, {kinds})"


def apply_edits(text: str, edits: Iterable[tuple[int, int, int, int, str]]) -> str:
    """Replace (line, col, end line, end col) spans; columns are UTF-8 byte offsets (ast's)."""
    lines = text.encode("utf-8").splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    data = text.encode("utf-8")
    spans = sorted(((starts[a - 1] + b, starts[c - 1] + d, r) for a, b, c, d, r in edits), reverse=True)
    last = len(data) + 1
    for start, end, replacement in spans:
        if end > last:
            continue  # nested inside an edit already made
        data = data[:start] + replacement.encode("utf-8") + data[end:]
        last = start
    return data.decode("utf-8")


def rename_private_names(text: str, notes: Notes) -> str:
    """Rename identifiers starting with ``_``, consistently across the file."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    used = {t.string for t in tokens if t.type == tokenize.NAME}
    mapping: dict[str, str] = {}
    edits = []
    for tok in tokens:
        if tok.type != tokenize.NAME or not tok.string.startswith("_"):
            continue
        if tok.string in ALLOWED_DUNDERS:
            continue
        if tok.string.startswith("__") and tok.string.endswith("__") and len(tok.string) > 4:
            notes.problem(tok.start[0], f"{tok.string} is not available in vessels")
            continue
        new = mapping.get(tok.string) or _new_name(tok.string, used | set(mapping.values()))
        if tok.string not in mapping:
            notes.change(tok.start[0], f"{tok.string} -> {new} (names may not start with '_')")
        mapping[tok.string] = new
        edits.append((*tok.start, *tok.end, new))
    return apply_edits(text, [(a, len(_prefix(text, a, b)), c, len(_prefix(text, c, d)), r)
                              for a, b, c, d, r in edits])


def _prefix(text: str, line: int, col: int) -> bytes:
    """The UTF-8 bytes before character column ``col`` of ``line`` (tokenize counts chars)."""
    return text.splitlines(keepends=True)[line - 1][:col].encode("utf-8")


def _new_name(old: str, used: set[str]) -> str:
    if old == "_context":
        return "usercontext"
    base = old.strip("_") or "unnamed"
    for candidate in (base + "_", "private_" + base, "private_" + base + "_"):
        if candidate not in used and not keyword.iskeyword(candidate) and "__" not in candidate:
            return candidate
    index = 2
    while f"private_{base}{index}" in used:
        index += 1
    return f"private_{base}{index}"


def report_leftovers(text: str, notes: Notes) -> None:
    """Problems the rewrites cannot solve, and calls whose results changed type."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            notes.problem(node.lineno, "import is not available; load Repy libraries with "
                          "dy_import_module('name.r2py')")
        elif isinstance(node, ast.Call):
            _report_call(node, notes)


def _report_call(node: ast.Call, notes: Notes) -> None:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if isinstance(func, ast.Name) and name == "type":
        notes.problem(node.lineno, "type() is not available: use isinstance()")
    elif isinstance(func, ast.Name) and name in REPY_V1_CALLS:
        notes.problem(node.lineno, f"{name}() is Repy V1 (or plain Python); use the Repy V2 API")
    elif isinstance(func, ast.Name) and name in ("eval", "exec", "compile"):
        notes.problem(node.lineno, f"{name}() is not available: use createvirtualnamespace()")
    elif isinstance(func, ast.Attribute) and name in BYTES_CALLS:
        notes.change(node.lineno, f"check: {name}() returns bytes (was str); compare with b'...'")
