"""From per-example records to the decision: tables, intervals, comparisons, curve, cost, verdict.

Everything here is computed from a run folder's `results.jsonl` and `run.json` alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness import pricing, stats
from harness.scoring import arm_metrics, per_class

RESULT_COLUMNS = [
    "strategy", "type", "model", "model_id", "k", "draw", "example_id", "input", "expected",
    "prediction", "correct", "parse_ok", "schema_valid", "error_kind", "error", "output",
    "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms",
    "attempts", "cached", "cost_usd", "prompt_sha256",
]
PROMPTING = ("zero_shot", "few_shot")


@dataclass(frozen=True)
class Analysis:
    """Every table and judgement a report shows."""

    results: pd.DataFrame
    summary: pd.DataFrame
    per_class: pd.DataFrame
    comparisons: pd.DataFrame
    curve: pd.DataFrame
    plateau: stats.PlateauResult | None
    verdict: stats.Verdict
    evidence: dict[str, Any]
    complete: bool


def _price(meta: Mapping[str, Any], model: str, model_id: str) -> pricing.Price | None:
    mc = meta["models"][model]
    p = mc.get("price")
    if p:
        cached = p.get("cached_input")
        return pricing.Price(p["input"], p["input"] if cached is None else cached, p["output"],
                             p.get("training"))
    return pricing.price_for(model_id, local=mc["provider"] == "local")


def results_frame(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> pd.DataFrame:
    """One row per example x arm, in arm order then example order, with a cost column."""
    arm_order = {a["key"]: i for i, a in enumerate(meta["arms"])}
    ex_order = {e: i for i, e in enumerate(meta["examples"])}
    rows = sorted(records, key=lambda r: (arm_order.get(r["arm"], 1 << 30),
                                          ex_order.get(str(r["example_id"]), 1 << 30)))
    df = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "arm"])
    costs = []
    for r in rows:
        price = _price(meta, r["model"], r["model_id"])
        if r.get("cached") or price is None:
            costs.append(0.0 if r.get("cached") else math.nan)
            continue
        costs.append(pricing.query_cost(price, r.get("prompt_tokens") or 0,
                                        r.get("completion_tokens") or 0, r.get("cached_tokens") or 0))
    df["cost_usd"] = costs
    return df


def score_matrix(df: pd.DataFrame, strategy: str, k: int, examples: Sequence[str]) -> np.ndarray:
    """(n_examples, n_draws) of 0/1 correctness; NaN where an example has no record yet."""
    sub = df[(df["strategy"] == strategy) & (df["k"] == k)]
    draws = sorted(sub["draw"].unique()) or [0]
    pos = {e: i for i, e in enumerate(examples)}
    out = np.full((len(examples), len(draws)), np.nan)
    for d_i, d in enumerate(draws):
        part = sub[sub["draw"] == d]
        for ex, ok in zip(part["example_id"].astype(str), part["correct"], strict=True):
            if ex in pos:
                out[pos[ex], d_i] = float(bool(ok))
    return out


def _complete_rows(*mats: np.ndarray) -> np.ndarray:
    keep = np.ones(mats[0].shape[0], dtype=bool)
    for m in mats:
        keep &= ~np.isnan(m).any(axis=1)
    return keep


def _interval(mat: np.ndarray, n_boot: int, seed: int) -> stats.Interval:
    m = mat[_complete_rows(mat)]
    if m.size == 0:
        return stats.Interval(math.nan, math.nan, math.nan)
    if m.shape[1] == 1:
        return stats.wilson_interval(int(m.sum()), m.shape[0])
    return stats.bootstrap_interval(m, n_boot=n_boot, seed=seed)


def summary_frame(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[pd.DataFrame, dict]:
    """One row per (strategy, k) pooled over draws; also the score matrices by arm."""
    labels = meta["labels"]
    examples = [str(e) for e in meta["examples"]]
    n_boot = int(meta["decision"].get("bootstrap", 2000))
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for a in meta["arms"]:
        seen.setdefault((a["strategy"], a["k"]), a)
    rows, mats = [], {}
    for (strategy, k), a in seen.items():
        sub = df[(df["strategy"] == strategy) & (df["k"] == k)]
        m = arm_metrics(sub.to_dict("records"), labels)
        mat = score_matrix(df, strategy, k, examples)
        mats[(strategy, k)] = mat
        ci = _interval(mat, n_boot, seed=0)
        sv = sub["schema_valid"].astype(bool).to_numpy() if len(sub) else np.array([])
        sci = stats.wilson_interval(int(sv.sum()), len(sv))
        cost = sub["cost_usd"].mean() if len(sub) else math.nan
        price = _price(meta, a["model"], a["model_id"])
        est = (pricing.query_cost(price, m.mean_prompt_tokens, m.mean_completion_tokens)
               if price is not None and not math.isnan(m.mean_prompt_tokens) else math.nan)
        rows.append({
            "strategy": strategy, "type": a["type"], "model": a["model"], "model_id": a["model_id"],
            "k": k, "draws": mat.shape[1], "n": m.n, "accuracy": m.accuracy,
            "ci_low": ci.low, "ci_high": ci.high, "macro_f1": m.macro_f1,
            "schema_compliance": m.schema_compliance, "schema_ci_low": sci.low,
            "schema_ci_high": sci.high, "parse_failure_rate": m.parse_failure_rate,
            "errors": m.errors, "failures": int(sub["error_kind"].notna().sum()) if len(sub) else 0,
            "cache_hits": int(sub["cached"].astype(bool).sum()) if len(sub) else 0,
            "mean_prompt_tokens": m.mean_prompt_tokens,
            "mean_completion_tokens": m.mean_completion_tokens,
            "cost_per_1k": est * 1000 if not math.isnan(est) else math.nan,
            "run_cost_usd": float(sub["cost_usd"].sum()) if len(sub) and not math.isnan(cost) else math.nan,
            "latency_p50_ms": m.latency_p50_ms, "latency_p95_ms": m.latency_p95_ms,
            "prompt_sha256": a["prompt_sha256"], "unavailable": a.get("unavailable"),
        })
    return pd.DataFrame(rows), mats


def per_class_frame(df: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame:
    """Per-class precision/recall/F1 for every (strategy, k)."""
    rows = []
    for (strategy, k), sub in df.groupby(["strategy", "k"], sort=False):
        table = per_class(list(sub["expected"]), list(sub["prediction"]), meta["labels"])
        for label, v in table.items():
            rows.append({"strategy": strategy, "k": k, "label": label, **v})
    return pd.DataFrame(rows, columns=["strategy", "k", "label", "precision", "recall", "f1", "support"])


def _name(strategy: str, k: int, kind: str) -> str:
    return f"{strategy}@k={k}" if kind == "few_shot" else strategy


def comparisons_frame(summary: pd.DataFrame, mats: Mapping[tuple[str, int], np.ndarray],
                      *, n_boot: int, alpha: float) -> pd.DataFrame:
    """Every arm vs zero-shot and vs the best prompting arm: paired delta, McNemar, Holm."""
    cols = ["arm_a", "arm_b", "n", "delta", "delta_ci_low", "delta_ci_high", "p_value",
            "p_adjusted", "significant"]
    ok = summary[summary["n"] > 0]
    prompting = ok[ok["type"].isin(PROMPTING) & ok["accuracy"].notna()]
    refs = []
    zs = ok[ok["type"] == "zero_shot"]
    if len(zs):
        refs.append(zs.iloc[0])
    if len(prompting):
        best = prompting.loc[prompting["accuracy"].idxmax()]
        if not refs or (best["strategy"], best["k"]) != (refs[0]["strategy"], refs[0]["k"]):
            refs.append(best)
    rows, pairs = [], set()
    for ref in refs:
        for _, arm in ok.iterrows():
            a, b = (arm["strategy"], arm["k"]), (ref["strategy"], ref["k"])
            if a == b or frozenset((a, b)) in pairs:
                continue
            pairs.add(frozenset((a, b)))
            ma, mb = mats[a], mats[b]
            keep = _complete_rows(ma, mb)
            if not keep.any():
                continue
            ma, mb = ma[keep], mb[keep]
            d = stats.paired_difference(ma.mean(axis=1), mb.mean(axis=1), n_boot=n_boot, seed=0)
            p = stats.mcnemar_exact(stats.majority_correct(ma), stats.majority_correct(mb))
            rows.append({"arm_a": _name(a[0], a[1], arm["type"]),
                         "arm_b": _name(b[0], b[1], ref["type"]), "n": int(keep.sum()),
                         "delta": d.estimate, "delta_ci_low": d.low, "delta_ci_high": d.high,
                         "p_value": p})
    out = pd.DataFrame(rows, columns=cols[:7])
    out["p_adjusted"] = stats.holm_adjust(list(out["p_value"])) if len(out) else []
    out["significant"] = out["p_adjusted"] < alpha
    return out[cols]


def curve_and_plateau(summary: pd.DataFrame, mats: Mapping[tuple[str, int], np.ndarray],
                      decision: Mapping[str, Any]) -> tuple[pd.DataFrame, stats.PlateauResult | None]:
    """The learning curve of the first few-shot strategy (with zero-shot of the same model as k=0)."""
    fs = summary[summary["type"] == "few_shot"]
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
    keep = _complete_rows(*scores.values())
    if not keep.any():
        return curve, stats.PlateauResult("insufficient_data", None, None, (),
                                          "no example has results at every k yet")
    scores = {k: m[keep] for k, m in scores.items()}
    plateau = stats.detect_plateau(scores, min_gain=float(decision.get("min_gain", 0.02)),
                                   n_boot=int(decision.get("bootstrap", 2000)), seed=0)
    return curve, plateau


def _verdict(summary: pd.DataFrame, comparisons: pd.DataFrame, plateau: stats.PlateauResult | None,
             mats: Mapping[tuple[str, int], np.ndarray], meta: Mapping[str, Any]
             ) -> tuple[stats.Verdict, dict[str, Any]]:
    decision = meta["decision"]
    ok = summary[summary["n"] > 0]
    prompting = ok[ok["type"].isin(PROMPTING)]
    ft = ok[(ok["type"] == "fine_tuned") & (ok["errors"] < ok["n"])]
    evidence: dict[str, Any] = {}
    arm_ev = None
    if len(prompting) and len(ft):
        best = prompting.loc[prompting["accuracy"].idxmax()]
        f = ft.iloc[0]
        a, b = (f["strategy"], f["k"]), (best["strategy"], best["k"])
        keep = _complete_rows(mats[a], mats[b])
        d = stats.paired_difference(mats[a][keep].mean(axis=1), mats[b][keep].mean(axis=1),
                                    n_boot=int(decision.get("bootstrap", 2000)), seed=0)
        name_a, name_b = _name(*a, "fine_tuned"), _name(b[0], b[1], best["type"])
        match = comparisons[(comparisons["arm_a"] == name_a) & (comparisons["arm_b"] == name_b)]
        p_adj = float(match["p_adjusted"].iloc[0]) if len(match) else 1.0
        entry = meta.get("fine_tunes", {}).get(f["strategy"]) or {}
        training = entry.get("training_cost_usd")
        if training is None and entry.get("trained_tokens"):
            price = _price(meta, f["model"], f["model_id"])
            if price is not None:
                training = pricing.training_cost(price, int(entry["trained_tokens"]))
        be = None
        prompt_cost, ft_cost = best["cost_per_1k"] / 1000, f["cost_per_1k"] / 1000
        if training is not None and not (math.isnan(prompt_cost) or math.isnan(ft_cost)):
            be = stats.break_even(float(training), float(prompt_cost), float(ft_cost),
                                  horizon_months=float(decision.get("horizon_months", 3.0)))
        arm_ev = stats.ArmEvidence(d, p_adj, be, decision.get("monthly_volume"))
        evidence = {"fine_tuned_arm": name_a, "best_prompting_arm": name_b,
                    "delta": asdict(d), "p_adjusted": p_adj,
                    "break_even": asdict(be) if be else None,
                    "break_even_text": be.describe() if be else "no training cost known",
                    "training_cost_usd": training}
    if plateau is None:
        plateau = stats.PlateauResult("insufficient_data", None, None, (),
                                      "no few-shot sweep in this run")
    verdict = stats.decide(plateau, arm_ev, alpha=float(decision.get("alpha", 0.05)),
                           equivalence_margin=float(decision.get("equivalence_margin", 0.02)))
    return verdict, evidence


def analyse(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> Analysis:
    """Build every table and the verdict from a run's records and metadata."""
    df = results_frame(records, meta)
    summary, mats = summary_frame(df, meta)
    decision = meta["decision"]
    comparisons = comparisons_frame(summary, mats, n_boot=int(decision.get("bootstrap", 2000)),
                                    alpha=float(decision.get("alpha", 0.05)))
    curve, plateau = curve_and_plateau(summary, mats, decision)
    verdict, evidence = _verdict(summary, comparisons, plateau, mats, meta)
    expected = len(meta["arms"]) * len(meta["examples"])
    complete = meta.get("status") == "complete" and len(df) == expected
    return Analysis(df.drop(columns=["arm"]), summary, per_class_frame(df, meta), comparisons,
                    curve, plateau, verdict, evidence, complete)
