"""The decision: learning curve and plateau, the fine-tune evidence and the verdict; `analyse`
builds every table and judgement a report shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from harness.analysis import rules, stats
from harness.analysis.tables import (
    Matrices,
    best_prompting_arm,
    comparisons_frame,
    complete_rows,
    per_class_frame,
    price,
    results_frame,
    row_name,
    summary_frame,
    sweep_rows,
)
from harness.config import DecisionConfig
from harness.model import pricing
from harness.running.records import Record, RunMeta
from harness.strategies import is_fine_tuned
from harness.tasks import Task, task_from_meta


@dataclass(frozen=True)
class Analysis:
    """Every table and judgement a report shows."""

    results: pd.DataFrame
    summary: pd.DataFrame
    per_class: pd.DataFrame
    comparisons: pd.DataFrame
    curve: pd.DataFrame
    plateau: rules.PlateauResult | None
    verdict: rules.Verdict
    evidence: dict[str, Any]
    complete: bool


def curve_and_plateau(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig
                      ) -> tuple[pd.DataFrame, rules.PlateauResult | None]:
    """The learning curve of the first few-shot strategy (with zero-shot of the same model as k=0)."""
    fs = sweep_rows(summary)
    if fs.empty:
        return pd.DataFrame(columns=["strategy", "k", "accuracy", "ci_low", "ci_high"]), None
    strategy = fs.iloc[0]["strategy"]
    model = fs.iloc[0]["model"]
    zs = summary[(summary["type"] == "zero_shot") & (summary["model"] == model)]
    points = summary[summary["strategy"] == strategy]
    if len(zs):
        points = pd.concat([zs.iloc[[0]], points])
    curve = points[["strategy", "k", "accuracy", "ci_low", "ci_high"]].reset_index(drop=True)
    scores = {}
    for _, row in points.iterrows():
        scores[int(row["k"])] = mats[(row["strategy"], row["k"])]
    keep = complete_rows(*scores.values())
    if not keep.any():
        return curve, rules.PlateauResult("insufficient_data", None, None, (),
                                          "no example has results at every k yet")
    scores = {k: m[keep] for k, m in scores.items()}
    plateau = rules.detect_plateau(scores, min_gain=decision.min_gain, n_boot=decision.bootstrap, seed=0)
    return curve, plateau


def _training_cost(meta: RunMeta, f: pd.Series) -> float | None:
    entry = meta.fine_tunes.get(str(f["strategy"])) or {}
    training = entry.get("training_cost_usd")
    if training is None and entry.get("trained_tokens"):
        p = price(meta, f["model"], f["model_id"])
        if p is not None:
            training = pricing.training_cost(p, int(entry["trained_tokens"]))
    return None if training is None else float(training)


def verdict(summary: pd.DataFrame, comparisons: pd.DataFrame, plateau: rules.PlateauResult | None,
            mats: Matrices, meta: RunMeta) -> tuple[rules.Verdict, dict[str, Any]]:
    """The recommendation, and the evidence on the fine-tuned arm behind it."""
    decision = meta.decision
    ok = summary[summary["n"] > 0]
    ft = ok[ok["type"].map(is_fine_tuned).astype(bool) & (ok["errors"] < ok["n"])] if len(ok) else ok
    best = best_prompting_arm(summary)
    evidence: dict[str, Any] = {}
    arm_ev = None
    if best is not None and len(ft):
        f = ft.iloc[0]
        a, b = (f["strategy"], f["k"]), (best["strategy"], best["k"])
        keep = complete_rows(mats[a], mats[b])
        d = stats.paired_difference(mats[a][keep].mean(axis=1), mats[b][keep].mean(axis=1),
                                    n_boot=decision.bootstrap, seed=0)
        name_a, name_b = row_name(f), row_name(best)
        match = comparisons[(comparisons["arm_a"] == name_a) & (comparisons["arm_b"] == name_b)]
        p_adj = float(match["p_adjusted"].iloc[0]) if len(match) else 1.0
        training = _training_cost(meta, f)
        be = None
        prompt_cost, ft_cost = best["cost_per_1k"] / 1000, f["cost_per_1k"] / 1000
        if training is not None and not (math.isnan(prompt_cost) or math.isnan(ft_cost)):
            be = rules.break_even(training, float(prompt_cost), float(ft_cost),
                                  horizon_months=decision.horizon_months)
        arm_ev = rules.ArmEvidence(d, p_adj, be, decision.monthly_volume)
        evidence = {"fine_tuned_arm": name_a, "best_prompting_arm": name_b,
                    "delta": asdict(d), "p_adjusted": p_adj,
                    "break_even": asdict(be) if be else None,
                    "break_even_text": be.describe() if be else "no training cost known",
                    "training_cost_usd": training}
    if plateau is None:
        plateau = rules.PlateauResult("insufficient_data", None, None, (),
                                      "no few-shot sweep in this run")
    v = rules.decide(plateau, arm_ev, alpha=decision.alpha,
                     equivalence_margin=decision.equivalence_margin)
    return v, evidence


def meta_task(meta: RunMeta) -> Task:
    """The task of a recorded run."""
    return task_from_meta(meta.task_type, meta.labels, meta.output_schema or None)


def analyse(records: Sequence[Record], meta: RunMeta) -> Analysis:
    """Build every table and the verdict from a run's records and metadata."""
    task = meta_task(meta)
    df = results_frame(records, meta)
    summary, mats = summary_frame(df, meta, task)
    decision = meta.decision
    comparisons = comparisons_frame(summary, mats, n_boot=decision.bootstrap, alpha=decision.alpha)
    curve, plateau = curve_and_plateau(summary, mats, decision)
    v, evidence = verdict(summary, comparisons, plateau, mats, meta)
    complete = meta.status == "complete" and len(df) == meta.expected_records
    return Analysis(df.drop(columns=["arm"]), summary, per_class_frame(df, task), comparisons,
                    curve, plateau, v, evidence, complete)
