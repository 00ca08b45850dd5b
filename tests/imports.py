"""Read the import graph of podtier's own packages from their source (with `ast`), for the
layout tests: which modules each module imports, at module level or inside a function, leaving
out imports under `if TYPE_CHECKING:` (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("webhook", "certs", "policies")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "podtier." + ".".join(parts)


def source_files(package: str = "webhook") -> dict[str, Path]:
    return {module_name(p): p for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(path: Path, modules: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Every dotted name the module imports. `from a.b import c` gives `a.b.c` when that is one
    of `modules` (a submodule; importing it runs `a.b` first, as any import of `a.b.x` does, so
    that is no edge to `a.b`'s own code), else `a.b` and `a.b.c`."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names |= {full} if full in modules else {base, full}
    return names


def import_graph(package: str = "webhook") -> dict[str, set[str]]:
    """Module -> the podtier modules it imports (names that are not modules are dropped)."""
    files = source_files(package)
    return {
        name: {n for n in imported_names(path, set(files)) if n in files and n != name}
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def folder_graph(graph: dict[str, set[str]], package: str = "webhook") -> dict[str, set[str]]:
    """Folder of `podtier.<package>` -> the other folders its modules import. A module at the
    package's top level (`webhook/lease.py`) is in no folder and left out."""
    prefix = f"podtier.{package}."

    def folder(module: str) -> str | None:
        if not module.startswith(prefix):
            return None
        rest = module[len(prefix) :].split(".")
        is_folder = len(rest) > 1 or (REPO_ROOT / package / rest[0]).is_dir()
        return rest[0] if is_folder else None

    folders: dict[str, set[str]] = {}
    for module, imported in graph.items():
        here = folder(module)
        if here is None:
            continue
        there = {folder(name) for name in imported} - {None, here}
        folders.setdefault(here, set()).update(f for f in there if f is not None)
    return folders


def folder_pairs(folders: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The pairs of folders that import each other, each pair once, sorted."""
    return sorted(
        (a, b)
        for a, targets in folders.items()
        for b in targets
        if a < b and a in folders.get(b, ())
    )
