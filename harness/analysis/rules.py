"""Decision rules over the statistics: the learning-curve plateau, break-even and the verdict.

Pure functions; results are frozen dataclasses. Accuracies are fractions in [0, 1]; "points" in
human sentences are percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from harness.analysis.results import Verdict
from harness.analysis.stats import Interval, check_confidence, paired_difference
from harness.kinds import FINE_TUNE, KEEP_PROMPTING, PROMPTING_SUFFICIENT


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


@dataclass(frozen=True)
class BreakEven:
    """When a fine-tuned model's per-query saving repays its training cost."""

    training_cost: float
    saving_per_query: float
    queries: float | None
    monthly_volume_to_pay_back: float | None
    horizon_months: float = 3.0

    def describe(self) -> str:
        """One phrase, e.g. 'pays back after 12,345 queries (4,115/month over 3 months)'."""
        if self.queries is None or self.monthly_volume_to_pay_back is None:
            if self.saving_per_query < 0:
                return (f"never pays back: the fine-tuned model costs "
                        f"${-self.saving_per_query:.6g} more per query")
            return "never pays back: the fine-tuned model costs the same per query"
        months = "month" if self.horizon_months == 1 else "months"
        return (f"pays back after {math.ceil(self.queries):,} queries "
                f"({math.ceil(self.monthly_volume_to_pay_back):,}/month over "
                f"{self.horizon_months:g} {months})")


def break_even(
    training_cost: float, prompt_cost_per_query: float, ft_cost_per_query: float, *,
    horizon_months: float = 3.0,
) -> BreakEven:
    """Queries needed for the fine-tuned arm's saving per query to repay its training cost.

    saving = prompt_cost_per_query - ft_cost_per_query (USD); queries = training_cost / saving,
    or None ("never") when saving <= 0; monthly volume to pay back = queries / horizon_months.
    """
    values = (training_cost, prompt_cost_per_query, ft_cost_per_query, horizon_months)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"costs and horizon must be finite, got {values}")
    if training_cost < 0 or horizon_months <= 0:
        raise ValueError("need training_cost >= 0 and horizon_months > 0")
    saving = prompt_cost_per_query - ft_cost_per_query
    if saving <= 0:
        return BreakEven(training_cost, saving, None, None, horizon_months)
    queries = training_cost / saving
    return BreakEven(training_cost, saving, queries, queries / horizon_months, horizon_months)


def max_training_cost(saving_per_query: float, monthly_volume: float,
                      horizon_months: float) -> float:
    """The most a fine-tune may cost and still pay back within the horizon (USD):
    saving_per_query x monthly_volume x horizon_months, or 0 when it saves nothing."""
    return max(0.0, saving_per_query) * monthly_volume * horizon_months


@dataclass(frozen=True)
class ArmEvidence:
    """What the verdict needs about the fine-tuned arm versus the best prompting arm."""

    ft_delta: Interval  # metric(ft) - metric(best prompting), paired (accuracy or field F1)
    ft_p_adjusted: float  # Holm-adjusted p-value (McNemar; paired bootstrap for field F1)
    break_even: BreakEven | None  # None when the training cost (or a per-query cost) is unknown
    monthly_volume: float | None  # expected queries per month, None if not given
    saving_per_query: float | None = None  # USD, prompt minus fine-tuned; None if either is unknown
    horizon_months: float = 3.0
    zero_priced: bool = False  # both arms cost $0 per query (the embedded model): no money saved


def points(x: Interval) -> str:
    return f"{100 * x.estimate:+.1f} points, CI {100 * x.low:+.1f}..{100 * x.high:+.1f}"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 else f"${x:.3g}"


def _pays_back_unknown_cost(ft: ArmEvidence) -> tuple[bool, str, str]:
    """(pays back, phrase, condition) when the training cost is unknown; the condition
    (" if training costs less than $X") is empty when it holds whatever the training cost."""
    s = ft.saving_per_query
    if s is None:
        return False, "no cost comparison was available", ""
    if s <= 0:
        more = (f"costs {_usd(-s)} more per query" if s < 0 else "costs the same per query")
        return False, f"never pays back: the fine-tuned model {more}", ""
    saves = f"saves {_usd(1000 * s)} per 1,000 queries"
    if ft.monthly_volume is None:
        return True, (f"{saves}, so it pays back eventually whatever the training costs, after "
                      f"training cost / {_usd(s)} queries ({1 / s:,.0f} per $1 of training; "
                      "training cost not known, no monthly volume given)"), ""
    cap = max_training_cost(s, ft.monthly_volume, ft.horizon_months)
    months = "month" if ft.horizon_months == 1 else "months"
    at = f"{_usd(cap)} over {ft.horizon_months:g} {months} at the stated {ft.monthly_volume:,.0f}/month"
    if cap <= 0:
        return False, f"{saves}, but {at}", ""
    return True, (f"{saves}: {at}, so it pays back if training costs less than {_usd(cap)} "
                  "(training cost not known)"), f" if training costs less than {_usd(cap)}"


ZERO_PRICE_TEXT = ("cannot be weighed in money: both arms are priced at $0 per query (no price "
                   "known to be paid, as for the embedded model), so compare their tokens and "
                   "latency per query instead (see the cost section)")


