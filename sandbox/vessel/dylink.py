"""dylink: load ``.r2py``/``.repy`` libraries into a vessel (seattlelib_v2's ``dylink.r2py``).

Seattle ran dylink as a Repy program in front of the user's program. Here it is part of the
sandbox, so ``dy_import_module``, ``dy_import_module_symbols`` and ``dy_dispatch_module`` are
in every program's namespace. Semantics kept from Seattle:

- ``m = dy_import_module("time.r2py")`` finds the file in the vessel (trying the extensions
  ``"", .py, .repy, .py.repy, .pp, .r2py``), else in the libraries shipped with the sandbox,
  evaluates it once in a fresh context (the Repy API, ``mycontext = {}``,
  ``callfunc = "import"``) and returns a module object whose attributes are its globals.
  A second import returns the same object; a circular import gets an empty module.
- ``dy_import_module_symbols("x")`` is ``from x import *``: the module's globals are copied
  into the caller's namespace, except the caller's own ``callfunc``/``mycontext``/... .
- ``dy_dispatch_module()`` runs the next program named in ``callargs`` (what
  ``start dylink.r2py prog.r2py args`` did), with ``callargs`` shifted by one.

Reading a vessel file charges ``fileread`` as ``openfile``/``readat`` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sandbox.lang.policy import VesselType
from sandbox.lang.safedict import key_is_safe
from sandbox.repy import RepyArgumentError, RepyFileNotFoundError
from sandbox.vessel.namespaces import compile_vessel_code
from sandbox.vessel.vesselfiles import BLOCK, FILENAME_RE, blocks_touched

LIBRARY_DIR = Path(__file__).resolve().parents[1] / "repylib"
SHIPPED: dict[str, str] = {
    path.stem: path.read_text("utf-8") for path in sorted(LIBRARY_DIR.glob("*.r2py"))
}
"""The shipped libraries, read when the runner imports this module (before the OS layers
can make the package directory unreadable)."""
EXTENSIONS = ("", ".py", ".repy", ".py.repy", ".pp", ".r2py")
NOT_FROM_X_IMPORT = frozenset({
    "callfunc", "callargs", "mycontext", "usercontext",
    "dy_import_module", "dy_import_module_symbols", "dy_dispatch_module",
})
"""Names that belong to each namespace and are never copied by ``from x import *``."""


class Runtime(Protocol):
    """What dylink needs from the vessel runtime."""

    def namespace(self, callfunc: str = ..., args: list[str] | None = ...) -> dict[str, Any]: ...
    def read_vessel_file(self, name: str) -> str: ...
    def charge_library_read(self, size: int) -> None: ...


class ImportedModule(metaclass=VesselType):
    """A module object: one attribute per global the module defined."""

    def __init__(self, name: str, namespace: dict[str, Any], skip: frozenset[str]) -> None:
        for key, value in namespace.items():
            if key_is_safe(key) and key not in skip:
                setattr(self, key, value)
        self.modulename = name

    def __repr__(self) -> str:
        return f"<Imported module '{self.modulename}'>"


def module_name(module: str) -> str:
    """Seattle strips every known extension from the name."""
    for extension in EXTENSIONS[1:]:
        module = module.replace(extension, "")
    return module


class Linker:
    """The per-vessel module cache and the ``dy_*`` functions bound to each namespace."""

    def __init__(self, runtime: Runtime, api_names: frozenset[str]) -> None:
        self._runtime = runtime
        self._api_names = api_names
        self._modules: dict[str, tuple[ImportedModule, dict[str, Any]]] = {}
        self._in_progress: set[str] = set()

    def bind(self, namespace: dict[str, Any]) -> None:
        """Put ``dy_*`` functions that import into/for ``namespace`` into it."""

        def dy_import_module(
            module: object, new_callfunc: object = "import", additional_globals: object = None
        ) -> ImportedModule:
            return self.import_module(module, new_callfunc, additional_globals, namespace)

        def dy_import_module_symbols(module: object, new_callfunc: object = "import") -> None:
            module_ns = self._load(module, new_callfunc, None, namespace)[1]
            for key, value in module_ns.items():
                if key_is_safe(key) and key not in NOT_FROM_X_IMPORT:
                    namespace[key] = value

        def dy_dispatch_module() -> bool:
            return self.dispatch(namespace)

        namespace["dy_import_module"] = dy_import_module
        namespace["dy_import_module_symbols"] = dy_import_module_symbols
        namespace["dy_dispatch_module"] = dy_dispatch_module

    def import_module(
        self, module: object, callfunc: object, extra: object, importer: dict[str, Any]
    ) -> ImportedModule:
        return self._load(module, callfunc, extra, importer)[0]

    def _load(
        self, module: object, callfunc: object, extra: object, importer: dict[str, Any]
    ) -> tuple[ImportedModule, dict[str, Any]]:
        name, names = self._check_args(module, callfunc, extra)
        if name in self._in_progress:
            return ImportedModule(name, {}, frozenset()), {}
        if name in self._modules:
            return self._modules[name]
        self._in_progress.add(name)
        try:
            code = compile_vessel_code(self._source(name), name)
            namespace = self._runtime.namespace(callfunc=str(callfunc))
            for key in names:
                if key in importer and key_is_safe(key):
                    namespace[key] = importer[key]
            exec(code, namespace)
            loaded = ImportedModule(name, namespace, self._api_names | NOT_FROM_X_IMPORT), namespace
            self._modules[name] = loaded
            return loaded
        finally:
            self._in_progress.discard(name)

    @staticmethod
    def _check_args(module: object, callfunc: object, extra: object) -> tuple[str, list[str]]:
        if type(module) is not str or not module:
            raise RepyArgumentError("the module name must be a non-empty str")
        if type(callfunc) is not str:
            raise RepyArgumentError("new_callfunc must be a str")
        if extra is not None and (type(extra) is not list or any(type(x) is not str for x in extra)):
            raise RepyArgumentError("additional_globals must be a list of str")
        return module_name(module), list(extra or [])

    def _source(self, name: str) -> str:
        """The module's text: from the vessel first, else from the shipped libraries."""
        for extension in EXTENSIONS:
            candidate = name + extension
            if not FILENAME_RE.fullmatch(candidate) or candidate.startswith("."):
                continue
            try:
                return self._runtime.read_vessel_file(candidate)
            except RepyFileNotFoundError:
                continue
        if name in SHIPPED:
            self._runtime.charge_library_read(len(SHIPPED[name].encode("utf-8")))
            return SHIPPED[name]
        raise RepyFileNotFoundError(f"cannot find the module {name!r} in the vessel or the library")

    def dispatch(self, caller: dict[str, Any]) -> bool:
        """Run ``callargs[0]`` as the next program, with the remaining arguments."""
        args = caller.get("callargs")
        if type(args) is not list or not args or type(args[0]) is not str:
            return False
        name = module_name(args[0])
        code = compile_vessel_code(self._source(name), name)
        callfunc = caller.get("callfunc", "initialize")
        namespace = self._runtime.namespace(
            callfunc=callfunc if type(callfunc) is str else "initialize",
            args=[str(a) for a in args[1:]],
        )
        exec(code, namespace)
        return True


def library_read_charge(size: int) -> int:
    """What reading a ``size``-byte library costs in ``fileread``: an open plus the blocks."""
    return BLOCK + blocks_touched(0, size)

