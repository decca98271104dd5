"""No import circles in the package: modules and sub-packages of ``backtest`` form a DAG.

The import graph is read from the source with :mod:`ast` (nothing is imported): every
``import`` / ``from ... import`` of a ``backtest`` module, at module level, inside functions and
under ``if TYPE_CHECKING:`` alike. Importing ``a.b.c`` also runs the packages ``a.b``'s
``__init__``, so those edges count too (except a module's own ancestors, which Python has
already started importing). An edge that closes a circle is allowed only when listed in
:data:`ALLOWED` with the reason, so a new circle fails here, not in a user's session.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "backtest"

#: Import edges (importer, imported) allowed to close a circle, each with its reason. None now:
#: the governance report's data classes moved to ``governance_data`` so that ``governance``
#: and ``governance_figures`` no longer import each other.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(include_parents: bool = True) -> dict[str, set[str]]:
    """Return ``{module: modules of backtest it imports}`` for every module of the package."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, module, is_package)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        edges = set()
        own_ancestors = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)}
        for target in targets:
            if target not in modules:
                continue
            edges.add(target)
            if include_parents:
                parts = target.split(".")
                edges.update(p for p in (".".join(parts[:k]) for k in range(2, len(parts)))
                             if p in modules and p not in own_ancestors)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]], allowed=frozenset()) -> list[str] | None:
    """Return one circle ``[a, b, ..., a]`` of ``graph`` (skipping ``allowed`` edges), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if (node, nxt) in allowed:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_graph_sees_the_package():
    graph = import_graph()
    assert len(graph) > 100
    assert "backtest.results.writer" in graph["backtest.engine.run"]
    assert "backtest.provenance" in graph["backtest.results.writer"]


def test_no_import_circle_between_modules():
    cycle = find_cycle(import_graph(), allowed=set(ALLOWED))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_circle_between_subpackages():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph(include_parents=False).items():
        src = module.split(".")[1] if module.count(".") else module
        for target in targets:
            if (module, target) in ALLOWED:
                continue
            dst = target.split(".")[1] if target.count(".") else target
            if src != dst:
                packages.setdefault(src, set()).add(dst)
    cycle = find_cycle(packages)
    assert cycle is None, "sub-package circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, circle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False),
])
def test_the_circle_finder_finds_circles(graph, circle):
    found = find_cycle(graph)
    assert (found is not None) == circle
    if circle:
        assert found[0] == found[-1]
