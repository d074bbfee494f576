"""The learning curves: *has prompting plateaued?* A few-shot curve per (variant, selection),
each judged by the plateau rule (`detect_plateau`: the paired gain of each step from one k to
the next), and one judgement over all of them (`combine`).

Multiplicity. With m few-shot curves, each curve's steps are judged with intervals at
1 - 0.05/m confidence (Bonferroni over the curves; m = 1 is the single curve's 95%). "Still
improving" is a claim that some step gains; judging each curve at 0.05/m keeps the chance of
claiming it for any curve when none gains at or below 0.05; m counts the curves with at least two
points (a single k with no zero-shot of its kind cannot be judged). The space has plateaued only when
every curve with data has; a curve with too little data (one point) is reported but does not
block the judgement. Comparisons among the prompting arms are Holm-adjusted in the comparisons
table (comparisons.comparisons_frame), which the "what was tried" gains are read from
(design_space.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis import steps as step_rule
from harness.analysis.arms import Matrices, sweep_rows
from harness.analysis.comparisons import Clusters, paired_mean_difference
from harness.analysis.stats import Interval, check_confidence, paired_difference
from harness.analysis.steps import zero_shot_index
from harness.config import DecisionConfig

CURVE_COLUMNS = ["strategy", "k", "accuracy", "ci_low", "ci_high", "step_from", "gain",
                 "gain_ci_low", "gain_ci_high", "step_n", "step"]
F1_CURVE_COLUMNS = ["field_f1", "field_f1_ci_low", "field_f1_ci_high"]


@dataclass(frozen=True)
class CurveStep:
    """One step of a few-shot sweep: paired accuracy gain acc(k_to) - acc(k_from) over the n
    examples scored at both ks, and its kind (see step_kind)."""

    k_from: int
    k_to: int
    gain: Interval
    kind: str = ""  # "real_gain" | "flat" | "practically_flat" | "unclear"
    n: int = 0


FLAT_KINDS = frozenset({"flat", "practically_flat"})


def step_kind(gain: Interval, min_gain: float) -> str:
    """What one step of the curve shows, from its paired gain and interval.

    * ``real_gain``: gain.estimate >= min_gain and gain.low > 0;
    * ``flat``: gain.estimate < min_gain and gain.low <= 0 (no evidence of any gain; a
      significant drop counts as flat);
    * ``practically_flat``: gain.high < min_gain (the whole interval lies below min_gain: even a
      significant gain is too small to matter, as on a large eval set);
    * ``unclear``: anything else (a gain whose interval straddles min_gain).
    """
    if gain.estimate >= min_gain and gain.low > 0:
        return "real_gain"
    if gain.estimate < min_gain and gain.low <= 0:
        return "flat"
    if gain.high < min_gain:
        return "practically_flat"
    return "unclear"


@dataclass(frozen=True)
class PlateauResult:
    """Outcome of detect_plateau."""

    status: str  # "plateaued" | "still_improving" | "insufficient_data"
    k_star: int | None
    next_k: int | None
    steps: tuple[CurveStep, ...]
    reason: str
    strategy: str | None = None  # the curve judged (of several: see analysis.space)


def _step_text(step: CurveStep, confidence: float, unit: str = "") -> str:
    a, b, g = step.k_from, step.k_to, step.gain
    move = f"doubling k from {a} to {b}" if b == 2 * a else f"going from k={a} to k={b}"
    ci = f"{100 * confidence:g}% CI {g.low:+.3f}..{g.high:+.3f}"
    return f"{move} gains {g.estimate:+.3f}{unit} ({ci})"


def plateau_caution(plateau: PlateauResult | None, min_gain: float) -> str | None:
    """A caution when a plateau rests on the absence of evidence: its flat step's interval
    still holds a gain of min_gain or more (the step is "flat" because no gain was shown, not
    because one was ruled out, as happens on a small eval); None when the plateau's step rules
    such a gain out, or there is no plateau."""
    if plateau is None or plateau.status != "plateaued" or plateau.k_star is None:
        return None
    step = next((s for s in plateau.steps if s.k_from == plateau.k_star), None)
    if step is None or step.kind != "flat" or step.gain.high < min_gain:
        return None
    g = step.gain
    return (f"Caution: the plateau at k={step.k_from} shows no evidence of a gain, not evidence "
            f"of none: the step to k={step.k_to} ({100 * g.estimate:+.1f} points, interval "
            f"{100 * g.low:+.1f}..{100 * g.high:+.1f}, n = {step.n}) does not rule out a gain of "
            f"min_gain ({100 * min_gain:g} points) or more; more examples would make the verdict "
            "firmer.")


def _next_k(top: int | None, max_k: int | None) -> int | None:
    if top is None or (max_k is not None and top >= max_k):
        return None
    proposal = 2 * top if top > 0 else 1
    return proposal if max_k is None else min(proposal, max_k)


def _with_gaps(scores: np.ndarray) -> np.ndarray:
    """(n_examples, n_draws) float array where NaN marks a missing result; a 1-D array is one draw."""
    y = np.asarray(scores, dtype=float)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2:
        raise ValueError(f"scores must be 1-D or 2-D, got shape {y.shape}")
    if np.isinf(y).any():
        raise ValueError("scores contain infinite values")
    return y


# (later k's rows, earlier k's rows, their cluster codes or None) -> the paired gain
Difference = Callable[[np.ndarray, np.ndarray, np.ndarray | None], Interval]


def _rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example rows of a metric-specific curve and the mask of the complete ones."""
    y = np.asarray(values, dtype=float)
    if y.ndim == 0 or np.isinf(y).any():
        raise ValueError(f"per-example rows must be finite or NaN, with shape (n, ...), got {y.shape}")
    return y, ~np.isnan(y.reshape(y.shape[0], -1)).any(axis=1)


