"""The decision: learning curve and plateau, the fine-tune evidence and the verdict; `analyse`
builds every table and judgement a report shows."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from harness.analysis import (
    calibration,
    cascade,
    clustered,
    compliance,
    guard,
    power,
    rules,
    space,
    stats,
    volume,
)
from harness.analysis.pairs import Clusters, comparisons_frame, paired
from harness.analysis.tables import (
    Matrices,
    best_prompting_arm,
    clusters_of,
    columns_frame,
    count_matrices,
    per_class_frame,
    price,
    reference_arm,
    row_name,
    summary_frame,
)
from harness.config import DecisionConfig
from harness.errors import InputError
from harness.model import pricing
from harness.running.records import Record, RunMeta
from harness.running.store import RecordColumns, record_columns
from harness.running.verify import meta_task as meta_task  # (its home before running.verify)
from harness.strategies import is_fine_tuned, is_prompting
from harness.tasks import ExtractionTask


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
    plateaus: tuple[rules.PlateauResult, ...] = ()  # each few-shot curve's own judgement
    tried: pd.DataFrame | None = None  # what was tried of the prompt design space (space.tried_frame)
    untried: tuple[str, ...] = ()  # cheap prompting levers the run did not try
    planning: dict[str, Any] | None = None  # what the eval can detect (power.planning)
    calibration: pd.DataFrame | None = None  # confidence bins against accuracy (calibration.py)
    clustering: dict[str, Any] | None = None  # dataset.cluster: the clusters (clustering())
    cascades: tuple[dict[str, Any], ...] = ()  # type cascade: each one's frontier and point
    cost_by_volume: dict[str, Any] | None = None  # monthly cost by volume (volume.py)


def curve_and_plateau(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
                      counts: Matrices | None = None, clusters: Clusters = None
                      ) -> tuple[pd.DataFrame, rules.PlateauResult | None]:
    """The learning curves and the one plateau judgement over them (`_curves`)."""
    curve, plateau, _ = _curves(summary, mats, decision, counts, clusters)
    return curve, plateau


def _curves(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
            counts: Matrices | None, clusters: Clusters = None
            ) -> tuple[pd.DataFrame, rules.PlateauResult | None, tuple[rules.PlateauResult, ...]]:
    """space.curves_and_plateau, the curve of the arm the decision weighs (reference_arm) first."""
    best = reference_arm(summary, decision.metric, decision.min_schema_compliance)
    return space.curves_and_plateau(summary, mats, decision, counts,
                                    None if best is None else str(best["strategy"]), clusters)


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


def _arm_format(row: pd.Series | None) -> compliance.ArmFormat | None:
    if row is None:
        return None
    so = row.get("structured_output")
    return compliance.ArmFormat(row_name(row), float(row["schema_compliance"]),
                                so if isinstance(so, str) else None)


def format_evidence(summary: pd.DataFrame, ft: pd.Series | None, floor: float, metric: str
                    ) -> compliance.FormatEvidence:
    """The compliance floor's evidence from the summary (see compliance.FormatEvidence)."""
    ok = summary[(summary["n"] > 0) & summary["schema_compliance"].notna()]
    prompting = ok[ok["type"].map(is_prompting).astype(bool)] if len(ok) else ok
    top = prompting.loc[prompting["schema_compliance"].idxmax()] if len(prompting) else None
    return compliance.FormatEvidence(floor, _arm_format(best_prompting_arm(summary, metric, floor)),
                                     _arm_format(top), _arm_format(ft))


