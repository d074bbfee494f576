"""The prompt design space: a learning curve per (variant, selection), one plateau judgement
over all of them, the table of what was tried, and the cheap levers left untried.

Multiplicity. With m few-shot curves, each curve's steps are judged with intervals at
1 - 0.05/m confidence (Bonferroni over the curves; m = 1 is the single curve's 95%). "Still
improving" is a claim that some step gains; judging each curve at 0.05/m keeps the chance of
claiming it for any curve when none gains at or below 0.05; m counts the curves with at least two
points (a single k with no zero-shot of its kind cannot be judged). The space has plateaued only when
every curve with data has; a curve with too little data (one point) is reported but does not
block the judgement. Comparisons among the prompting arms are Holm-adjusted in the comparisons
table (tables.comparisons_frame), which the "what was tried" gains are read from.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from harness.analysis import rules, stats
from harness.analysis.pairs import Clusters, paired_mean_difference
from harness.analysis.tables import Matrices, row_name, sweep_rows
from harness.config import DecisionConfig
from harness.strategies import is_prompting

CURVE_COLUMNS = ["strategy", "k", "accuracy", "ci_low", "ci_high", "step_from", "gain",
                 "gain_ci_low", "gain_ci_high", "step_n", "step"]
F1_CURVE_COLUMNS = ["field_f1", "field_f1_ci_low", "field_f1_ci_high"]
TRIED_COLUMNS = ["dimension", "setting", "arms", "best_arm", "metric", "best", "gain",
                 "gain_ci_low", "gain_ci_high", "p_adjusted"]


def curve_confidence(m: int) -> float:
    """The interval confidence of each curve's steps when m curves are judged (see above)."""
    return 1 - 0.05 / max(m, 1)


def zero_shot_point(summary: pd.DataFrame, first: pd.Series) -> pd.DataFrame:
    """The k=0 point of a few-shot curve: the zero-shot arm of the same model, constrained the
    same way and sampled as often; of the same variant when there is one, else without one."""
    zs = summary[(summary["type"] == "zero_shot") & (summary["model"] == first["model"])]
    mode = first.get("structured_output")
    if "structured_output" in zs and mode is not None:
        zs = zs[zs["structured_output"] == mode]
    if "samples" in zs:
        zs = zs[zs["samples"] == first.get("samples", 1)]
    if "variant" in zs:
        variant = first.get("variant")
        same = zs[zs["variant"] == variant] if isinstance(variant, str) else zs.iloc[:0]
        plain = zs[zs["variant"].isna()]
        zs = same if len(same) else plain if len(plain) else zs
    return zs.iloc[:1]


