"""The import structure: the SDK imports nothing above it (no plugin, no conformance suite),
and no two modules of one backend import each other, directly or round a longer loop.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a cycle
hidden in a function is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())


def imported(path: Path) -> Iterator[str]:
    """The modules `path` imports (``from a.b import c`` also yields ``a.b.c``: a module or
    a name, the caller keeps what is a module)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def module_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of the same package it imports (the package's
    ``__init__`` left out: it re-exports, nothing imports it from inside)."""
    name = package.name
    modules = {f"{name}.{p.stem}": p for p in package.glob("*.py") if p.stem != "__init__"}
    return {
        module: {m for m in imported(path) if m in modules and m != module}
        for module, path in modules.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", PLUGINS, ids=lambda p: p.name)
def test_no_backend_module_imports_back(package: Path) -> None:
    assert cycles(module_graph(package)) == []


def test_the_sdk_imports_nothing_above_it() -> None:
    above = {p.name for p in PLUGINS} | {"eventwire_conformance"}
    upward = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "sdk").rglob("*.py")
        for module in imported(path)
        if module.split(".")[0] in above
    }
    assert upward == set()


def test_a_cycle_is_found_however_it_is_hidden(tmp_path: Path) -> None:
    package = tmp_path / "eventwire_loop"
    package.mkdir()
    (package / "__init__.py").write_text("from eventwire_loop._a import A\n")
    (package / "_a.py").write_text("from eventwire_loop._b import B\nA = 1\n")
    (package / "_b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from eventwire_loop import _c\nB = 2\n"
    )
    (package / "_c.py").write_text("def f():\n    from eventwire_loop._a import A\n    return A\n")
    (package / "_d.py").write_text("import eventwire_loop._a\n")
    assert cycles(module_graph(package)) == [
        ["eventwire_loop._a", "eventwire_loop._b", "eventwire_loop._c"]
    ]
