"""The import closure of a stage script through ``mlfilter`` modules, read from the source (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"
PACKAGE = "mlfilter"


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` under ``src/`` (a package's ``__init__.py``), or None."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, module: str | None) -> set[str]:
    """Every ``mlfilter`` module named by an import anywhere in the file, lazy imports in functions included."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else (module.rpartition(".")[0] if module else None)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(script: Path) -> set[Path]:
    """Source files of every ``mlfilter`` module reachable from ``script`` by imports, transitively."""
    seen: set[str] = set()
    todo = sorted(_imported_names(script, None))
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        for candidate in _with_parents(name):
            if candidate in seen:
                continue
            seen.add(candidate)
            path = module_file(candidate)
            if path is not None:
                files.add(path)
                todo.extend(_imported_names(path, candidate))
    return files
