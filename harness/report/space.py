"""The report's prompt-design-space section: what was tried (k, selection, variants, voting)
with each setting's best arm and paired gain over zero-shot, the self-consistency table, and
the note on what per-input examples cost (they defeat a shared-prefix prompt cache); and the
notes under the comparisons (what the eval can detect, how clusters were accounted for).

These compute the figures, formatted; templates/space.html.j2 and comparisons.html.j2 lay them
out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.analysis import Analysis
from harness.analysis.calibration import expected_calibration_error
from harness.analysis.design_space import untried_text
from harness.report.fields import DASH, _num, _pct
from harness.strategies import arm_name


def _shown(x: Any, form: Callable[[float], str]) -> str:
    """`form(x)`, or a dash where the figure is missing."""
    return DASH if _num(x) == DASH else form(float(x))


def _points(x: Any) -> str:
    return _shown(x, lambda v: f"{100 * v:+.1f}")


def _count(x: Any) -> str:
    return _shown(x, lambda v: f"{v:,.0f}")


def _ms(x: Any) -> str:
    return _shown(x, lambda v: f"{v / 1000:.2f} s")


def _usd(x: Any) -> str:
    return _shown(x, lambda v: f"${v:.4g}")


def _gain(r: pd.Series) -> str:
    if _num(r["gain"]) == DASH:
        return DASH
    return (f"{_points(r['gain'])} [{_points(r['gain_ci_low'])}, {_points(r['gain_ci_high'])}]"
            f", Holm p = {float(r['p_adjusted']):.3g}")


def _arm(r: pd.Series) -> str:
    return arm_name(r["strategy"], r["k"], r["type"])


def tried_rows(a: Analysis) -> dict[str, Any] | None:
    """One row per setting tried (dimension, setting, arms, best arm, its score, its gain over
    zero-shot) and the metric's name; None without a prompting arm."""
    t = a.tried
    if t is None or not len(t):
        return None
    rows = [(r["dimension"], r["setting"], str(int(r["arms"])), r["best_arm"], _num(r["best"]),
             _gain(r)) for _, r in t.iterrows()]
    return {"metric": str(t.iloc[0]["metric"]).replace("_", " "), "rows": rows}


def voting_rows(summary: pd.DataFrame) -> list[tuple[str, ...]]:
    """Self-consistency arms: single-sample against voted accuracy, and what the vote costs."""
    if "samples" not in summary:
        return []
    v = summary[summary["samples"] > 1]
    return [(_arm(r), str(int(r["samples"])), _num(r["single_sample_accuracy"]), _num(r["accuracy"]),
             f"{_points(r['vote_gain'])} [{_points(r['vote_gain_ci_low'])}, "
             f"{_points(r['vote_gain_ci_high'])}]", _pct(r["mean_vote_share"]),
             _count(r["mean_completion_tokens"])) for _, r in v.iterrows()]


def _cost_figures(r: pd.Series) -> dict[str, str]:
    return {"arm": _arm(r), "tokens": _count(r["mean_prompt_tokens"]),
            "p50": _ms(r["latency_p50_ms"]), "usd": _usd(r["cost_per_1k"])}


def cache_rows(summary: pd.DataFrame) -> list[tuple[dict[str, str], dict[str, str] | None]]:
    """Per-input examples change the prompt's prefix for every input: each such arm's measured
    cost, with that of a fixed-examples arm of the same k and model where there is one."""
    if "selection" not in summary:
        return []
    per = summary[summary["selection"].fillna("").str.startswith("similar")]
    fixed = summary[summary["selection"].notna() & ~summary.index.isin(per.index)]
    out = []
    for _, r in per.iterrows():
        same = fixed[(fixed["k"] == r["k"]) & (fixed["model"] == r["model"])]
        out.append((_cost_figures(r), _cost_figures(same.iloc[0]) if len(same) else None))
    return out


def calibration_rows(a: Analysis) -> list[tuple[str, str, list[dict[str, str]]]]:
    """Per arm: its expected calibration error and its confidence bins against accuracy."""
    t = a.calibration
    if t is None or not len(t):
        return []
    ece = expected_calibration_error(t)
    return [(arm_name(str(s), int(k), "few_shot" if int(k) else "zero_shot"), _num(e),
             [{"range": f"{r['bin_low']:.1f}{DASH}{r['bin_high']:.1f}", "n": str(int(r["n"])),
               "confidence": f"{r['mean_confidence']:.2f}", "accuracy": f"{r['accuracy']:.2f}"}
              for _, r in t[(t["strategy"] == s) & (t["k"] == k)].iterrows()])
            for (s, k), e in ece.items()]


TEST_NAMES = {"mcnemar": "McNemar p", "paired_bootstrap": "bootstrap p",
              "clustered_mcnemar": "clustered McNemar p", "cluster_bootstrap": "cluster bootstrap p"}


def clusters_context(a: Analysis) -> dict[str, Any] | None:
    """A clustered run (`dataset.cluster`): its clusters, each arm's design effect, and how
    the intervals and tests account for them; None when the eval is not clustered."""
    c = a.clustering
    if c is None:
        return None
    s = a.summary
    effects = [(_arm(r), _shown(r["design_effect"], lambda v: f"{v:.2f}"))
               for _, r in s.iterrows()] if "design_effect" in s else []
    return {"field": c.field, "clusters": str(c.clusters), "mean_size": f"{c.mean_cluster_size:.1f}",
            "largest": str(c.details.get("max_cluster_size")), "effects": effects,
            "interval": c.interval, "paired_test": c.paired_test}


def planning_sentence(a: Analysis) -> str | None:
    """What the eval can detect (power.planning), under the comparisons table; None if unknown."""
    return a.planning.sentence if a.planning else None


def design_space_context(a: Analysis) -> dict[str, Any]:
    """The whole section: what was tried, the levers left, voting, calibration, the cache note."""
    return {"tried": tried_rows(a), "untried": untried_text(a.untried),
            "voting": voting_rows(a.summary), "calibration": calibration_rows(a),
            "cache": cache_rows(a.summary)}


__all__ = ["TEST_NAMES", "cache_rows", "calibration_rows", "clusters_context",
           "design_space_context", "planning_sentence", "tried_rows", "voting_rows"]