def verdict(summary: pd.DataFrame, comparisons: pd.DataFrame, plateau: rules.PlateauResult | None,
            mats: Matrices, meta: RunMeta) -> tuple[rules.Verdict, dict[str, Any]]:
    """The recommendation, and the evidence on the fine-tuned arm behind it.

    ``mats`` hold the per-example results of `decision.metric`: score matrices for accuracy,
    count matrices (tables.count_matrices) for field_f1. The fine-tuned arm is weighed against
    tables.reference_arm (the best prompt reaching `decision.min_schema_compliance`, if set);
    with that floor set, compliance.decide_with_floor gives the verdict, else rules.decide.
    """
    decision = meta.decision
    metric, floor = decision.metric, decision.min_schema_compliance
    ok = summary[summary["n"] > 0]
    ft = ok[ok["type"].map(is_fine_tuned).astype(bool) & (ok["errors"] < ok["n"])] if len(ok) else ok
    best = reference_arm(summary, metric, floor)
    evidence: dict[str, Any] = {"metric": metric}
    arm_ev = None
    if best is not None and len(ft):
        f = ft.iloc[0]
        a, b = (f["strategy"], f["k"]), (best["strategy"], best["k"])
        name_a, name_b = row_name(f), row_name(best)
        match = comparisons[(comparisons["arm_a"] == name_a) & (comparisons["arm_b"] == name_b)]
        p_adj = float(match["p_adjusted"].iloc[0]) if len(match) else 1.0
        if len(match):  # the table weighed this pair already: the same test, seed and examples
            row = match.iloc[0]
            test = str(row["test"])
            d = stats.Interval(float(row["delta"]), float(row["delta_ci_low"]),
                               float(row["delta_ci_high"]))
        else:
            got = paired(mats, a, b, n_boot=decision.bootstrap, metric=metric,
                         clusters=clusters_of(meta))
            test = got[3] if got else "paired_bootstrap" if metric == "field_f1" else "mcnemar"
            d = got[1] if got else stats.Interval(math.nan, math.nan, math.nan)
        training = _training_cost(meta, f)
        engineering = volume.engineering_cost(meta)
        if training is not None:  # the up-front cost: training and engineering time
            training += engineering
        be, saving, cap = None, None, None
        prompt_cost, ft_cost = best["cost_per_1k"] / 1000, f["cost_per_1k"] / 1000
        if not (math.isnan(prompt_cost) or math.isnan(ft_cost)):
            saving = float(prompt_cost) - float(ft_cost)
            hosting = (volume.hosting(meta, [str(best["model"])])
                       - volume.hosting(meta, [str(f["model"])]))
            if hosting and decision.monthly_volume:  # fixed costs, spread over the volume
                saving += hosting / decision.monthly_volume
            if training is not None:
                be = rules.break_even(training, float(prompt_cost), float(ft_cost),
                                      horizon_months=decision.horizon_months)
            if decision.monthly_volume is not None:
                cap = rules.max_training_cost(saving, decision.monthly_volume,
                                              decision.horizon_months)
        zero = saving is not None and float(prompt_cost) == 0 and float(ft_cost) == 0
        arm_ev = rules.ArmEvidence(d, p_adj, be, decision.monthly_volume, saving,
                                   decision.horizon_months, zero)
        cost_text = (rules.pays_back(arm_ev)[1] if saving is not None
                     else "no training cost known" if training is None
                     else "no per-query cost known")
        evidence = {"metric": metric, "test": test,
                    "fine_tuned_arm": name_a, "best_prompting_arm": name_b,
                    "delta": asdict(d), "p_adjusted": p_adj,
                    "break_even": asdict(be) if be else None,
                    "break_even_text": cost_text,
                    "training_cost_usd": training, "saving_per_query_usd": saving,
                    "engineering_cost_usd": engineering,
                    "max_training_cost_usd": cap}
    if plateau is None:
        plateau = rules.PlateauResult("insufficient_data", None, None, (),
                                      "no few-shot sweep in this run")
    if floor is not None:
        fmt = format_evidence(summary, ft.iloc[0] if len(ft) else None, floor, metric)
        evidence["min_schema_compliance"] = floor
        return compliance.decide_with_floor(
            plateau, arm_ev, fmt, alpha=decision.alpha,
            equivalence_margin=decision.equivalence_margin, metric=metric), evidence
    v = rules.decide(plateau, arm_ev, alpha=decision.alpha,
                     equivalence_margin=decision.equivalence_margin, metric=metric)
    return v, evidence


def analyse(records: Sequence[Record], meta: RunMeta) -> Analysis:
    """Build every table and the verdict from a run's records and metadata."""
    return analyse_columns(record_columns(records), meta)


