"""The arms: *what did each arm score?* From per-example records to tables: the results frame,
the per-arm summary (one row per strategy and k, pooled over draws, with its intervals from
intervals.py), the per-example score and count matrices, per-class figures, and which arm is
the best prompt the decision weighs against.

Everything here is computed from a run folder's records and metadata alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import clustered, stats
from harness.analysis.intervals import complete_rows, interval, proportion
from harness.analysis.metrics import frame_metrics
from harness.config import Price
from harness.errors import InputError
from harness.model import pricing
from harness.model.completion import is_endpoint_failure
from harness.running.records import ArmMeta, Record, RunMeta
from harness.running.store import RecordColumns, record_columns
from harness.strategies import arm_name, is_prompting, is_sweep
from harness.tasks import Task, has_fields

RESULT_COLUMNS = [
    "strategy", "type", "model", "model_id", "k", "draw", "example_id", "input", "expected",
    "prediction", "correct", "parse_ok", "schema_valid", "error_kind", "error", "output",
    "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms",
    "attempts", "cached", "cost_usd", "prompt_sha256", "lenient", "replica", "batch_id",
    "vote_share", "sample_accuracy", "confidence",
]

ArmId = tuple[str, int]  # (strategy, k): one row of the summary, pooled over draws
Matrices = Mapping[ArmId, np.ndarray]


def price(meta: RunMeta, model: str, model_id: str) -> Price | None:
    """The price of a recorded model id (the configured price first)."""
    return pricing.price_of(meta.models[model], model_id)


def results_frame(records: Sequence[Record], meta: RunMeta) -> pd.DataFrame:
    """One row per example x arm, in arm order then example order, with a cost column."""
    return columns_frame(record_columns(records), meta)


def _positions(values: Sequence[Any], order: Sequence[str]) -> np.ndarray:
    """Each value's place in `order` (the last place of a repeated one); 1 << 30 where absent."""
    places = {v: i for i, v in enumerate(order)}
    got = pd.Series(values, dtype=object).map(places)
    return np.asarray(got.fillna(1 << 30).to_numpy(dtype=np.int64))


def _truthy(values: Sequence[Any]) -> np.ndarray:
    """bool(v) of each value."""
    return np.fromiter(map(bool, values), dtype=bool, count=len(values))


def _costs(cols: RecordColumns, meta: RunMeta) -> np.ndarray:
    """USD per row: 0 for a cached answer, NaN where the model id has no known price, the batch
    rates (pricing.batch_price) for a Batch API answer. One price
    lookup per model id and one pricing.query_cost per distinct token count, not per row."""
    n = len(cols["arm"])
    tokens = np.array([cols["prompt_tokens"], cols["completion_tokens"], cols["cached_tokens"]],
                      dtype=float).T  # None -> NaN -> 0, as `or 0`
    tokens = np.nan_to_num(tokens, nan=0.0)
    distinct, which = np.unique(tokens, axis=0, return_inverse=True)
    which = which.reshape(-1)
    codes, models = pd.factorize(pd.Series(list(zip(cols["model"], cols["model_id"], strict=True)),
                                           dtype=object))
    cached = _truthy(cols["cached"])
    batched = np.fromiter((b is not None for b in cols["batch_id"]), dtype=bool, count=n)
    out = np.full(n, math.nan)
    for code, (model, model_id) in enumerate(models):
        base = price(meta, model, model_id)
        for in_batch, p in ((False, base), (True, base and pricing.batch_price(base))):
            rows = np.flatnonzero((codes == code) & ~cached & (batched == in_batch))
            if p is None or not len(rows):
                continue
            used = np.unique(which[rows])
            per = np.full(len(distinct), math.nan)
            for t in used:
                pt, ct_, co = distinct[t]
                per[t] = pricing.query_cost(p, int(pt), int(ct_), int(co))
            out[rows] = per[which[rows]]
    out[cached] = 0.0
    return out