def detect_plateau(
    curve: Mapping[int, np.ndarray], *, min_gain: float = 0.02, n_boot: int = 2000,
    seed: int = 0, confidence: float = 0.95, max_k: int | None = None,
    difference: Difference | None = None, unit: str = "",
    clusters: np.ndarray | None = None,
) -> PlateauResult:
    """Decide whether a few-shot accuracy (or other metric's) curve has plateaued.

    ``curve`` maps k (number of shots, k=0 zero-shot) to per-example scores of shape
    (n_examples, n_draws), the same examples in the same order for every k. NaN marks an
    example without a result (yet) at that k: it is left out of the steps that involve that k.

    Rule. Sort the ks; for each consecutive pair (k, k') (normally k' = 2k, "doubling") the
    gain is paired_difference(mean over draws at k', mean over draws at k) over the examples
    with results at both ks, with a percentile bootstrap interval at ``confidence``: the same
    difference, examples, interval and seed as the comparisons table's row for that pair. A
    step is (step_kind)

    * *flat* when gain.estimate < min_gain and gain.low <= 0 (no evidence of any gain; a
      significant drop counts as flat), or when gain.high < min_gain (*practically flat*: the
      whole interval lies below min_gain, so even a significant gain is too small to matter;
      on a large eval set a tiny real drift is significant and would otherwise never settle);
    * a *real gain* when gain.estimate >= min_gain and gain.low > 0.

    The curve has plateaued at k* = k_from of the first flat step that comes after the last
    real gain (a noisy dip followed by a real rise therefore does not count). Otherwise it is
    still improving and next_k = 2 * max(k) (1 if max(k) == 0), capped at ``max_k``; next_k is
    None when max(k) already reached max_k. Fewer than two ks, or a step with no example scored
    at both its ks, gives "insufficient_data". A gain whose interval straddles min_gain
    (neither flat nor real) is "unclear".

    Another metric: ``difference(later, earlier)`` gives the paired gain from the two ks'
    per-example rows (``curve[k]`` of shape (n_examples, ...), e.g. the (tp, fp, fn) counts of
    field F1, NaN anywhere in a row marking the example missing), restricted to the examples
    complete at both, and their cluster codes; ``unit`` (e.g. " field F1") follows the gain in
    the reason. The rule on the steps is the same.

    ``clusters`` (a cluster code per example, `dataset.cluster`): the steps' bootstraps resample
    whole clusters (stats.paired_difference).
    """
    check_confidence(confidence)
    ks = sorted(curve)
    if any(k < 0 for k in ks):
        raise ValueError(f"k must be >= 0, got {ks}")
    if len(ks) < 2:
        nxt = _next_k(ks[-1] if ks else None, max_k)
        have = f"only k={ks[0]} was measured" if ks else "no k was measured"
        tail = f"; try k={nxt} next" if nxt is not None else ""
        return PlateauResult("insufficient_data", None, nxt, (), f"{have}{tail}")
    if difference is None:
        mats = {k: _with_gaps(curve[k]) for k in ks}
        means = {k: y.mean(axis=1) for k, y in mats.items()}  # NaN where any draw is missing
        rows = {k: (m, ~np.isnan(m)) for k, m in means.items()}
    else:
        mats = {k: np.asarray(curve[k], dtype=float) for k in ks}
        rows = {k: _rows(curve[k]) for k in ks}
    if len({y.shape[0] for y in mats.values()}) != 1 or min(y.size for y in mats.values()) == 0:
        raise ValueError("every k needs scores for the same, non-zero number of examples")
    built: list[CurveStep] = []
    for k0, k1 in pairwise(ks):
        both = rows[k0][1] & rows[k1][1]
        if not both.any():
            return PlateauResult("insufficient_data", None, None, tuple(built),
                                 f"no example has results at both k={k0} and k={k1} yet")
        later, earlier = rows[k1][0][both], rows[k0][0][both]
        groups = None if clusters is None else np.asarray(clusters)[both]
        gain = (paired_difference(later, earlier, n_boot=n_boot, seed=seed, confidence=confidence,
                                  clusters=groups)
                if difference is None else difference(later, earlier, groups))
        built.append(CurveStep(k0, k1, gain, step_kind(gain, min_gain), int(both.sum())))
    steps = tuple(built)
    last_real = max((i for i, s in enumerate(steps) if s.kind == "real_gain"), default=-1)
    star = next((i for i in range(last_real + 1, len(steps)) if steps[i].kind in FLAT_KINDS),
                None)
    if star is not None:
        why = ("practically flat: the whole interval lies below min_gain "
               f"{min_gain:g}" if steps[star].kind == "practically_flat"
               else f"below min_gain {min_gain:g} and not significantly above 0")
        reason = f"{_step_text(steps[star], confidence, unit)}, {why}"
        if star < len(steps) - 1:
            reason += f"; no later step gains significantly >= {min_gain:g}"
        return PlateauResult("plateaued", steps[star].k_from, None, steps, reason)
    last = steps[-1]
    if last_real == len(steps) - 1:
        reason = f"{_step_text(last, confidence, unit)}, significantly at least min_gain {min_gain:g}"
    else:
        reason = (f"no step after the last significant gain is flat; the last step, "
                  f"{_step_text(last, confidence, unit)}, is neither consistent with no gain nor "
                  f"entirely below min_gain {min_gain:g}")
    nxt = _next_k(ks[-1], max_k)
    reason += (f"; try k={nxt} next" if nxt is not None
               else f"; k={ks[-1]} already reaches max_k={max_k}, so no larger k is tried")
    return PlateauResult("still_improving", None, nxt, steps, reason)