def analyse_columns(cols: RecordColumns, meta: RunMeta) -> Analysis:
    """analyse from record columns (store.read_columns: a large run without a Record each)."""
    task = meta_task(meta)
    known = {a.key for a in meta.arms}
    stray = sorted(set(cols["arm"]) - known)
    if stray:
        raise InputError(f"results.jsonl: records of arm {stray[0]!r}, which run.json does not "
                         f"list (arms: {', '.join(sorted(known))}); the files do not belong "
                         "together")
    decision = meta.decision
    if decision.metric == "field_f1" and task.name != "extraction":
        raise InputError(f"decision.metric: field_f1 applies to extraction tasks only, and this "
                         f"run's task is {task.name}; use accuracy")
    df = columns_frame(cols, meta)
    if isinstance(task, ExtractionTask) and len(df):
        # each field right or wrong, per example (an unusable answer has every field wrong)
        df["fields_right"] = [
            None if failed else json.dumps(task.field_correct(e, p) if isinstance(p, dict)
                                           else dict.fromkeys(task.fields, False))
            for e, p, failed in zip(df["expected"], df["prediction"], df["endpoint_failed"],
                                    strict=True)]
    summary, mats = summary_frame(df, meta, task)
    counts = count_matrices(df, meta, task) if decision.metric == "field_f1" else None
    chosen = counts if counts is not None else mats
    codes = clusters_of(meta)
    comparisons = comparisons_frame(summary, chosen, n_boot=decision.bootstrap,
                                    alpha=decision.alpha, metric=decision.metric,
                                    min_compliance=decision.min_schema_compliance,
                                    clusters=codes)
    curve, plateau, plateaus = _curves(summary, mats, decision, counts, codes)
    v, evidence = verdict(summary, comparisons, plateau, chosen, meta)
    plan = _planning(summary, comparisons, evidence)
    note = power.caution(plan, (evidence.get("delta") or {}).get("estimate"))
    if note:
        v = rules.Verdict(v.recommendation, v.sentence, (*v.reasons, note))
    levers = space.untried(summary)
    v = space.with_untried(v, levers)
    routes = tuple(cascade.evaluate_all(df, summary, meta, decision.bootstrap, task))
    ft_rows = summary[summary["type"].map(is_fine_tuned).astype(bool)] if len(summary) else summary
    costs = volume.volume_analysis(
        summary, meta, {str(r["strategy"]): _training_cost(meta, r) for _, r in ft_rows.iterrows()},
        routes)
    hybrid = cascade.hybrid(routes)
    at = (costs.get("at_volume") or {}).get("sentences") or []
    if at:  # the point on the cost curves that decision.monthly_volume picks
        v = rules.Verdict(v.recommendation, v.sentence, (*v.reasons, *at))
    if hybrid is not None:  # a cascade beats both of its arms: how much of each
        v = rules.Verdict("hybrid", hybrid[0], (*hybrid[1], f"Otherwise: {v.sentence}",
                                                 *v.reasons))
    complete = meta.status == "complete" and len(df) == meta.expected_records
    reasons = guard.withhold_reasons(df, summary, meta, task, complete, _expected(cols, meta))
    missing = guard.missing_note(meta)
    if missing is not None:
        v = rules.Verdict(v.recommendation, v.sentence, (missing, *v.reasons))
    if reasons:
        v = guard.withheld(reasons, v)
    per_class = per_class_frame(df, task)
    if routes:  # the cascade rows (NAME@t=THRESHOLD) after every single arm
        summary = pd.concat([summary, cascade.summary_rows(routes)], ignore_index=True)
    return Analysis(df.drop(columns=["arm"]), summary, per_class, comparisons,
                    curve, plateau, v, evidence, complete, tuple(reasons), plateaus,
                    space.tried_frame(summary, comparisons, decision.metric), levers, plan,
                    calibration.calibration_frame(df), clustering(meta), routes, costs)


def clustering(meta: RunMeta) -> dict[str, Any] | None:
    """A clustered run's clusters (`dataset.cluster`) and the methods that account for them;
    None for a run without clusters."""
    if not meta.clusters:
        return None
    raw = meta.config_raw.get("dataset") if isinstance(meta.config_raw, dict) else None
    return {"field": raw.get("cluster") if isinstance(raw, dict) else None,
            **clustered.summary(meta.clusters),
            "interval": "Wilson at the effective size n / design effect, t with K - 1 degrees "
                        "of freedom (Korn & Graubard 1998); cluster bootstrap for draws and F1",
            "paired_test": "clustered McNemar (Durkalski et al. 2003, Stat Med 22: 2417-2428)"}


def _planning(summary: pd.DataFrame, comparisons: pd.DataFrame, evidence: dict[str, Any]
              ) -> dict[str, Any]:
    """power.planning of the decisive comparison: the fine-tuned arm against the best prompt,
    else the best prompt against zero-shot."""
    if evidence.get("fine_tuned_arm"):
        return power.planning(comparisons, (evidence["fine_tuned_arm"],
                                            evidence["best_prompting_arm"]))
    best = best_prompting_arm(summary)
    zs = summary[summary["type"] == "zero_shot"] if len(summary) else summary
    pair = (row_name(best), row_name(zs.iloc[0])) if best is not None and len(zs) else None
    return power.planning(comparisons, pair)


def _expected(cols: RecordColumns, meta: RunMeta) -> list[Any]:
    """The gold answer of each eval example (from the first record that has it)."""
    gold = dict(zip(reversed(cols["example_id"]), reversed(cols["expected"]), strict=True))
    return [gold[e] for e in meta.examples if e in gold]