def columns_frame(cols: RecordColumns, meta: RunMeta) -> pd.DataFrame:
    """results_frame from record columns (store.read_columns): the same frame, built without a
    Python object per row."""
    n = len(cols["arm"])
    if n == 0:
        df = pd.DataFrame([], columns=[*RESULT_COLUMNS, "arm"])
        df["cost_usd"] = []
        df["lenient"] = np.array([], dtype=bool)
        df["endpoint_failed"] = np.array([], dtype=bool)
        df["vote_share"] = df["sample_accuracy"] = df["confidence"] = np.array([], dtype=float)
        return df
    order = np.lexsort((_positions(cols["example_id"], meta.examples),
                        _positions(cols["arm"], [a.key for a in meta.arms])))  # stable
    failed = {kind: is_endpoint_failure(kind) for kind in set(cols["error_kind"])}
    share = np.array([math.nan if v is None else v for v in cols["vote_share"]], dtype=float)
    derived: dict[str, np.ndarray] = {
        "cost_usd": _costs(cols, meta),
        "lenient": np.array(cols["lenient"], dtype=bool),
        "endpoint_failed": np.fromiter(map(failed.__getitem__, cols["error_kind"]), dtype=bool,
                                       count=n),
        # self-consistency: the vote's share, and the share of samples right on their own
        "vote_share": share,
        "sample_accuracy": np.array([math.nan if not c else sum(c) / len(c)
                                     for c in cols["sample_correct"]], dtype=float),
        # the answer's confidence (0-1): its probability from token log-probabilities
        # (`confidence: logprob`), else its vote share (`confidence: agreement`); NaN without
        "confidence": np.array([s if c is None else c for c, s in
                                zip(cols["confidence"], share.tolist(), strict=True)], dtype=float),
    }
    take = itemgetter(*order.tolist())
    data: dict[str, Any] = {}
    for name in [*RESULT_COLUMNS, "arm", "endpoint_failed"]:
        if name in derived:
            data[name] = derived[name][order]
        else:
            data[name] = list(take(cols[name])) if n > 1 else [cols[name][0]]
    return pd.DataFrame(data)


def score_matrix(df: pd.DataFrame, strategy: str, k: int, examples: Sequence[str]) -> np.ndarray:
    """(n_examples, n_draws) of 0/1 correctness; NaN where an example has no record yet or the
    endpoint failed on it (no answer of the model to judge)."""
    sub = df[(df["strategy"] == strategy) & (df["k"] == k)]
    draws = sorted(sub["draw"].unique()) or [0]
    out = np.full((len(examples), len(draws)), np.nan)
    for d_i, d in enumerate(draws):
        part = sub[(sub["draw"] == d) & ~sub["endpoint_failed"]]
        pos = _positions(part["example_id"].astype(str).tolist(), examples)
        known = pos < len(examples)
        out[pos[known], d_i] = _truthy(part["correct"].tolist())[known]
    return out


def count_matrix(df: pd.DataFrame, strategy: str, k: int, examples: Sequence[str],
                 task: Task) -> np.ndarray:
    """(n_examples, 3) per-example (tp, fp, fn) of field F1, summed over the fields (see
    Task.example_counts: an unusable answer misses every gold value); for several draws
    the mean over draws. NaN rows where an example lacks a record in some draw or the endpoint
    failed on it, as in score_matrix."""
    sub = df[(df["strategy"] == strategy) & (df["k"] == k)]
    draws = sorted(sub["draw"].unique()) or [0]
    pos = {e: i for i, e in enumerate(examples)}
    out = np.full((len(examples), len(draws), 3), np.nan)
    for d_i, d in enumerate(draws):
        part = sub[(sub["draw"] == d) & ~sub["endpoint_failed"]]
        for ex, gold, pred in zip(part["example_id"].astype(str), part["expected"],
                                  part["prediction"], strict=True):
            counts = task.example_counts(gold, pred)
            if ex in pos and counts is not None:
                out[pos[ex], d_i] = counts
    return np.asarray(out.mean(axis=1))  # NaN where any draw is missing


def count_matrices(df: pd.DataFrame, meta: RunMeta, task: Task) -> dict[ArmId, np.ndarray]:
    """count_matrix of every (strategy, k) of an extraction run; {} for other tasks."""
    if not has_fields(task):
        return {}
    arms = dict.fromkeys((a.strategy, a.k) for a in meta.arms)
    return {(s, k): count_matrix(df, s, k, list(meta.examples), task) for s, k in arms}