def curve_points(summary: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """A few-shot strategy's summary rows with its k=0 point (_zero_shot_point) first."""
    fs = summary[summary["strategy"] == strategy]
    return pd.concat([zero_shot_point(summary, fs.iloc[0]), fs])


def _one_curve(strategy: str, points: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
               counts: Matrices | None, confidence: float, clusters: Clusters = None
               ) -> tuple[pd.DataFrame, rules.PlateauResult]:
    f1 = decision.metric == "field_f1"
    head = ["strategy", "k", "accuracy", "ci_low", "ci_high", *(F1_CURVE_COLUMNS if f1 else [])]
    curve = points[head].reset_index(drop=True)
    n_boot = decision.bootstrap
    if f1:
        if counts is None:
            raise ValueError("decision.metric field_f1 needs the count matrices")

        def f1_gain(later: np.ndarray, earlier: np.ndarray, groups: Clusters) -> stats.Interval:
            return stats.paired_f1_difference(later, earlier, n_boot=n_boot, seed=0,
                                              confidence=confidence, clusters=groups).difference

        per_k = {int(row["k"]): counts[(row["strategy"], row["k"])] for _, row in points.iterrows()}
        plateau = rules.detect_plateau(per_k, min_gain=decision.min_gain, n_boot=n_boot, seed=0,
                                       confidence=confidence, difference=f1_gain,
                                       unit=" field F1", clusters=clusters)
    else:
        def mean_gain(later: np.ndarray, earlier: np.ndarray, groups: Clusters) -> stats.Interval:
            # rules.detect_plateau's own difference, through the comparisons table's memory
            return paired_mean_difference(later.mean(axis=1), earlier.mean(axis=1),
                                          n_boot=n_boot, confidence=confidence, clusters=groups)

        scores = {int(row["k"]): mats[(row["strategy"], row["k"])] for _, row in points.iterrows()}
        plateau = rules.detect_plateau(scores, min_gain=decision.min_gain, n_boot=n_boot, seed=0,
                                       confidence=confidence, difference=mean_gain,
                                       clusters=clusters)
    into = [next((s for s in plateau.steps if s.k_to == int(k)), None) for k in curve["k"]]
    nan = math.nan
    curve["strategy"] = strategy  # the k=0 point belongs to this curve
    curve["step_from"] = pd.Series([s.k_from if s else None for s in into], dtype=object)
    curve["gain"] = [s.gain.estimate if s else nan for s in into]
    curve["gain_ci_low"] = [s.gain.low if s else nan for s in into]
    curve["gain_ci_high"] = [s.gain.high if s else nan for s in into]
    curve["step_n"] = pd.Series([s.n if s else None for s in into], dtype=object)
    curve["step"] = [s.kind if s else "" for s in into]
    return curve[[*head, *CURVE_COLUMNS[5:]]], dataclasses.replace(plateau, strategy=strategy)


def _status(r: rules.PlateauResult) -> str:
    at = f" at k={r.k_star}" if r.k_star is not None else ""
    return f"{r.strategy} {r.status.replace('_', ' ')}{at}"


def combine(results: list[rules.PlateauResult], best: str | None) -> rules.PlateauResult:
    """One judgement over the curves (see the module's rule): a still-improving curve (the best
    arm's first) decides; else, when every curve with data has plateaued, the best arm's curve
    (else the first) gives k*."""
    if len(results) == 1:
        return results[0]
    judged = [r for r in results if r.status != "insufficient_data"]
    if not judged:
        r = results[0]
        return dataclasses.replace(r, reason=f"{r.strategy}: {r.reason}")
    rule = (f"{len(judged)} curves judged, each step's interval at "
            f"{100 * curve_confidence(len(judged)):.4g}% (Bonferroni over the curves): "
            + "; ".join(map(_status, results)))
    improving = [r for r in judged if r.status == "still_improving"]
    if improving:
        r = next((x for x in improving if x.strategy == best), improving[0])
        return dataclasses.replace(r, reason=f"{r.strategy} is still improving: {r.reason} ({rule})")
    r = next((x for x in judged if x.strategy == best), judged[0])
    return dataclasses.replace(r, reason=f"every curve has plateaued ({rule}); {r.strategy}: "
                                         f"{r.reason}")


def curves_and_plateau(summary: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
                       counts: Matrices | None = None, best: str | None = None,
                       clusters: Clusters = None
                       ) -> tuple[pd.DataFrame, rules.PlateauResult | None,
                                  tuple[rules.PlateauResult, ...]]:
    """The learning curve of every few-shot strategy (each with its zero-shot as k=0), the
    one plateau judgement over them (`combine`; `best`: the best prompting arm's strategy),
    and each curve's own judgement.

    With `decision.metric: field_f1` the plateau and the steps are on micro field F1, from the
    per-example ``counts`` (tables.count_matrices; paired bootstrap of the F1 difference, as
    the comparisons table), and the curve has the F1 and its interval (F1_CURVE_COLUMNS) after
    the accuracy columns.

    Each row is one (strategy, k): its accuracy and interval (the summary's), and the plateau
    rule's step into it from the previous k (step_from): the paired gain with its interval, the
    number of examples scored at both ks (step_n) and the step's kind (rules.step_kind; empty
    on a curve's first row). A step is computed as the comparisons table computes a pair (the
    examples with results at both ks, the same paired bootstrap and seed), so with one curve,
    where the table has the same two arms, its delta and interval are the step's gain.
    ``clusters`` (each example's cluster code): the steps' bootstraps resample clusters.
    """
    strategies = list(dict.fromkeys(sweep_rows(summary)["strategy"]))
    if not strategies:
        return pd.DataFrame(columns=CURVE_COLUMNS), None, ()
    points = {s: curve_points(summary, s) for s in strategies}
    # m counts the curves that can be judged (two points or more: a k and its k=0, or two ks)
    confidence = curve_confidence(sum(len(p) >= 2 for p in points.values()))
    built = [_one_curve(s, points[s], mats, decision, counts, confidence, clusters)
             for s in strategies]
    curve = pd.concat([c for c, _ in built], ignore_index=True)
    each = tuple(p for _, p in built)
    return curve, combine(list(each), best), each


def _gain(comparisons: pd.DataFrame, arm: str, zero: str | None) -> dict[str, float]:
    nan = math.nan
    out = {"gain": nan, "gain_ci_low": nan, "gain_ci_high": nan, "p_adjusted": nan}
    if zero is None or arm == zero or not len(comparisons):
        return out
    for a, b, sign in ((arm, zero, 1.0), (zero, arm, -1.0)):
        row = comparisons[(comparisons["arm_a"] == a) & (comparisons["arm_b"] == b)]
        if len(row):
            r = row.iloc[0]
            lo, hi = sign * float(r["delta_ci_low"]), sign * float(r["delta_ci_high"])
            return {"gain": sign * float(r["delta"]), "gain_ci_low": min(lo, hi),
                    "gain_ci_high": max(lo, hi), "p_adjusted": float(r["p_adjusted"])}
    return out


def tried_frame(summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str = "accuracy"
                ) -> pd.DataFrame:
    """What was tried of the prompt design space: one row per setting of each dimension (k,
    selection, variant, voting), with its best arm by `metric` and that arm's paired gain over
    zero-shot with its Holm-adjusted p (from the comparisons table)."""
    ok = summary[(summary["n"] > 0) & summary[metric].notna()] if metric in summary else summary
    prompting = ok[ok["type"].map(is_prompting).astype(bool)] if len(ok) else ok
    if not len(prompting):
        return pd.DataFrame(columns=TRIED_COLUMNS)
    zs = ok[ok["type"] == "zero_shot"]
    zero = row_name(zs.iloc[0]) if len(zs) else None
    few = prompting[prompting["type"] != "zero_shot"]
    groups: list[tuple[str, str, pd.DataFrame]] = [("zero-shot", "k = 0",
                                                    prompting[prompting["type"] == "zero_shot"])]
    if len(few):
        ks = sorted({int(k) for k in few["k"]})
        groups.append(("shots (k)", f"k = {ks[0]}" if len(ks) == 1 else f"k = {ks[0]}..{ks[-1]}"
                       + f" ({', '.join(map(str, ks))})", few))
        for sel in dict.fromkeys(few["selection"].dropna()):
            groups.append(("selection", str(sel), few[few["selection"] == sel]))
    for var in dict.fromkeys(prompting["variant"].dropna()):
        groups.append(("variant", str(var), prompting[prompting["variant"] == var]))
    for n in sorted({int(x) for x in prompting["samples"] if int(x) > 1}):
        groups.append(("voting", f"{n} samples", prompting[prompting["samples"] == n]))
    rows = []
    for dimension, setting, arms in groups:
        if not len(arms):
            continue
        top = arms.loc[arms[metric].idxmax()]
        rows.append({"dimension": dimension, "setting": setting, "arms": len(arms),
                     "best_arm": row_name(top), "metric": metric, "best": float(top[metric]),
                     **_gain(comparisons, row_name(top), zero)})
    return pd.DataFrame(rows, columns=TRIED_COLUMNS)


def untried(summary: pd.DataFrame) -> tuple[str, ...]:
    """The cheap prompting levers this run did not try (empty when it has no prompting arm)."""
    prompting = summary[summary["type"].map(is_prompting).astype(bool)] if len(summary) else summary
    if not len(prompting):
        return ()
    few = prompting[prompting["type"] != "zero_shot"]
    out = []
    if not len(few):
        out.append("few-shot examples (a k sweep: type few_shot, shots [1, 2, 4, 8])")
    elif not (few["selection"].fillna("").str.startswith("similar")).any():
        out.append("similar examples (selection: similar)")
    if not (prompting["samples"] > 1).any():
        out.append("self-consistency (samples: 5 with temperature: 0.7)")
    if not prompting["variant"].notna().any():
        out.append("prompt variants (variants: on a strategy)")
    if (prompting["structured_output"] == "none").all():
        out.append("constrained decoding (structured_output: json_schema)")
    return tuple(out)


def untried_text(levers: tuple[str, ...]) -> str:
    """The sentence naming the untried levers ("" when none)."""
    return "Not tried yet, and cheap to try: " + "; ".join(levers) + "." if levers else ""


__all__ = ["CURVE_COLUMNS", "F1_CURVE_COLUMNS", "TRIED_COLUMNS", "combine", "curve_confidence",
           "curve_points", "curves_and_plateau", "tried_frame", "untried", "untried_text", "zero_shot_point"]
