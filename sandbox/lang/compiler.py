"""Compile vessel programs with RestrictedPython 9.0 under this project's policy.

The policy is RestrictedPython's default-deny transformer plus Seattle's string rules
(``repy_v2/safe.py``): no import statements, no string constant or attribute containing
``__``, no attribute with an introspection prefix (``f_ gi_ cr_ ag_ tb_ co_ im_ func_``),
and no ``mro``/``format``/``format_map`` attributes. Errors come back as data with line
numbers (``CompileFailed``), never as exceptions.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from types import CodeType
from typing import Any

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer

MAX_SOURCE_BYTES = 1_000_000
FORBIDDEN_ATTR_PREFIXES = ("f_", "gi_", "cr_", "ag_", "tb_", "co_", "im_", "func_")
FORBIDDEN_ATTRS = frozenset({"mro", "format", "format_map"})
AUG_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/=", ast.FloorDiv: "//=",
    ast.Mod: "%=", ast.Pow: "**=", ast.LShift: "<<=", ast.RShift: ">>=", ast.BitAnd: "&=",
    ast.BitOr: "|=", ast.BitXor: "^=", ast.MatMult: "@=",
}
RUNTIME_CHECKED = frozenset({"obj"})
"""Attribute names checked per object at run time (``AttributeError.obj`` leaks its target)."""
PROGRAM_FILENAME = "<vessel>"
EXTRA_METHOD_NAMES = frozenset({"__str__", "__repr__", "__iter__", "__next__"})
"""Methods a vessel class may define beyond RestrictedPython's (``__init__``, comparisons).

Seattle allowed ``__str__``, ``__repr__`` and ``__iter__``; Python 3 iteration needs
``__next__``. Only host code that already treats the object as untrusted calls them
(``str()`` in ``log``, ``iter()`` in a ``for``); ``__del__``, ``__hash__`` and ``__getattr__``
stay refused (finalizers run inside host locks; a lying hash would fool the host's sets).
"""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A program that passed the policy."""

    code: CodeType
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompileFailed:
    """A program the policy refused; each error reads ``Line N: why``."""

    errors: tuple[str, ...]

    def summary(self) -> str:
        """The first error, for one-line reports."""
        return self.errors[0] if self.errors else "compile failed"


def attribute_forbidden(name: str) -> bool:
    """True for attribute names the policy refuses at compile time and at run time."""
    return (
        name.startswith("_")
        or "__" in name
        or name in FORBIDDEN_ATTRS
        or name.startswith(FORBIDDEN_ATTR_PREFIXES)
    )


class VesselPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer with Seattle's extra rules."""

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        """RestrictedPython's name rule, plus ``EXTRA_METHOD_NAMES`` for indented defs."""
        if allow_magic_methods and name in EXTRA_METHOD_NAMES and node.col_offset != 0:
            return
        super().check_name(node, name, allow_magic_methods)

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, str | bytes) and _has_dunder(node.value):
            self.error(node, 'string constants may not contain "__".')
        return super().visit_Constant(node)

    def guard_iter(self, node: ast.For | ast.comprehension) -> Any:
        """Iteration needs no hook here: vessels hold no objects whose iteration is guarded."""
        return self.node_contents_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """``x op= v`` on a name stays plain; on ``a.b`` / ``a[k]`` it becomes a guarded call.

        ``a.b += v`` -> ``_aug_attr_(a, 'b', '+=', v)`` and ``a[k] += v`` ->
        ``_aug_item_(a, k, '+=', v)``: the object and key are evaluated once, then the value,
        as Python does; the helpers read and write through the same guards as ``a.b = ...``.
        """
        target = node.target
        if isinstance(target, ast.Name):
            self.check_name(node, target.id)
            return self.node_contents_visit(node)
        op = AUG_OPS.get(type(node.op))
        if op is None:
            self.error(node, "this augmented assignment operator is not allowed.")
            return node
        if isinstance(target, ast.Attribute):
            if target.attr.startswith("_") or attribute_forbidden(target.attr):
                self.error(node, f'"{target.attr}" is a restricted attribute in vessels.')
                return node
            args = [self.visit(target.value), ast.Constant(target.attr)]
            helper = "_aug_attr_"
        elif isinstance(target, ast.Subscript):
            args = [self.visit(target.value), self.visit(target.slice)]
            helper = "_aug_item_"
        else:
            return super().visit_AugAssign(node)
        value = self.visit(node.value)
        call = ast.Call(ast.Name(helper, ast.Load()), [*args, ast.Constant(op), value], [])
        statement = ast.Expr(call)
        ast.copy_location(statement, node)
        return ast.fix_missing_locations(statement)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        self.error(node, "import statements are not allowed in vessels; the Repy API is built in.")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed in vessels; the Repy API is built in.")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        """Names are judged here, once; loads of judged names compile to plain ``a.b``.

        Only names whose danger depends on the object (``RUNTIME_CHECKED``) and stores and
        deletes (through ``_write_``) go through a guard at run time.
        """
        if not node.attr.startswith("_") and attribute_forbidden(node.attr):
            self.error(node, f'"{node.attr}" is a restricted attribute in vessels.')
            return node
        plain_load = isinstance(node.ctx, ast.Load) and node.attr not in RUNTIME_CHECKED
        if plain_load and not attribute_forbidden(node.attr) and not node.attr.endswith("__roles__"):
            return self.node_contents_visit(node)
        return super().visit_Attribute(node)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        """``a[k]`` loads stay plain (no container is protected); stores go through ``_write_``."""
        if isinstance(node.ctx, ast.Load):
            return self.node_contents_visit(node)
        return super().visit_Subscript(node)


def _has_dunder(value: str | bytes) -> bool:
    return ("__" in value) if isinstance(value, str) else (b"__" in value)


def compile_program(source: str | bytes, filename: str = PROGRAM_FILENAME) -> Compiled | CompileFailed:
    """Compile ``source`` under the vessel policy; refused programs return CompileFailed."""
    if len(source) > MAX_SOURCE_BYTES:
        return CompileFailed((f"Line 1: program is larger than {MAX_SOURCE_BYTES} bytes",))
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            return CompileFailed((f"Line 1: program is not UTF-8 ({exc.reason})",))
    if "\x00" in source:
        return CompileFailed(("Line 1: program contains a NUL byte",))
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. SyntaxWarning: kept as data
            warnings.simplefilter("always")
            result = compile_restricted_exec(source, filename=filename, policy=VesselPolicy)
    except SyntaxError as exc:  # raised by CPython's compile() after the policy accepted the AST
        return CompileFailed((f"Line {exc.lineno or 1}: SyntaxError: {exc.msg}",))
    except (ValueError, RecursionError, MemoryError) as exc:
        return CompileFailed((f"Line 1: cannot compile: {type(exc).__name__}",))
    if result.errors or result.code is None:
        return CompileFailed(tuple(result.errors) or ("Line 1: compile failed",))
    found = [f"Line {w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    return Compiled(result.code, (*result.warnings, *found))