def zero_shot_point(summary: pd.DataFrame, first: pd.Series) -> pd.DataFrame:
    """The k=0 point of a few-shot curve: the zero-shot arm of the same model, constrained the
    same way and sampled as often; of the same variant when there is one, else without one."""
    at = zero_shot_index(summary.to_dict("records"), first.to_dict())
    return summary.iloc[:0] if at is None else summary.iloc[at:at + 1]


def curve_points(summary: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """A few-shot strategy's summary rows with its k=0 point (_zero_shot_point) first."""
    fs = summary[summary["strategy"] == strategy]
    return pd.concat([zero_shot_point(summary, fs.iloc[0]), fs])


def _one_curve(strategy: str, points: pd.DataFrame, mats: Matrices, decision: DecisionConfig,
               counts: Matrices | None, confidence: float, clusters: Clusters = None
               ) -> tuple[pd.DataFrame, PlateauResult]:
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
        plateau = detect_plateau(per_k, min_gain=decision.min_gain, n_boot=n_boot, seed=0,
                                       confidence=confidence, difference=f1_gain,
                                       unit=" field F1", clusters=clusters)
    else:
        def mean_gain(later: np.ndarray, earlier: np.ndarray, groups: Clusters) -> stats.Interval:
            # detect_plateau's own difference, through the comparisons table's memory
            return paired_mean_difference(later.mean(axis=1), earlier.mean(axis=1),
                                          n_boot=n_boot, confidence=confidence, clusters=groups)

        scores = {int(row["k"]): mats[(row["strategy"], row["k"])] for _, row in points.iterrows()}
        plateau = detect_plateau(scores, min_gain=decision.min_gain, n_boot=n_boot, seed=0,
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


def _status(r: PlateauResult) -> str:
    at = f" at k={r.k_star}" if r.k_star is not None else ""
    return f"{r.strategy} {r.status.replace('_', ' ')}{at}"


def combine(results: list[PlateauResult], best: str | None) -> PlateauResult:
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
            f"{100 * step_rule.curve_confidence(len(judged)):.4g}% (Bonferroni over the curves): "
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
                       ) -> tuple[pd.DataFrame, PlateauResult | None,
                                  tuple[PlateauResult, ...]]:
    """The learning curve of every few-shot strategy (each with its zero-shot as k=0), the
    one plateau judgement over them (`combine`; `best`: the best prompting arm's strategy),
    and each curve's own judgement.

    With `decision.metric: field_f1` the plateau and the steps are on micro field F1, from the
    per-example ``counts`` (tables.count_matrices; paired bootstrap of the F1 difference, as
    the comparisons table), and the curve has the F1 and its interval (F1_CURVE_COLUMNS) after
    the accuracy columns.

    Each row is one (strategy, k): its accuracy and interval (the summary's), and the plateau
    rule's step into it from the previous k (step_from): the paired gain with its interval, the
    number of examples scored at both ks (step_n) and the step's kind (step_kind; empty
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
    confidence = step_rule.curve_confidence(sum(len(p) >= 2 for p in points.values()))
    built = [_one_curve(s, points[s], mats, decision, counts, confidence, clusters)
             for s in strategies]
    curve = pd.concat([c for c, _ in built], ignore_index=True)
    each = tuple(p for _, p in built)
    return curve, combine(list(each), best), each


__all__ = ["CURVE_COLUMNS", "F1_CURVE_COLUMNS", "FLAT_KINDS", "CurveStep", "PlateauResult",
           "combine", "curve_points", "curves_and_plateau", "detect_plateau",
           "step_kind", "zero_shot_point"]
