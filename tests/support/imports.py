"""What Python source imports, read from its syntax tree (nothing is executed)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def imported_modules(path: Path) -> list[str]:
    """The absolute module names `path` imports (`from x.y import z` gives "x.y")."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def top_level_imports(paths: Iterable[Path]) -> set[str]:
    """The top-level packages the files at `paths` import."""
    return {module.split(".")[0] for path in paths for module in imported_modules(path)}
