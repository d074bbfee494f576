"""The decision: learning curve and plateau, the fine-tune evidence and the verdict; `analyse`
builds every table and judgement a report shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from harness.analysis import guard, rules, stats
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
from harness.errors import InputError
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
    withheld: tuple[str, ...] = ()  # why no verdict may be given (empty: the verdict stands)


CURVE_COLUMNS = ["strategy", "k", "accuracy", "ci_low", "ci_high", "step_from", "gain",
                 "gain_ci_low", "gain_ci_high", "step_n", "step"]


def curve_and_plateau(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig
                      ) -> tuple[pd.DataFrame, rules.PlateauResult | None]:
    """The learning curve of the first few-shot strategy (with zero-shot of the same model as
    k=0), and whether it has plateaued.

    Each row is one k: its accuracy and interval (the summary's), and the plateau rule's step
    into it from the previous k (step_from): the paired gain with its interval, the number of
    examples scored at both ks (step_n) and the step's kind (rules.step_kind; empty on the first
    row). A step is computed exactly as the comparisons table computes a pair (the examples
    with results at both ks, the same paired bootstrap and seed), so where the table has the
    same two arms (e.g. a k against the best prompt, or k=1 against zero-shot) its delta and
    interval are the step's gain, with the sign flipped when the table lists them the other
    way round.
    """
    fs = sweep_rows(summary)
    if fs.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS), None
    strategy = fs.iloc[0]["strategy"]
    model = fs.iloc[0]["model"]
    zs = summary[(summary["type"] == "zero_shot") & (summary["model"] == model)]
    points = summary[summary["strategy"] == strategy]
    if len(zs):
        points = pd.concat([zs.iloc[[0]], points])
    curve = points[["strategy", "k", "accuracy", "ci_low", "ci_high"]].reset_index(drop=True)
    scores = {int(row["k"]): mats[(row["strategy"], row["k"])] for _, row in points.iterrows()}
    plateau = rules.detect_plateau(scores, min_gain=decision.min_gain, n_boot=decision.bootstrap,
                                   seed=0)
    into = [next((s for s in plateau.steps if s.k_to == int(k)), None) for k in curve["k"]]
    nan = math.nan
    curve["step_from"] = pd.Series([s.k_from if s else None for s in into], dtype=object)
    curve["gain"] = [s.gain.estimate if s else nan for s in into]
    curve["gain_ci_low"] = [s.gain.low if s else nan for s in into]
    curve["gain_ci_high"] = [s.gain.high if s else nan for s in into]
    curve["step_n"] = pd.Series([s.n if s else None for s in into], dtype=object)
    curve["step"] = [s.kind if s else "" for s in into]
    return curve[CURVE_COLUMNS], plateau


def _configured_training_cost(meta: RunMeta, strategy: str) -> float | None:
    """`training_cost_usd` of the strategy's `fine_tuned_model` mapping in the run's config."""
    for s in meta.config_raw.get("strategies") or ():
        if isinstance(s, dict) and s.get("name") == strategy:
            ft = s.get("fine_tuned_model")
            cost = ft.get("training_cost_usd") if isinstance(ft, dict) else None
            return None if cost is None else float(cost)
    return None


def _training_cost(meta: RunMeta, f: pd.Series) -> float | None:
    """USD the fine-tune cost: the config's `fine_tuned_model.training_cost_usd` first (0 when
    already paid), then the registry's recorded cost, then its trained tokens at the model's
    training price (pricing.price_of: the configured `price.training`, else the table's); None
    when unknown."""
    training = _configured_training_cost(meta, str(f["strategy"]))
    if training is not None:
        return training
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
        be, saving, cap = None, None, None
        prompt_cost, ft_cost = best["cost_per_1k"] / 1000, f["cost_per_1k"] / 1000
        if not (math.isnan(prompt_cost) or math.isnan(ft_cost)):
            saving = float(prompt_cost) - float(ft_cost)
            if training is not None:
                be = rules.break_even(training, float(prompt_cost), float(ft_cost),
                                      horizon_months=decision.horizon_months)
            if decision.monthly_volume is not None:
                cap = rules.max_training_cost(saving, decision.monthly_volume,
                                              decision.horizon_months)
        arm_ev = rules.ArmEvidence(d, p_adj, be, decision.monthly_volume, saving,
                                   decision.horizon_months)
        cost_text = (rules.pays_back(arm_ev)[1] if saving is not None
                     else "no training cost known" if training is None
                     else "no per-query cost known")
        evidence = {"fine_tuned_arm": name_a, "best_prompting_arm": name_b,
                    "delta": asdict(d), "p_adjusted": p_adj,
                    "break_even": asdict(be) if be else None,
                    "break_even_text": cost_text,
                    "training_cost_usd": training, "saving_per_query_usd": saving,
                    "max_training_cost_usd": cap}
    if plateau is None:
        plateau = rules.PlateauResult("insufficient_data", None, None, (),
                                      "no few-shot sweep in this run")
    v = rules.decide(plateau, arm_ev, alpha=decision.alpha,
                     equivalence_margin=decision.equivalence_margin)
    return v, evidence


def meta_task(meta: RunMeta) -> Task:
    """The task of a recorded run."""
    raw_task = meta.config_raw.get("task") if isinstance(meta.config_raw, dict) else None
    match = raw_task.get("match") if isinstance(raw_task, dict) else None
    return task_from_meta(meta.task_type, meta.labels, meta.output_schema or None,
                          match if isinstance(match, dict) else None)


def analyse(records: Sequence[Record], meta: RunMeta) -> Analysis:
    """Build every table and the verdict from a run's records and metadata."""
    task = meta_task(meta)
    known = {a.key for a in meta.arms}
    stray = sorted({r.arm for r in records} - known)
    if stray:
        raise InputError(f"results.jsonl: records of arm {stray[0]!r}, which run.json does not "
                         f"list (arms: {', '.join(sorted(known))}); the files do not belong "
                         "together")
    df = results_frame(records, meta)
    summary, mats = summary_frame(df, meta, task)
    decision = meta.decision
    comparisons = comparisons_frame(summary, mats, n_boot=decision.bootstrap, alpha=decision.alpha)
    curve, plateau = curve_and_plateau(summary, mats, decision)
    v, evidence = verdict(summary, comparisons, plateau, mats, meta)
    complete = meta.status == "complete" and len(df) == meta.expected_records
    reasons = guard.withhold_reasons(df, summary, meta, task, complete, _expected(records, meta))
    if reasons:
        v = guard.withheld(reasons, v)
    return Analysis(df.drop(columns=["arm"]), summary, per_class_frame(df, task), comparisons,
                    curve, plateau, v, evidence, complete, tuple(reasons))


def _expected(records: Sequence[Record], meta: RunMeta) -> list[Any]:
    """The gold answer of each eval example (from the first record that has it)."""
    gold: dict[str, Any] = {}
    for r in records:
        gold.setdefault(r.example_id, r.expected)
    return [gold[e] for e in meta.examples if e in gold]
