"""The package map holds: no import cycles, imports only downward, seash loads no daemon.

Every module of the packages is parsed (``ast``): imports at module level, inside functions
and inside ``if TYPE_CHECKING:`` blocks all count for the layer order; cycles are counted
among the imports that run when a module is loaded (module level, not TYPE_CHECKING).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("seattlecore", "sandbox", "overlay", "nodemanager", "seash", "installer", "testbed")

LAYERS: tuple[tuple[str, int], ...] = (
    ("seattlecore", 0),
    ("sandbox", 1),
    ("overlay", 2),
    ("nodemanager.errors", 3),
    ("nodemanager.proto", 4),
    ("nodemanager.nat", 5),
    ("nodemanager.node", 6),
    ("nodemanager.donor", 7),
    ("nodemanager.updates", 7),
    ("nodemanager", 8),  # the package namespace (lazy exports of all of the above) and __main__
    ("seash", 9),
    ("installer", 10),
    ("testbed", 11),
)
"""A module may import from its own layer and the layers below (longest prefix decides)."""

CLIENT_FORBIDDEN = ("nodemanager.node", "nodemanager.donor", "nodemanager.updates", "nodemanager.nat.prober",
                    "nodemanager.__main__")
"""What a researcher's ``import seash.shell`` must not load: the daemon's own modules."""


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str
    line: int
    runtime: bool
    """Runs when the importer is loaded: module level and not under TYPE_CHECKING."""


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``PACKAGES``."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id.endswith("TYPE_CHECKING")) or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
              known: Iterable[str]) -> list[str]:
    """The modules an import statement names (``from pkg import sub`` names ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    known = set(known)
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    plain = [alias for alias in node.names if f"{base}.{alias.name}" not in known]
    return subs + ([base] if plain or not subs else [])


def imports_of(module: str, source: str, is_package: bool, known: Iterable[str]) -> Iterator[Import]:
    """Every import in ``source`` of a module of ``PACKAGES``, with whether it runs at load."""
    known = tuple(known)

    def walk(nodes: Iterable[ast.AST], runtime: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(node, module, is_package, known):
                    if target.split(".")[0] in PACKAGES:
                        yield Import(module, target, node.lineno, runtime)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.body, False)
                yield from walk(node.orelse, runtime)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(ast.iter_child_nodes(node), False)
            else:
                yield from walk(ast.iter_child_nodes(node), runtime)

    yield from walk(ast.parse(source).body, True)


def all_imports(root: Path = ROOT) -> list[Import]:
    files = module_files(root)
    found: list[Import] = []
    for module, path in sorted(files.items()):
        found.extend(imports_of(module, path.read_text(), path.name == "__init__.py", files))
    return found


def layer_of(module: str, layers: Iterable[tuple[str, int]] = LAYERS) -> int:
    best = max((p for p in layers if module == p[0] or module.startswith(p[0] + ".")),
               key=lambda p: len(p[0]))
    return best[1]


def upward(imports: Iterable[Import], layers: Iterable[tuple[str, int]] = LAYERS) -> list[str]:
    """Imports of a higher layer, as messages (a package's own ``__init__`` may re-export)."""
    layers = tuple(layers)
    bad = []
    for imp in imports:
        if imp.target.startswith(imp.importer + ".") or imp.target == imp.importer:
            continue
        low, high = layer_of(imp.importer, layers), layer_of(imp.target, layers)
        if high > low:
            bad.append(f"{imp.importer} (layer {low}) imports {imp.target} (layer {high}) "
                       f"at line {imp.line}")
    return bad


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def runtime_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.runtime:
            graph.setdefault(imp.importer, set()).add(imp.target)
    return graph


# ---- the checks on the tree ----

def test_every_module_is_in_a_layer() -> None:
    for module in module_files():
        assert layer_of(module) >= 0


def test_imports_only_go_downward() -> None:
    bad = upward(all_imports())
    assert not bad, "upward imports (layers: " + ", ".join(p for p, _ in LAYERS) + "):\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    found = cycles(runtime_graph(all_imports()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


MAX_MODULES_PER_FOLDER = 20


def crowded_folders(root: Path = ROOT) -> dict[str, int]:
    """Package folders holding more than ``MAX_MODULES_PER_FOLDER`` modules (``__init__`` not counted)."""
    counts = {}
    for package in PACKAGES:
        for init in (root / package).rglob("__init__.py"):
            modules = [f for f in init.parent.glob("*.py") if f.name != "__init__.py"]
            counts[str(init.parent.relative_to(root))] = len(modules)
    return {folder: n for folder, n in counts.items() if n > MAX_MODULES_PER_FOLDER}


def test_no_package_folder_is_crowded(tmp_path: Path) -> None:
    assert crowded_folders() == {}
    crowded = tmp_path / "seash"
    crowded.mkdir()
    for name in ["__init__", *(f"m{i}" for i in range(MAX_MODULES_PER_FOLDER + 1))]:
        (crowded / f"{name}.py").write_text("")
    assert crowded_folders(tmp_path) == {"seash": MAX_MODULES_PER_FOLDER + 1}


def test_seash_loads_no_daemon_modules() -> None:
    code = "import sys, seash.shell; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True, cwd=ROOT).stdout.split()
    assert "seash.shell" in loaded and "nodemanager.proto.client" in loaded
    daemon = [m for m in loaded if m.startswith(CLIENT_FORBIDDEN)]
    assert not daemon, f"import seash.shell loads daemon modules: {daemon}"


# ---- the checker finds what it should (so a green run means something) ----

@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A tree with one upward import inside a function and one cycle at module level."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "overlay" / "dht.py").write_text(
        "def f():\n    from nodemanager.node import server\n")
    (tmp_path / "seash" / "a.py").write_text("from seash import b\n")
    (tmp_path / "seash" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import a\nif TYPE_CHECKING:\n    import testbed\n")
    return tmp_path


def test_checker_names_a_planted_upward_import(planted: Path) -> None:
    assert upward(all_imports(planted)) == [
        "overlay.dht (layer 2) imports nodemanager.node (layer 6) at line 2",
        "seash.b (layer 9) imports testbed (layer 11) at line 4",
    ]


def test_checker_finds_a_planted_cycle_but_not_type_checking_imports(planted: Path) -> None:
    graph = runtime_graph(all_imports(planted))
    assert cycles(graph) == [["seash.a", "seash.b"]]
    assert "testbed" not in graph["seash.b"] and "overlay.dht" not in graph
