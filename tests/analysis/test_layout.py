"""The analysis package is organised by question (issue 24): every module's docstring opens with
the question it answers, and the code-layout page of the docs (docs/concepts/code-layout.md)
lists every module in its analysis table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import harness.analysis

PACKAGE = Path(harness.analysis.__file__).parent
LAYOUT = PACKAGE.parents[1] / "docs" / "concepts" / "code-layout.md"
MODULES = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")


def test_every_module_says_which_question_it_answers() -> None:
    for path in MODULES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = doc.split("\n\n")[0]
        assert "?" in first, f"{path.name}: the docstring's first paragraph asks no question"


def test_the_layout_page_lists_every_module() -> None:
    text = LAYOUT.read_text(encoding="utf-8")
    table = text[text.index("The analysis package, one module per question"):]
    listed = set(re.findall(r"`(\w+\.py)`", table.split("\n\n")[1]))
    assert {p.name for p in MODULES} <= listed, sorted({p.name for p in MODULES} - listed)
