"""The import graph of `workbench/`, read from the source with `ast` alone (nothing is
imported, so the tests built on it run in a blink and never load torch).

Every import counts: at module level, inside a function, and under `TYPE_CHECKING`. A lazy
import still ties two modules together; it only hides the tie until run time.

How an import becomes edges:
- `import a.b.c` is an edge to `a.b.c`;
- `from a.b import c` is an edge to `a.b`, and to `a.b.c` too when that is a module;
- importing `a.b.c` is *not* an edge to the package `a.b` (its `__init__`). A package whose
  `__init__` re-exports its submodules (`core/estimate/`, `core/knowledge/io/`) thereby sits
  above them, like any module that imports them. A submodule that reads a name from its own
  package (`from a.b import name`, `name` not a module) is an edge to `a.b` and closes a circle
  through that `__init__`, which is what it does at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every `.py` under `root/workbench` (a package is named
    by its folder: `workbench.core.estimate` is `core/estimate/__init__.py`)."""
    return {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted((root / "workbench").rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The module a `from … import` names, relative levels resolved against `name`."""
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(root: Path) -> dict[str, set[str]]:
    """Module → the workbench modules it imports anywhere (see the module docstring)."""
    files = module_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node, name, path.name == "__init__.py")
                found.add(module)
                found |= {f"{module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative so a deep graph cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
