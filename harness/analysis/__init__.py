"""Analysis: from a run's records to typed results and one verdict (see the README's code
layout for the module that answers each question).

Importing this package is cheap (the names below load on first use), so that `harness
history`, which needs only `analysis.history`, pulls in neither the statistics nor scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Analysis", "analyse", "best_prompting_arm"]

if TYPE_CHECKING:
    from harness.analysis.arms import best_prompting_arm
    from harness.analysis.pipeline import Analysis, analyse

_HOME = {"Analysis": "pipeline", "analyse": "pipeline", "best_prompting_arm": "arms"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"harness.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'harness.analysis' has no attribute {name!r}")
