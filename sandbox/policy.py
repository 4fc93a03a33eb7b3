"""The namespace a vessel program runs in: safe builtins and RestrictedPython's guard hooks.

Built for the vessel child process only. The host never executes vessel code.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)

from sandbox.compiler import attribute_forbidden
from sandbox.repy import EXCEPTIONS, PolicyViolation

_REMOVED = ("SystemExit", "KeyboardInterrupt", "BaseException", "GeneratorExit", "_getattr_")
_EXTRA_BUILTINS = (
    "list", "dict", "set", "frozenset", "tuple", "sorted", "reversed", "min", "max", "sum",
    "any", "all", "enumerate", "zip", "map", "filter", "iter", "next", "bytes", "bytearray",
    "isinstance", "issubclass", "hasattr",
)
_NO_BUILTIN = ("hasattr",)


def guarded_getattr(ob: object, name: object, default: object = None, *rest: object) -> Any:
    """``ob.name`` under the policy; a refused or missing attribute raises AttributeError.

    The raised AttributeError is fresh (``.obj`` is None) so it never carries a host object.
    """
    if type(name) is not str:
        raise PolicyViolation("attribute names must be str")
    if attribute_forbidden(name) or (name == "obj" and isinstance(ob, BaseException)):
        raise PolicyViolation(f'attribute "{name}" is not available in vessels')
    try:
        return getattr(ob, name)
    except AttributeError:
        pass
    raise AttributeError(f"{type(ob).__name__!s} object has no attribute {name!r}")


def guarded_hasattr(ob: object, name: str) -> bool:
    """``hasattr`` that answers False for attributes the policy hides."""
    try:
        guarded_getattr(ob, name)
    except (AttributeError, PolicyViolation):
        return False
    return True


def guarded_getitem(ob: Any, index: Any) -> Any:
    """``ob[index]``; plain, since vessels hold no protected containers."""
    return ob[index]


def guarded_getiter(ob: Iterable[Any]) -> Iterable[Any]:
    """Iteration is unrestricted (the namespace holds no protected objects)."""
    return ob


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A call with ``*args``/``**kwargs``: keyword names may not be private."""
    for key in kwargs:
        if type(key) is not str or key.startswith("_"):
            raise PolicyViolation(f"keyword argument {key!r} is not allowed")
    return func(*args, **kwargs)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    """``x op= y`` for plain names."""
    try:
        return _INPLACE[op](target, value)
    except KeyError:
        raise PolicyViolation(f"operator {op!r} is not allowed") from None


def build_builtins(printer_factory: Callable[..., Any]) -> dict[str, Any]:
    """The builtins dict of a vessel: RestrictedPython's safe set, tightened and completed."""
    table = {k: v for k, v in safe_builtins.items() if k not in _REMOVED}
    for name in _EXTRA_BUILTINS:
        if name not in _NO_BUILTIN:
            table[name] = getattr(builtins, name)
    table["hasattr"] = guarded_hasattr
    table.update(EXCEPTIONS)
    table.update({
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_apply_": guarded_apply,
        "_inplacevar_": guarded_inplacevar,
        "_print_": printer_factory,
        "__metaclass__": type,
    })
    return table


def build_globals(api: Mapping[str, Any], printer_factory: Callable[..., Any]) -> dict[str, Any]:
    """A fresh global namespace: builtins, the Repy API, and ``__name__``."""
    namespace: dict[str, Any] = {"__builtins__": build_builtins(printer_factory)}
    namespace["__name__"] = "vessel"
    namespace.update(api)
    return namespace
