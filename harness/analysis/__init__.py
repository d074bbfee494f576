"""Analysis: statistics (`stats`), per-arm metrics, tables, the decision and history."""

from harness.analysis.decision import Analysis, analyse
from harness.analysis.tables import best_prompting_arm

__all__ = ["Analysis", "analyse", "best_prompting_arm"]
