"""Virtual namespaces (``repy_v2/virtual_namespace.py``) and vessel tracebacks.

``createvirtualnamespace(code, name)`` checks the code against the policy at once
(``CodeUnsafeError``); ``evaluate(context)`` runs it with the vessel's builtins and nothing
else but ``context``, exactly as Seattle did: a plain dict is copied into a new SafeDict
(``ContextUnsafeError`` for an unsafe key) and that SafeDict is returned; a SafeDict is run
in place and the same object is returned, so later evaluations see earlier results.
"""

from __future__ import annotations

import linecache
import sys
import traceback
from collections.abc import Callable
from types import CodeType
from typing import Any

from sandbox.lang.compiler import PROGRAM_FILENAME, CompileFailed, compile_program
from sandbox.lang.safedict import SafeDict, namespace_of
from sandbox.repy import CodeUnsafeError, ContextUnsafeError, RepyArgumentError

VESSEL_PREFIX = PROGRAM_FILENAME[:-1]
"""Code a vessel supplied is compiled with a filename starting ``<vessel``."""


def vessel_filename(name: str) -> str:
    """The filename vessel code named ``name`` (a module, a namespace) is compiled under."""
    return f"{VESSEL_PREFIX}:{name.replace('>', '')[:80]}>"


def compile_vessel_code(source: str, name: str) -> CodeType:
    """Compile under the policy, keep the lines for tracebacks; CodeUnsafeError if refused."""
    filename = vessel_filename(name)
    result = compile_program(source, filename=filename)
    if isinstance(result, CompileFailed):
        raise CodeUnsafeError(f"{name}: " + "; ".join(result.errors))
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    return result.code


class VirtualNamespace:
    """``createvirtualnamespace(code, name)``: code checked now, run by ``evaluate``."""

    __slots__ = ("_code", "_prepare")

    def __init__(self, prepare: Callable[[dict[str, Any]], None], code: object, name: object) -> None:
        if type(code) is not str:
            raise RepyArgumentError("code must be a str")
        if type(name) is not str:
            raise RepyArgumentError("name must be a str")
        self._code = compile_vessel_code(code.replace("\r\n", "\n"), name)
        self._prepare = prepare

    def evaluate(self, context: object) -> SafeDict:
        """Run the code with ``context`` as its globals; return the SafeDict it ran in."""
        if type(context) is dict:
            try:
                context = SafeDict(context)
            except (TypeError, ValueError) as exc:
                raise ContextUnsafeError(f"the context is not safe: {exc}") from None
        if type(context) is not SafeDict:
            raise RepyArgumentError("the context must be a dict or a SafeDict")
        namespace = namespace_of(context)
        self._prepare(namespace)
        exec(self._code, namespace)
        return context


def format_user_traceback() -> str:
    """The current exception's traceback, keeping only frames of vessel code."""
    kind, value, tb = sys.exc_info()
    frames = [f for f in traceback.extract_tb(tb) if f.filename.startswith(VESSEL_PREFIX)]
    lines = ["Traceback (most recent call last):\n"]
    for frame in frames:
        lines.append(f'  File "{display_name(frame.filename)}", line {frame.lineno}, in {frame.name}\n')
        if frame.line:
            lines.append(f"    {frame.line.strip()}\n")
    name = kind.__name__ if kind else "Exception"
    lines.append(f"{name}: {printable(value)}\n")
    return "".join(lines)


def display_name(filename: str) -> str:
    """``<vessel>`` is the program; ``<vessel:time>`` shows as ``time``."""
    if filename == PROGRAM_FILENAME:
        return "program"
    return filename[len(VESSEL_PREFIX) + 1 : -1]


def printable(value: object) -> str:
    """``str(value)``, which may run a vessel's ``__str__``: a failure is not the host's."""
    try:
        text = str(value)
    except Exception:
        return "<exception message could not be printed>"
    return text if type(text) is str else "<exception message is not a str>"