def clusters_of(meta: RunMeta) -> np.ndarray | None:
    """The cluster code of each eval example (`dataset.cluster`, in meta.examples order); None
    for a run without clusters."""
    if not meta.clusters:
        return None
    if len(meta.clusters) != len(meta.examples):
        raise InputError(f"run.json: {len(meta.clusters)} clusters for {len(meta.examples)} "
                         "examples; the file is damaged")
    return stats.cluster_codes(meta.clusters, len(meta.examples))


def summary_frame(df: pd.DataFrame, meta: RunMeta, task: Task
                  ) -> tuple[pd.DataFrame, dict[ArmId, np.ndarray]]:
    """One row per (strategy, k) pooled over draws; also the score matrices by arm.

    A clustered run (`dataset.cluster`) has clustered intervals (interval) and two more
    columns: `clusters` (how many the answered examples fall in) and `design_effect` (of the
    accuracy: clustered.design_effect of the per-example mean over draws)."""
    examples = list(meta.examples)
    n_boot = meta.decision.bootstrap
    codes = clusters_of(meta)
    code_of = dict(zip(examples, codes.tolist(), strict=True)) if codes is not None else {}
    first: dict[ArmId, ArmMeta] = {}
    for arm in meta.arms:
        first.setdefault((arm.strategy, arm.k), arm)
    draws_of: dict[ArmId, int] = {}
    for arm in meta.arms:
        draws_of[(arm.strategy, arm.k)] = draws_of.get((arm.strategy, arm.k), 0) + 1
    rows, mats = [], {}
    for (strategy, k), a in first.items():
        sub = df[(df["strategy"] == strategy) & (df["k"] == k)]
        answered = sub[~sub["endpoint_failed"]]
        m = frame_metrics(sub, task)
        mat = score_matrix(df, strategy, k, examples)
        mats[(strategy, k)] = mat
        ci = interval(mat, n_boot, seed=0, clusters=codes)
        planned = len(examples) * draws_of[(strategy, k)]
        sv = answered["schema_valid"].astype(bool).to_numpy() if len(answered) else np.array([])
        row_codes = (np.array([code_of.get(str(e), -1) for e in answered["example_id"]], dtype=np.int64)
                     if codes is not None else None)
        sci = proportion(int(sv.sum()), len(sv), row_codes, sv)
        f1ci = {}
        if has_fields(task):
            counts = count_matrix(df, strategy, k, examples, task)
            full = complete_rows(counts)
            fi = stats.bootstrap_f1_interval(counts[full], n_boot=n_boot,
                                             clusters=None if codes is None else codes[full])
            f1ci = {"field_f1_ci_low": fi.low, "field_f1_ci_high": fi.high}
        if codes is not None:
            full = complete_rows(mat)
            f1ci["clusters"] = int(np.unique(codes[full]).size)
            f1ci["design_effect"] = clustered.design_effect(mat[full].mean(axis=1), codes[full])
        cost = sub["cost_usd"].mean() if len(sub) else math.nan
        p = price(meta, a.model, a.model_id)
        est = (pricing.query_cost(p, m.mean_prompt_tokens, m.mean_completion_tokens)
               if p is not None and not math.isnan(m.mean_prompt_tokens) else math.nan)
        rows.append({
            "strategy": strategy, "type": a.type, "model": a.model, "model_id": a.model_id,
            "variant": a.variant, "selection": a.selection, "samples": a.samples,
            "k": k, "n": int(answered["example_id"].nunique()),
            "draws": draws_of[(strategy, k)], "answers": m.n, "accuracy": m.accuracy,
            "ci_low": ci.low, "ci_high": ci.high, "macro_f1": m.macro_f1,
            "schema_compliance": m.schema_compliance, "schema_ci_low": sci.low,
            "schema_ci_high": sci.high, "parse_failure_rate": m.parse_failure_rate,
            "errors": m.errors, "failures": int(sub["error_kind"].notna().sum()) if len(sub) else 0,
            "endpoint_failures": int(sub["endpoint_failed"].sum()),
            "coverage": m.n / planned if planned else math.nan,
            "cache_hits": int(sub["cached"].astype(bool).sum()) if len(sub) else 0,
            "mean_prompt_tokens": m.mean_prompt_tokens,
            "mean_completion_tokens": m.mean_completion_tokens,
            "cost_per_1k": est * 1000 if not math.isnan(est) else math.nan,
            "run_cost_usd": float(sub["cost_usd"].sum()) if len(sub) and not math.isnan(cost) else math.nan,
            "latency_p50_ms": m.latency_p50_ms, "latency_p95_ms": m.latency_p95_ms,
            "prompt_sha256": a.prompt_sha256, "unavailable": a.unavailable,
            "structured_output": a.structured_output,
            "lenient_parses": int(answered["lenient"].astype(bool).sum()) if len(answered) else 0,
            **(task.extra_metrics(answered["expected"].tolist(), answered["prediction"].tolist())
               if len(answered) else {}),
            **f1ci, **_vote_columns(answered, a.samples, n_boot, row_codes),
        })
    return pd.DataFrame(rows), mats


