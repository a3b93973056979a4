"""The package reads top-down: no two of its modules import each other, directly or around a circle, at module
level or inside a function. The one edge left out is the package root's lazy `__getattr__` (the façade that
gives axolotl `axolotl_multiturn.MultiTurnPlugin` and `axolotl_multiturn.chat` without importing them for
the linter's light install)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "axolotl_multiturn"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Our modules this file imports (`from package import module` counts as the module)."""
    found = set()
    tree = ast.parse(path.read_text())
    facade = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__" for n in ast.walk(f)}
    for node in ast.walk(tree):
        if id(node) in facade:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "axolotl_multiturn":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                is_module = (ROOT / (full.replace(".", "/") + ".py")).is_file() or (ROOT / full.replace(".", "/")).is_dir()
                found.add(full if is_module else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "axolotl_multiturn"}
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v] & graph.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_finder_sees_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_around_a_circle() -> None:
    graph = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}
    assert len(graph) > 60
    assert circles(graph) == []
