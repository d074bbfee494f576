"""Analysis: statistics (`stats`), per-arm metrics, tables, the decision and history.

Importing this package is cheap (the names below load on first use), so that `harness
history`, which needs only `analysis.history`, pulls in neither the statistics nor scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Analysis", "analyse", "best_prompting_arm"]

if TYPE_CHECKING:
    from harness.analysis.decision import Analysis, analyse
    from harness.analysis.tables import best_prompting_arm

_HOME = {"Analysis": "decision", "analyse": "decision", "best_prompting_arm": "tables"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"harness.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'harness.analysis' has no attribute {name!r}")
