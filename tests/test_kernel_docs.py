"""Every public kernel documents its parameters and return values: shapes, dtypes and units.

A public kernel is a module-level function of ``backtest/kernels/`` whose name does not start
with ``_``. Its numpydoc docstring must have a ``Parameters`` section naming every argument
and, unless it returns nothing, a ``Returns`` section; every ``ndarray`` it documents gives
its ``shape``. A module being restructured elsewhere can be listed in :data:`PENDING` for
the time being (none is now).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent.parent / "backtest" / "kernels"
PENDING: set[str] = set()


def _public_kernels():
    for path in sorted(KERNELS.glob("*.py")):
        if path.name in PENDING or path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                yield pytest.param(path.name, node, id=f"{path.stem}.{node.name}")


def _section(doc: str, title: str) -> str | None:
    m = re.search(rf"^{title}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, flags=re.M | re.S)
    return m.group(1) if m else None


def _returns_value(node: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(node))


@pytest.mark.parametrize("module, node", list(_public_kernels()))
def test_public_kernel_docstring_gives_shapes_and_dtypes(module, node):
    doc = ast.get_docstring(node) or ""
    args = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
    if args:
        params = _section(doc, "Parameters")
        assert params is not None, f"{module} {node.name}: no Parameters section"
        documented = set()
        for line in params.splitlines():
            if line and not line[0].isspace() and " : " in line:
                documented.update(n.strip() for n in line.split(" : ")[0].split(","))
        missing = [a for a in args if a not in documented]
        assert not missing, f"{module} {node.name}: parameters not documented: {missing}"
    if _returns_value(node):
        assert _section(doc, "Returns") is not None, f"{module} {node.name}: no Returns section"
    for line in doc.splitlines():
        if " : " in line and "ndarray" in line.split(" : ", 1)[1]:
            assert "shape" in line, f"{module} {node.name}: array without a shape: {line.strip()}"


def test_the_check_sees_the_kernels():
    names = {p.values[1].name for p in _public_kernels()}
    assert {"run_portfolio_nb", "black76_price_nb", "price_factor_nb"} <= names
