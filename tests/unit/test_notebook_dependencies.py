"""Every module the shipped notebooks and dashboards import is a runtime dependency.

`make run` installs the package without its test extras, so a notebook that needs a
test-only package fails there while CI stays green. This reads every shipped notebook's
code cells (magics and shell lines left out), adds what the kernel's own extension and the
`jupyter_agnes` modules they reach import, and requires each third-party module to come
from a distribution in the transitive closure of `[project.dependencies]`.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.ast_parse import parse_source

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"jupyter_agnes", "server_extension"}
# The kernelspec loads `--ext=jupyter_agnes`, so every notebook runs this first.
KERNEL_EXTENSION = ("jupyter_agnes", "jupyter_agnes.magics")
# Calls that import a package without an import statement: pandas' plotting needs matplotlib.
IMPLICIT_IMPORTS = {"plot": "matplotlib", "hist": "matplotlib", "boxplot": "matplotlib"}


def shipped_notebooks() -> list[Path]:
    folder = REPO / "notebooks"
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def python_of_cell(source: str) -> str:
    """The cell as Python: a cell magic's body is not Python; `%` and `!` lines are dropped."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def _guarded_by_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for handler in handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(k, ast.Name) and k.id in names for k in kinds):
            return True
    return False


class ImportCollector(ast.NodeVisitor):
    """Absolute imports (full dotted names) outside optional `try/except ImportError` and
    `if TYPE_CHECKING:` blocks, plus packages that calls import implicitly."""

    def __init__(self) -> None:
        self.modules: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        self.modules.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.modules.add(node.module)
            # `from pkg import sub` may name a submodule; resolve_first_party checks which
            self.modules.update(f"{node.module}.{alias.name}" for alias in node.names)

    def visit_Try(self, node: ast.Try) -> None:
        if not _guarded_by_import_error(node.handlers):
            self.visit_list(node.body)
        self.visit_list([*node.handlers, *node.orelse, *node.finalbody])

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            self.visit_list(node.orelse)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in IMPLICIT_IMPORTS:
            self.modules.add(IMPLICIT_IMPORTS[node.func.attr])
        self.generic_visit(node)

    def visit_list(self, nodes: list[ast.AST]) -> None:
        for child in nodes:
            self.visit(child)


def imports_of(code: str) -> set[str]:
    collector = ImportCollector()
    collector.visit(parse_source(code))
    return collector.modules


def first_party_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def third_party_imports(start: set[str]) -> dict[str, str]:
    """Top-level third-party module -> the first module found importing it, following
    first-party modules (and the packages they live in) transitively."""
    found: dict[str, str] = {}
    todo = [(name, "notebook") for name in sorted(start)]
    seen: set[str] = set()
    while todo:
        module, importer = todo.pop()
        top = module.split(".")[0]
        if top not in FIRST_PARTY:
            if top not in sys.stdlib_module_names:
                found.setdefault(top, importer)
            continue
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            name = ".".join(parts[:i])
            path = first_party_file(name)
            if path is None or name in seen:
                continue
            seen.add(name)
            todo += [(m, name) for m in imports_of(path.read_text())]
    return found


@functools.cache
def runtime_closure() -> frozenset[str]:
    """Canonical names of `[project.dependencies]` and everything they require, extras that
    a requirement asks for included; no extra of jupyter_agnes itself."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(spec) for spec in project["dependencies"]]
    closure: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        closure.add(name)
        for spec in md.requires(req.name) or []:
            dep = Requirement(spec)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": extra}) for extra in ("", *req.extras)
            ):
                todo.append(dep)
    return frozenset(closure)


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


def distributions_providing(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


def missing_from_runtime(code_cells: list[str]) -> dict[str, str]:
    """Third-party modules the cells need that no runtime dependency provides."""
    start = set(KERNEL_EXTENSION)
    for cell in code_cells:
        start |= imports_of(python_of_cell(cell))
    closure = runtime_closure()
    return {
        module: importer
        for module, importer in third_party_imports(start).items()
        if not distributions_providing(module) & closure
    }


def code_cells(path: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_the_notebooks_are_found():
    names = {p.relative_to(REPO / "notebooks").as_posix() for p in shipped_notebooks()}
    assert {"01-getting-started.ipynb", "dashboards/sales.ipynb"} <= names


@pytest.mark.parametrize(
    "notebook", shipped_notebooks(), ids=lambda p: p.relative_to(REPO / "notebooks").as_posix()
)
def test_shipped_notebook_needs_only_runtime_dependencies(notebook):
    missing = missing_from_runtime(code_cells(notebook))
    assert not missing, (
        "imported (module: first importer) but not provided by [project.dependencies]: "
        f"{missing}; add the distribution to the runtime dependencies, not only to `test`"
    )


def test_the_check_sees_test_only_and_implicit_imports():
    # polars and jupysql are test extras only; pandas' .plot needs matplotlib.
    cells = ["import polars as pl\nfrom sql import magic", "%%sql\nimport nothing", "df.plot()"]
    missing = missing_from_runtime(cells)
    assert {"polars", "sql"} <= set(missing)
    assert "nothing" not in missing
    assert "matplotlib" in third_party_imports(imports_of("df.plot(x='a')"))
    optional = "try:\n    import polars\nexcept ImportError:\n    pass\n"
    assert imports_of(optional) == set()
    assert imports_of(python_of_cell("%matplotlib inline\n!pip list\nimport os")) == {"os"}