def pays_back(ft: ArmEvidence) -> tuple[bool, str, str]:
    """Whether the fine-tune pays back (the rule in decide), a phrase saying why, and the
    condition on an unknown training cost (" if training costs less than $X", else "")."""
    if ft.zero_priced:
        return False, ZERO_PRICE_TEXT, ""
    be = ft.break_even
    if be is None:
        return _pays_back_unknown_cost(ft)
    if be.queries is None or be.monthly_volume_to_pay_back is None:
        return False, be.describe(), ""
    if ft.monthly_volume is None:
        return True, f"{be.describe()} (no monthly volume given)", ""
    ok = ft.monthly_volume >= be.monthly_volume_to_pay_back
    verb = "covers" if ok else "falls short of"
    return ok, f"{be.describe()}; the stated {ft.monthly_volume:,.0f}/month {verb} it", ""


def p_text(p: float) -> str:
    """A p-value for a sentence: tiny values as an upper bound, never a bare 0."""
    return "p<0.0001" if p < 1e-4 else f"p={p:.3g}"


METRIC_NAMES = {"accuracy": "accuracy", "field_f1": "field F1"}


def _as_good_as(metric: str) -> str:
    return "as accurate as" if metric == "accuracy" else f"as good on {METRIC_NAMES[metric]} as"


def decide(
    plateau: PlateauResult, ft: ArmEvidence | None, *, alpha: float = 0.05,
    equivalence_margin: float = 0.02, metric: str = "accuracy", no_ft: str | None = None,
) -> Verdict:
    """Recommend keep_prompting, prompting_sufficient or fine_tune.

    ``metric`` ("accuracy" or "field_f1") names what the plateau and ft_delta measure, in the
    sentence; ``no_ft`` says why there is no fine-tuned arm to weigh (default: none was
    evaluated).

    * fine_tune, whatever the curve: the fine-tuned arm is significantly better
      (ft_delta.estimate > 0 and ft_p_adjusted < alpha), or it is as good
      (ft_delta.low > -equivalence_margin) and pays back: break_even.queries is not None and
      either monthly_volume >= break_even.monthly_volume_to_pay_back, or, with no monthly
      volume given, merely saves money per query (saving > 0, so it pays back eventually).
      With the training cost unknown (break_even None) but both per-query costs known, the
      cost is not dropped from the decision: with a monthly volume V over horizon H months it
      pays back iff training costs less than max_training_cost = saving x V x H, and the
      sentence says so ("Fine-tune if training costs less than $X: ..."); with no volume, a
      saving > 0 pays back eventually at any training cost, after cost / saving queries.
    * keep_prompting, otherwise, when the curve is still improving (names the next k) or has
      too few ks to tell.
    * prompting_sufficient, otherwise (plateaued, and no winning fine-tuned arm or none at all).
    """
    if plateau.status not in ("plateaued", "still_improving", "insufficient_data"):
        raise ValueError(f"unknown plateau status {plateau.status!r}")
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}")
    noun = METRIC_NAMES[metric]
    reasons: list[str] = [f"few-shot curve {plateau.status}: {plateau.reason}"]
    why = no_ft or "no fine-tuned arm was evaluated"
    if ft is not None:
        d, p = ft.ft_delta, ft.ft_p_adjusted
        better = d.estimate > 0 and p < alpha
        as_good = d.low > -equivalence_margin
        pays, pay_text, condition = pays_back(ft)
        reasons.append(f"fine-tuned minus best prompt: {points(d)}, Holm-adjusted {p_text(p)}")
        reasons.append(f"fine-tuning {pay_text}")
        if better:
            return Verdict(FINE_TUNE, f"Fine-tune: it beats the best prompt by {points(d)}, "
                           f"Holm-adjusted {p_text(p)}.", tuple(reasons))
        margin = f"{100 * equivalence_margin:g}-point margin"
        if as_good and pays:
            return Verdict(FINE_TUNE, f"Fine-tune{condition}: it is {_as_good_as(metric)} the best "
                           f"prompt ({points(d)}, within the {margin}) and {pay_text}.",
                           tuple(reasons))
        not_as = ("not as accurate" if metric == "accuracy" else f"not as good on {noun}")
        why = (f"the fine-tuned model is no better ({points(d)}) and {pay_text}" if as_good
               else f"the fine-tuned model is {not_as} ({points(d)}, beyond the {margin})")
    else:
        reasons.append(why)
    if plateau.status == "insufficient_data":
        nxt = f" (try k={plateau.next_k})" if plateau.next_k is not None else ""
        return Verdict(KEEP_PROMPTING, "Keep prompting: more shot counts are needed to tell "
                       f"whether {noun} has plateaued{nxt}.", tuple(reasons))
    if plateau.status == "still_improving":
        last = plateau.steps[-1] if plateau.steps else None
        gain = f" (k={last.k_from}->{last.k_to}: {points(last.gain)})" if last else ""
        nxt = (f"try k={plateau.next_k} next" if plateau.next_k is not None
               else "use the largest k allowed")
        return Verdict(KEEP_PROMPTING, f"Keep prompting: {noun} is still rising with more "
                       f"examples{gain}; {nxt}.", tuple(reasons))
    return Verdict(PROMPTING_SUFFICIENT, f"Prompting is sufficient: {noun} plateaus at "
                   f"k={plateau.k_star}; {why}.", tuple(reasons))
