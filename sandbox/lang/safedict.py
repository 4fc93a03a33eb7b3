"""Repy's ``SafeDict``: a mapping that refuses keys which could reach the sandbox's hooks.

A virtual namespace runs in the dict under a SafeDict, so its keys are global names. Keys
must be ``str`` (exactly) and may not start with ``_`` or contain ``__``: a global named
``_getattr_`` would replace RestrictedPython's guard, and ``__builtins__`` is the sandbox's
own. Seattle's rule (``repy_v2/safe.py``) refused ``__`` only; this dialect refuses every
``_`` name, so the rule follows the language. Keys the sandbox itself keeps in the dict
(``__builtins__``, ``__name__``) are invisible: not listed, not readable, not counted.

Invariant: no method returns, yields or accepts an unsafe key, and the underlying dict is
never handed out.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterator
from typing import Any

UNSAFE_KEY_MESSAGE = "SafeDict keys must not start with '_' or contain '__'"
MISSING: Any = object()


def key_is_safe(key: object) -> bool:
    """True for keys a vessel may use as names (exact str, no ``_`` start, no ``__``)."""
    return type(key) is str and not key.startswith("_") and "__" not in key


def check_key(key: object) -> str:
    """Return ``key`` or raise TypeError (not a str) / ValueError (unsafe), as Seattle did."""
    if type(key) is not str:
        raise TypeError("SafeDict keys must be of type str")
    if not key_is_safe(key):
        raise ValueError(f"{UNSAFE_KEY_MESSAGE}: {key[:60]!r}")
    return key


class SafeDict:
    """A dict-like object for namespaces: ``d[k]``, ``k in d``, ``get``, ``keys``, ``update``..."""

    __slots__ = ("_under",)

    def __init__(self, from_dict: object = None, **kwargs: object) -> None:
        self._under: dict[str, Any] = {}
        if isinstance(from_dict, SafeDict):
            from_dict = from_dict.copy_plain()
        if type(from_dict) is dict:
            self.update(from_dict)
        self.update(kwargs)

    def copy_plain(self) -> dict[str, Any]:
        """A plain dict of the safe entries."""
        return {k: v for k, v in self._under.items() if key_is_safe(k)}

    def __getitem__(self, key: object) -> Any:
        return self._under[check_key(key)]

    def __setitem__(self, key: object, value: object) -> None:
        self._under[check_key(key)] = value

    def __delitem__(self, key: object) -> None:
        del self._under[check_key(key)]

    def __contains__(self, key: object) -> bool:
        return check_key(key) in self._under

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in self._under if key_is_safe(k)])

    def __len__(self) -> int:
        return sum(1 for k in self._under if key_is_safe(k))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SafeDict):
            return self.copy_plain() == other.copy_plain()
        if type(other) is dict:
            return self.copy_plain() == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    @reprlib.recursive_repr("SafeDict({...})")
    def __repr__(self) -> str:
        return f"SafeDict({self.copy_plain()!r})"

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> list[Any]:
        return [self._under[k] for k in self]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self._under[k]) for k in self]

    def get(self, key: object, default: object = None) -> Any:
        return self._under.get(check_key(key), default)

    def has_key(self, key: object) -> bool:
        """Python 2's spelling of ``key in d``, kept for Seattle code."""
        return key in self

    def pop(self, key: object, default: object = MISSING) -> Any:
        if default is MISSING:
            return self._under.pop(check_key(key))
        return self._under.pop(check_key(key), default)

    def popitem(self) -> tuple[str, Any]:
        for key in reversed(list(self)):
            return key, self._under.pop(key)
        raise KeyError("popitem(): SafeDict is empty")

    def setdefault(self, key: object, default: object = None) -> Any:
        return self._under.setdefault(check_key(key), default)

    def update(self, other: object = None, **kwargs: object) -> None:
        """Add every entry of a dict, a SafeDict or keyword arguments (all keys checked first)."""
        if isinstance(other, SafeDict):
            other = other.copy_plain()
        if type(other) is dict:
            pairs = list(other.items())
        elif other is None:
            pairs = []
        else:
            raise TypeError("SafeDict.update takes a dict or a SafeDict")
        pairs += list(kwargs.items())
        checked = [(check_key(k), v) for k, v in pairs]
        self._under.update(checked)

    def clear(self) -> None:
        for key in list(self):
            del self._under[key]

    def copy(self) -> SafeDict:
        return SafeDict(self.copy_plain())


def namespace_of(safedict: SafeDict) -> dict[str, Any]:
    """The dict a SafeDict wraps (host code only: code runs in it)."""
    return safedict._under


def view_of(namespace: dict[str, Any]) -> SafeDict:
    """A SafeDict over an existing namespace dict, sharing it (``usercontext``)."""
    view = SafeDict()
    view._under = namespace
    return view
