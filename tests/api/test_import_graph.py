"""The package's modules import each other without cycles, counting imports inside function
bodies too (an import moved into a function to dodge a cycle is still a cycle in the design).
Imports under ``if TYPE_CHECKING:`` never run and are left out."""

from __future__ import annotations

import ast
import pathlib

import fastmlp

PACKAGE_DIR = pathlib.Path(fastmlp.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def _native_modules() -> set[str]:
    """Compiled modules (fastmlp._core), known by their stubs: leaves of the graph."""
    return {_module_name(p) for p in PACKAGE_DIR.rglob("*.pyi") if not p.with_suffix(".py").exists()}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The package modules `name` imports anywhere in its source, TYPE_CHECKING blocks aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> None:
        # The deepest package module the dotted name names (fastmlp.reference._numpy, not its attribute).
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from . import x` imports the submodule x
                if f"{module}.{alias.name}" in known:
                    found.add(f"{module}.{alias.name}")
                else:
                    resolve(module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    native = _native_modules()
    known = set(modules) | native
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    graph.update({name: set() for name in native})
    return graph


def test_the_walker_sees_imports_inside_functions(tmp_path):
    # pkg.a imports pkg.b at the top; pkg.b imports pkg.a only inside a function: still a cycle.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    known = {"pkg.a", "pkg.b"}
    graph = {name: _imports(name, pkg / f"{name[4:]}.py", known) for name in known}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert "fastmlp.network" in graph and "fastmlp._model_file" in graph["fastmlp.network"]
    assert _cycles(graph) == []


def test_network_imports_neither_convert_nor_trainer():
    graph = import_graph()
    assert not graph["fastmlp.network"] & {"fastmlp.convert", "fastmlp.trainer", "fastmlp._checkpoint"}
    assert "fastmlp.network" not in graph["fastmlp._model_file"]
    assert "fastmlp.network" not in graph["fastmlp._lock"]
