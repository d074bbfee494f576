"""The package's shape: no import cycles, and each package imports only those before it.

The pipeline, in order: the kinds (harness.kinds: the names of task and strategy kinds,
selections and verdicts, importing nothing from harness, so every package may import them) →
base modules (errors, paths, files, version, gitinfo) → config → dataset → tasks →
model → strategies → fine-tune identity (training.data, training.identity: what a fine-tuned arm
is trained on, which the plan needs to resolve the arm's model) → the confidence sequence
(analysis.sequential: pure statistics over paired differences, which the run's stopping rule
needs) → running → analysis → report →
gating → training → api → testing (the pytest plugin: assert_gate, the harness_run fixture) →
cli (and the package's public face, harness/__init__.py, which may import anything).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"
LAYERS = [
    ("harness.kinds",),
    ("harness.errors", "harness.paths", "harness.files", "harness.version", "harness.gitinfo"),
    ("harness.config",), ("harness.dataset",), ("harness.tasks",), ("harness.model",),
    ("harness.strategies",), ("harness.training.data", "harness.training.identity"),
    ("harness.analysis.sequential",), ("harness.running",), ("harness.analysis",), ("harness.report",),
    ("harness.gating",), ("harness.training",), ("harness.api",), ("harness.testing",),
    ("harness.cli", "harness.__main__", "harness"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                    best is None or len(name) > len(best[1])):
                best = (i, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The harness modules a file imports (at any depth, except under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harness"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            # `from harness.x import y`: the submodule y when y is one, else harness.x itself
            found.update(subs if len(subs) == len(node.names) else {node.module, *subs})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports(p, set(files)) - {m} for m, p in files.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """A cycle of module imports, or None (a package importing its own submodules, as
    `__init__` does, is not a cycle unless a submodule imports the package back)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if n not in g:
                continue
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (found := dfs(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (found := dfs(m)):
            return found
    return None


def test_no_import_cycles() -> None:
    g = graph()
    # a package's __init__ re-exporting its modules is fine; a module importing its own
    # package's __init__ back would make that a cycle and is reported
    cycle = find_cycle(g)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_each_package_imports_only_earlier_ones() -> None:
    upward = []
    for module, deps in graph().items():
        for dep in deps:
            if layer_of(dep) > layer_of(module):
                upward.append(f"{module} imports {dep}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_checker_catches_a_cycle_and_an_upward_import() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("harness.running.runner") > layer_of("harness.model.endpoint")
    assert all(layer_of("harness.kinds") < layer_of(names[0]) for names in LAYERS[1:])
    with pytest.raises(AssertionError):
        layer_of("elsewhere")


def test_no_module_is_over_400_lines() -> None:
    long = {module_name(p): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert not long, f"modules over ~400 lines: {long}"
