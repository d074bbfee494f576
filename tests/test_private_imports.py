"""Issue 24, item 3: no module imports a private name (leading underscore) from another of
harness's top-level subpackages, e.g. ``from harness.analysis.stats import _x`` in
harness/gating. A private name is its own package's business; what another package needs is
made public. Within one subpackage (harness/analysis importing harness.analysis.stats._x) it is
allowed. Modules directly under harness/ (api.py, cli.py...) each count as their own unit."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module(path: Path, top: Path) -> list[str]:
    """Dotted parts of a file's module: harness/gating/compare.py -> harness, gating, compare."""
    parts = list(path.relative_to(top).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _unit(parts: list[str]) -> str:
    """The top-level subpackage (or module) of harness a dotted module belongs to."""
    return parts[1] if len(parts) > 1 else parts[0]


def _source(node: ast.ImportFrom, here: list[str], is_package: bool) -> list[str]:
    """The dotted parts of the module an import takes its names from (relative ones resolved)."""
    base = here if is_package else here[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        return base + (node.module.split(".") if node.module else [])
    return node.module.split(".") if node.module else []


def violations(root: Path = HARNESS) -> list[str]:
    """`file:line: from X import _y` for every private name imported across subpackages of the
    package at ``root`` (harness/)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        here = _module(path, root.parent)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _source(node, here, path.name == "__init__.py")
                imported = [(src, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):  # import harness.x._y
                imported = [(alias.name.split(".")[:-1], alias.name.split(".")[-1])
                            for alias in node.names]
            else:
                continue
            for src, name in imported:
                if not src or src[0] != "harness" or _unit([*src, name]) == _unit(here):
                    continue
                if _private(name) or any(_private(p) for p in src):
                    found.append(f"{path.relative_to(root.parent).as_posix()}:{node.lineno}: from "
                                 f"{'.'.join(src)} import {name}")
    return found


def test_no_private_name_is_imported_across_subpackages() -> None:
    assert violations() == []


def test_the_scan_finds_a_private_import(tmp_path: Path) -> None:
    """The check itself: cross-package private imports are found, in-package ones are not."""
    pkg = tmp_path / "harness"
    (pkg / "gating").mkdir(parents=True)
    (pkg / "analysis").mkdir()
    (pkg / "gating" / "compare.py").write_text(
        "from harness.analysis.stats import _as_matrix, wilson_interval\n"
        "from ..analysis import _hidden\n"
        "from .markdown import _local\n"
        "from harness.version import __version__\n")
    (pkg / "analysis" / "arms.py").write_text("from harness.analysis.stats import _as_matrix\n")
    (pkg / "cli.py").write_text("import harness.analysis._impl\n")
    assert violations(pkg) == [
        "harness/cli.py:1: from harness.analysis import _impl",
        "harness/gating/compare.py:1: from harness.analysis.stats import _as_matrix",
        "harness/gating/compare.py:2: from harness.analysis import _hidden",
    ]
