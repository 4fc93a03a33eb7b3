"""The namespace a vessel program runs in: safe builtins and RestrictedPython's guard hooks.

Built for the vessel child process only. The host never executes vessel code.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import full_write_guard, safe_builtins

from sandbox.lang.compiler import attribute_forbidden
from sandbox.lang.safedict import SafeDict
from sandbox.repy import EXCEPTIONS, PolicyViolation

_REMOVED = ("SystemExit", "KeyboardInterrupt", "BaseException", "GeneratorExit", "_getattr_")
_EXTRA_BUILTINS = (
    "list", "dict", "set", "frozenset", "tuple", "sorted", "reversed", "min", "max", "sum",
    "any", "all", "enumerate", "zip", "map", "filter", "iter", "next", "bytes", "bytearray",
    "isinstance", "issubclass", "hasattr", "RecursionError",
)
_NO_BUILTIN = ("hasattr",)


_JUDGED_SAFE: set[str] = set()
"""Attribute names already found allowed (the check is per name, so it is cached)."""


class VesselType(type):
    """Metaclass of every class a vessel defines: marks objects a vessel may write to."""


def guarded_getattr(ob: object, name: object, default: object = None, *rest: object) -> Any:
    """``ob.name`` under the policy; a refused or missing attribute raises AttributeError.

    The raised AttributeError is fresh (``.obj`` is None) so it never carries a host object.
    """
    if name not in _JUDGED_SAFE:
        _judge(name)
    if name == "obj" and isinstance(ob, BaseException):
        raise PolicyViolation('attribute "obj" of exceptions is not available in vessels')
    try:
        return getattr(ob, name)  # type: ignore[call-overload]
    except AttributeError:
        pass
    raise AttributeError(f"{type(ob).__name__!s} object has no attribute {name!r}")


def _judge(name: object) -> None:
    if type(name) is not str:
        raise PolicyViolation("attribute names must be str")
    if attribute_forbidden(name):
        raise PolicyViolation(f'attribute "{name}" is not available in vessels')
    if len(_JUDGED_SAFE) < 100_000:
        _JUDGED_SAFE.add(name)


def guarded_write(ob: Any) -> Any:
    """``_write_``: vessels may write to their own objects, dicts and lists, nothing else."""
    if type(ob) in (dict, list, SafeDict) or isinstance(type(ob), VesselType) or isinstance(ob, VesselType):
        return ob
    return full_write_guard(ob)


def guarded_setattr(ob: object, name: object, value: object) -> None:
    """``setattr`` for vessel objects only, with the attribute-name policy."""
    _judge(name)
    setattr(guarded_write(ob), name, value)  # type: ignore[arg-type]


def guarded_delattr(ob: object, name: object) -> None:
    """``delattr`` for vessel objects only, with the attribute-name policy."""
    _judge(name)
    delattr(guarded_write(ob), name)  # type: ignore[arg-type]


def unpack_unguarded(it: Any, spec: object, _getiter_: object = None) -> Any:
    """``_unpack_sequence_``: the assignment target unpacks; nothing to guard here."""
    return it


def guarded_hasattr(ob: object, name: str) -> bool:
    """``hasattr`` that answers False for attributes the policy hides."""
    try:
        guarded_getattr(ob, name)
    except (AttributeError, PolicyViolation):
        return False
    return True


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


def aug_attr(ob: Any, name: str, op: str, value: Any) -> None:
    """``ob.name op= value`` through the read and write guards."""
    current = guarded_getattr(ob, name)
    guarded_setattr(ob, name, guarded_inplacevar(op, current, value))


def aug_item(ob: Any, key: Any, op: str, value: Any) -> None:
    """``ob[key] op= value`` through the write guard."""
    target = guarded_write(ob)
    target[key] = guarded_inplacevar(op, ob[key], value)


def build_builtins(printer_factory: Callable[..., Any]) -> dict[str, Any]:
    """The builtins dict of a vessel: RestrictedPython's safe set, tightened and completed."""
    table = {k: v for k, v in safe_builtins.items() if k not in _REMOVED}
    for name in _EXTRA_BUILTINS:
        if name not in _NO_BUILTIN:
            table[name] = getattr(builtins, name)
    table["hasattr"] = guarded_hasattr
    table.update(EXCEPTIONS)
    table["SafeDict"] = SafeDict
    table.update({
        "_getattr_": guarded_getattr,
        "_getitem_": operator.getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": unpack_unguarded,
        "_unpack_sequence_": unpack_unguarded,
        "_write_": guarded_write,
        "_apply_": guarded_apply,
        "_inplacevar_": guarded_inplacevar,
        "_aug_attr_": aug_attr,
        "_aug_item_": aug_item,
        "_print_": printer_factory,
        "__metaclass__": VesselType,
        "setattr": guarded_setattr,
        "delattr": guarded_delattr,
    })
    return table
