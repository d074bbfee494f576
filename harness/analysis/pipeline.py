"""The analysis of a run, end to end: *what does this run show?* `analyse` builds every
table and typed result a report shows (the summary, comparisons, curves, cascades, cost) and
hands them to `verdict.build`, the one place the recommendation is made."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.analysis import (
    calibration,
    cascades,
    clustered,
    cost,
    curves,
    design_space,
    guard,
    power,
    stats,
    verdict,
)
from harness.analysis.arms import (
    Matrices,
    best_prompting_arm,
    clusters_of,
    columns_frame,
    count_matrices,
    per_class_frame,
    reference_arm,
    row_name,
    summary_frame,
)
from harness.analysis.comparisons import Clusters, comparisons_frame
from harness.analysis.curves import PlateauResult
from harness.analysis.results import (
    CascadeResult,
    Clustering,
    CostByVolume,
    Evidence,
    Planning,
    Verdict,
)
from harness.config import DecisionConfig
from harness.errors import InputError
from harness.model.completion import is_endpoint_failure
from harness.running.records import Record, RunMeta
from harness.running.sequential import unit_name
from harness.running.store import RecordColumns, record_columns
from harness.running.verify import meta_task as meta_task  # (its home before running.verify)
from harness.tasks import has_fields

if TYPE_CHECKING:
    from harness.running.sequential import Monitor


@dataclass(frozen=True)
class Analysis:
    """Every table and typed result a report shows."""

    results: pd.DataFrame
    summary: pd.DataFrame  # one row per single arm (strategy, k); cascades are in `cascades`
    per_class: pd.DataFrame
    comparisons: pd.DataFrame
    curve: pd.DataFrame
    plateau: PlateauResult | None
    verdict: Verdict
    evidence: Evidence
    complete: bool
    withheld: tuple[str, ...] = ()  # why no verdict may be given (empty: the verdict stands)
    plateaus: tuple[PlateauResult, ...] = ()  # each few-shot curve's own judgement
    tried: pd.DataFrame | None = None  # what was tried of the prompt design space (curves.tried_frame)
    untried: tuple[str, ...] = ()  # cheap prompting levers the run did not try
    planning: Planning | None = None  # what the eval can detect (power.planning)
    calibration: pd.DataFrame | None = None  # confidence bins against accuracy (calibration.py)
    clustering: Clustering | None = None  # dataset.cluster: the clusters (clustering())
    cascades: tuple[CascadeResult, ...] = ()  # type cascade: each one's frontier and point
    cost_by_volume: CostByVolume | None = None  # monthly cost by volume (cost.py)
    metrics: Mapping[str, str] = field(default_factory=lambda: {"accuracy": "accuracy"})
    task_type: str = "classification"
    sequential: Monitor | None = None  # run.sequential: the looks, replayed from the records
    sequential_note: str | None = None  # ... and the verdict's sentence on them

    def metric_name(self, metric: str) -> str:
        """What the task calls a summary column in a header or a sentence."""
        return self.metrics.get(metric) or metric.replace("_", " ")

    @property
    def arms(self) -> pd.DataFrame:
        """summary.csv's rows: every single arm, then each cascade's operating point (held
        out)."""
        if not self.cascades:
            return self.summary
        return pd.concat([self.summary, cascades.summary_rows(self.cascades)], ignore_index=True)


def curve_and_plateau(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
                      counts: Matrices | None = None, clusters: Clusters = None
                      ) -> tuple[pd.DataFrame, PlateauResult | None]:
    """The learning curves and the one plateau judgement over them (`_curves`)."""
    curve, plateau, _ = _curves(summary, mats, decision, counts, clusters)
    return curve, plateau


def _curves(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
            counts: Matrices | None, clusters: Clusters = None
            ) -> tuple[pd.DataFrame, PlateauResult | None, tuple[PlateauResult, ...]]:
    """curves.curves_and_plateau, the curve of the arm the decision weighs (reference_arm) first."""
    best = reference_arm(summary, decision.metric, decision.min_schema_compliance)
    return curves.curves_and_plateau(summary, mats, decision, counts,
                                    None if best is None else str(best["strategy"]), clusters)


def analyse(records: Sequence[Record], meta: RunMeta) -> Analysis:
    """Build every table and the verdict from a run's records and metadata."""
    return analyse_columns(record_columns(records), meta)