def _vote_columns(answered: pd.DataFrame, samples: int, n_boot: int,
                  row_codes: np.ndarray | None = None) -> dict[str, float]:
    """Self-consistency figures of one arm (NaN without a vote): the accuracy of a single
    sample (the mean share of samples right on their own), the vote's paired gain over it with
    its bootstrap interval (over clusters, given each answer's cluster code), and the mean vote
    share."""
    nan = math.nan
    voting = answered["sample_accuracy"].notna().to_numpy() if samples > 1 else np.zeros(
        len(answered), dtype=bool)
    rows = answered[voting]
    if not len(rows):
        return {"single_sample_accuracy": nan, "vote_gain": nan, "vote_gain_ci_low": nan,
                "vote_gain_ci_high": nan, "mean_vote_share": nan}
    single = rows["sample_accuracy"].to_numpy(dtype=float)
    voted = _truthy(rows["correct"].tolist()).astype(float)
    gain = stats.paired_difference(voted, single, n_boot=n_boot, seed=0,
                                   clusters=None if row_codes is None else row_codes[voting])
    return {"single_sample_accuracy": float(single.mean()), "vote_gain": gain.estimate,
            "vote_gain_ci_low": gain.low, "vote_gain_ci_high": gain.high,
            "mean_vote_share": float(rows["vote_share"].mean())}


def per_class_frame(df: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Per-class (classification: `label`) or per-field (extraction: `field`, with accuracy too)
    precision/recall/F1 for every (strategy, k), over the answered examples."""
    fields = has_fields(task)
    key = "field" if fields else "label"
    figures = ["accuracy"] if fields else []
    rows = []
    for (strategy, k), sub in df[~df["endpoint_failed"]].groupby(["strategy", "k"], sort=False):
        table = task.breakdown(sub["expected"].tolist(), sub["prediction"].tolist())
        for label, v in table.items():
            rows.append({"strategy": strategy, "k": k, key: label, **v})
    return pd.DataFrame(rows, columns=["strategy", "k", key, *figures, "precision", "recall", "f1",
                                       "support"])


def best_prompting_arm(summary: pd.DataFrame, metric: str = "accuracy",
                       min_compliance: float | None = None) -> pd.Series | None:
    """The prompting arm (any strategy, any k) with the highest ``metric`` (a summary column:
    accuracy or field_f1); the first on a tie. With ``min_compliance``, only the arms whose
    schema compliance reaches it count (None when none does).

    The one place this choice is made: comparisons, the verdict and the gate all use it.
    """
    if metric not in summary.columns:
        return None
    ok = summary[(summary["n"] > 0) & summary[metric].notna()]
    if min_compliance is not None and len(ok):
        ok = ok[ok["schema_compliance"] >= min_compliance]
    prompting = ok[ok["type"].map(is_prompting).astype(bool)] if len(ok) else ok
    if not len(prompting):
        return None
    return prompting.loc[prompting[metric].idxmax()]


def reference_arm(summary: pd.DataFrame, metric: str = "accuracy",
                  min_compliance: float | None = None) -> pd.Series | None:
    """The best prompting arm the decision weighs the fine-tuned arm against: the best that
    reaches the compliance floor, or the best regardless of it when none does."""
    best = best_prompting_arm(summary, metric, min_compliance)
    return best if best is not None else best_prompting_arm(summary, metric)


def row_name(row: pd.Series) -> str:
    """The display name of a summary row."""
    return arm_name(str(row["strategy"]), int(row["k"]), str(row["type"]))


def sweep_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows of swept strategies (few-shot)."""
    return summary[summary["type"].map(is_sweep).astype(bool)] if len(summary) else summary
