"""The project's import graph: no cycles, and the core never imports tornado.

Every module of `jupyter_agnes` and `server_extension` is parsed with `ast`, imports
inside functions included (a lazy import still ties two modules together). The one
allowed edge back is `jupyter_agnes/__init__` -> the server extension point hook.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.ast_parse import parse_source

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jupyter_agnes", "server_extension")
# `_jupyter_server_extension_points` names the server extension: jupyter-server's hook.
ALLOWED_EDGES = {("jupyter_agnes", "server_extension.app")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:  # Alembic scripts, run by Alembic only
                continue
            modules[_module_name(path)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that `name` names or lies inside."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name `module` imports, anywhere in its body (relative ones resolved)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(parse_source(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` needs pkg.sub; `from pkg import name` needs pkg itself.
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {_resolve(name, modules) for name in imported_names(module, path)}
        graph[module] = {
            t for t in targets if t and t != module and (module, t) not in ALLOWED_EDGES
        }
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_finder_sees_a_cycle_through_a_function_level_import() -> None:
    # The checker itself must be able to fail.
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = "def f():\n    from jupyter_agnes.store import engine\n"
    tree = parse_source(source)
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))


def test_no_import_cycle_between_project_modules() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("banned", ["tornado", "jupyter_server"])
def test_the_core_never_imports_the_web_framework(banned: str) -> None:
    offenders = [
        module
        for module, path in project_modules().items()
        if module.startswith("jupyter_agnes")
        and any(n == banned or n.startswith(banned + ".") for n in imported_names(module, path))
    ]
    assert offenders == []


def test_the_store_never_imports_auth() -> None:
    # The dependency points one way: auth -> store.
    graph = import_graph()
    offenders = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("jupyter_agnes.store")
        for target in targets
        if target.startswith("jupyter_agnes.auth")
    }
    assert offenders == set()
