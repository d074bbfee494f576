"""The decision rules: *which recommendation does the evidence support?* `decide` weighs the
plateau judgement (curves.py) and the fine-tuned arm's paired difference and cost (cost.py);
the schema-compliance floor's rule is compliance.py.

Pure functions; results are frozen dataclasses. Accuracies are fractions in [0, 1]; "points" in
human sentences are percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.cost import BreakEven, max_training_cost
from harness.analysis.curves import PlateauResult
from harness.analysis.results import Verdict
from harness.analysis.stats import Interval
from harness.kinds import FINE_TUNE, KEEP_PROMPTING, PROMPTING_SUFFICIENT


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