def analyse_columns(cols: RecordColumns, meta: RunMeta, run_dir: Path | None = None
                    ) -> Analysis:
    """analyse from record columns (store.read_columns: a large run without a Record each).
    With the run folder of a sequential run (`run.sequential`), its looks are replayed from
    the records (running.sequential.replay): what was requested, where each arm stopped."""
    task = meta_task(meta)
    known = {a.key for a in meta.arms}
    stray = sorted(set(cols["arm"]) - known)
    if stray:
        raise InputError(f"results.jsonl: records of arm {stray[0]!r}, which run.json does not "
                         f"list (arms: {', '.join(sorted(known))}); the files do not belong "
                         "together")
    decision = meta.decision
    if decision.metric == "field_f1" and not has_fields(task):
        raise InputError(f"decision.metric: field_f1 applies to extraction tasks only, and this "
                         f"run's task is {task.name}; use accuracy")
    df = columns_frame(cols, meta)
    if has_fields(task) and len(df):
        # each field right or wrong, per example (an unusable answer has every field wrong)
        df["fields_right"] = [
            None if failed else json.dumps(task.field_results(e, p))
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
    looks = _sequential(cols, meta, run_dir)
    if looks is not None:
        comparisons = _anytime_comparisons(comparisons, looks, decision.alpha)
    curve, plateau, plateaus = _curves(summary, mats, decision, counts, codes)
    plan = _planning(summary, comparisons, meta)
    levers = design_space.untried(summary)
    routes = tuple(cascades.evaluate_all(df, summary, meta, decision.bootstrap, task))
    ft_rows = verdict.fine_tuned_rows(summary)
    costs = cost.volume_analysis(
        summary, meta, {str(r["strategy"]): verdict.training_cost(meta, r)
                        for _, r in ft_rows.iterrows()}, routes)
    note = None
    complete = meta.status == "complete" and len(df) == (
        meta.expected_records if looks is None else looks.expected_records)
    reasons = tuple(guard.withhold_reasons(df, summary, meta, task, complete,
                                           _expected(cols, meta)))
    v, evidence = verdict.build(verdict.Inputs(
        summary, comparisons, plateau, chosen, meta, plan, levers, routes, costs,
        guard.missing_note(meta), reasons))
    if looks is not None:
        by_unit = looks.requested_by_unit()
        summary = summary.assign(requested=[
            by_unit.get(unit_name(str(r["strategy"]), str(r["type"]), int(r["k"])))
            for _, r in summary.iterrows()])
        note = looks.sentence(meta)
        v = v.with_reasons(after=(note,))
    return Analysis(df.drop(columns=["arm"]), summary, per_class_frame(df, task), comparisons,
                    curve, plateau, v, evidence, complete, reasons, plateaus,
                    design_space.tried_frame(summary, comparisons, decision.metric), levers, plan,
                    calibration.calibration_frame(df), clustering(meta), routes, costs,
                    dict(task.metrics()), task.name, looks, note)


def _anytime_comparisons(comparisons: pd.DataFrame, looks: Monitor, alpha: float
                         ) -> pd.DataFrame:
    """A sequential run's comparisons: each pair's difference, interval and p-value from the
    confidence sequence (valid at whatever look the run stopped; a fixed-size test's are not),
    Holm over the rows as before, and the test named "confidence sequence"."""
    out = comparisons.copy()
    for i, row in out.iterrows():
        got = looks.anytime(str(row["arm_a"]), str(row["arm_b"]), alpha)
        if got is None:
            continue
        n, delta, low, high, p = got
        out.loc[i, ["n", "delta", "delta_ci_low", "delta_ci_high", "p_value"]] = \
            [n, delta, low, high, p]
        out.loc[i, "test"] = "confidence sequence"
    if len(out):
        out["p_adjusted"] = stats.holm_adjust(list(out["p_value"]))
        out["significant"] = out["p_adjusted"] < alpha
    return out


def _sequential(cols: RecordColumns, meta: RunMeta, run_dir: Path | None) -> Monitor | None:
    """A sequential run's looks, replayed from its records; None for any other run."""
    if run_dir is None:
        return None
    from harness.running.sequential import replay
    from harness.running.sequential_order import observation

    task, metric = meta_task(meta), meta.decision.metric
    endpoint = {kind: is_endpoint_failure(kind) for kind in set(cols["error_kind"])}
    return replay(run_dir, meta.arms, meta.decision, cols, endpoint,
                  lambda expected, prediction, correct: observation(task, metric, expected,
                                                                    prediction, correct))


def clustering(meta: RunMeta) -> Clustering | None:
    """A clustered run's clusters (`dataset.cluster`) and the methods that account for them;
    None for a run without clusters."""
    if not meta.clusters:
        return None
    got = clustered.summary(meta.clusters)
    return Clustering(meta.config.cluster, int(got["clusters"]), float(got["mean_cluster_size"]),
                      {k: v for k, v in got.items() if k not in ("clusters", "mean_cluster_size")})


def _planning(summary: pd.DataFrame, comparisons: pd.DataFrame, meta: RunMeta
              ) -> Planning | None:
    """power.planning of the decisive comparison: the fine-tuned arm against the best prompt,
    else the best prompt against zero-shot."""
    ft = verdict.fine_tuned_rows(summary)
    best = reference_arm(summary, meta.decision.metric, meta.decision.min_schema_compliance)
    if len(ft) and best is not None:
        pair: tuple[str, str] | None = (row_name(ft.iloc[0]), row_name(best))
    else:
        best = best_prompting_arm(summary)
        zs = summary[summary["type"] == "zero_shot"] if len(summary) else summary
        pair = (row_name(best), row_name(zs.iloc[0])) if best is not None and len(zs) else None
    return power.planning(comparisons, pair)


def _expected(cols: RecordColumns, meta: RunMeta) -> list[Any]:
    """The gold answer of each eval example (from the first record that has it)."""
    gold = dict(zip(reversed(cols["example_id"]), reversed(cols["expected"]), strict=True))
    return [gold[e] for e in meta.examples if e in gold]
