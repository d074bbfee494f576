"""Statistics behind the prompt-or-fine-tune decision.

Pure functions over numpy arrays; results are frozen dataclasses. Accuracies are fractions in
[0, 1]; "points" in human sentences are percentage points.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import NormalDist

import numpy as np

_CHUNK_ELEMENTS = 2_000_000  # cap on (replicates x examples) held in memory at once
_EXACT_BINOMIAL_MAX_N = 2_000  # exact integer arithmetic up to here, log-space beyond


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval [low, high]."""

    estimate: float
    low: float
    high: float


_NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; estimate is successes / n.

    Returns Interval(nan, nan, nan) when n == 0.
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return _NAN_INTERVAL
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    z2 = z * z
    p = successes / n
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds at the edges
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high)


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    """(n_examples, n_draws) float array; a 1-D array is one draw."""
    y = np.asarray(scores, dtype=float)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2:
        raise ValueError(f"scores must be 1-D or 2-D, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("scores contain NaN or infinite values")
    return y


def _chunks(n: int, n_boot: int) -> Iterator[int]:
    """Replicate counts per chunk so that a (chunk, n) matrix stays small."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    per = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, per):
        yield min(per, n_boot - start)


def _resample_counts(rng: np.random.Generator, size: int, reps: int) -> np.ndarray:
    """(reps, size) matrix: how often each item is drawn in a with-replacement resample."""
    idx = rng.integers(0, size, size=(reps, size))
    idx += np.arange(reps)[:, None] * size
    return np.bincount(idx.ravel(), minlength=reps * size).reshape(reps, size).astype(float)


def _percentile(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    low, high = np.quantile(replicates, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return Interval(estimate, float(low), float(high))


def bootstrap_interval(
    scores: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Two-way (examples x draws) percentile bootstrap interval for the mean score.

    ``scores`` has shape (n_examples, n_draws); a 1-D array is one draw. Each replicate resamples
    rows (examples) with replacement and, independently, columns (draws) with replacement
    (Owen's pigeonhole bootstrap), so a draw-level effect shared by all examples (e.g. one
    demonstration set per draw) widens the interval. When draws are independent within each
    example the interval is conservative (it counts per-draw noise more than once). Deterministic
    for a given seed.
    """
    _check_confidence(confidence)
    y = _as_matrix(scores)
    n, m = y.shape
    if n == 0 or m == 0:
        return _NAN_INTERVAL
    rng = np.random.default_rng(seed)
    parts = []
    for reps in _chunks(n, n_boot):
        rows = _resample_counts(rng, n, reps)
        cols = _resample_counts(rng, m, reps) if m > 1 else np.ones((reps, 1))
        parts.append(((rows @ y) * cols).sum(axis=1) / (n * m))
    return _percentile(float(y.mean()), np.concatenate(parts), confidence)


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """mean(a) - mean(b) with a paired percentile bootstrap interval over examples.

    ``a`` and ``b`` are per-example scores (1-D, same examples in the same order, e.g. the mean
    over draws); each replicate resamples example indices once and uses them for both arms.
    """
    _check_confidence(confidence)
    x, z = _as_matrix(a), _as_matrix(b)
    if x.shape[1] != 1 or x.shape != z.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {x.shape} and {z.shape}")
    n = x.shape[0]
    if n == 0:
        return _NAN_INTERVAL
    d = (x - z)[:, 0]
    rng = np.random.default_rng(seed)
    parts = [_resample_counts(rng, n, reps) @ d / n for reps in _chunks(n, n_boot)]
    return _percentile(float(d.mean()), np.concatenate(parts), confidence)


def _binom_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if n <= _EXACT_BINOMIAL_MAX_N:  # exact integers; int / int is correctly rounded
        total, term = 0, 1
        for i in range(k + 1):
            total += term
            term = term * (n - i) // (i + 1)
        return total / 2**n
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    total, term, i = 0.0, 1.0, k  # terms relative to P(X = k), summed downwards
    while i >= 0:
        total += term
        if term < 1e-18 * total:
            break
        term *= i / (n - i + 1)
        i -= 1
    return math.exp(log_top + math.log(total))


def _as_correct(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be booleans or 0/1 (use majority_correct for draws)")
    return arr.astype(bool)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired per-example correctness.

    Binomial test on the discordant pairs: with n01 (a right, b wrong) and n10 (a wrong,
    b right), p = min(1, 2 * P(X <= min(n01, n10))) for X ~ Binomial(n01 + n10, 1/2);
    1.0 when there are no discordant pairs.
    """
    x = _as_correct(a, "a")
    z = _as_correct(b, "b")
    if x.ndim != 1 or x.shape != z.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {x.shape} and {z.shape}")
    n01 = int(np.count_nonzero(x & ~z))
    n10 = int(np.count_nonzero(~x & z))
    n = n01 + n10
    k = min(n01, n10)
    if n == 0 or 2 * k >= n:
        return 1.0
    return min(1.0, 2.0 * _binom_half_cdf(k, n))


def majority_correct(scores: np.ndarray) -> np.ndarray:
    """Per-example boolean: mean over draws > 0.5 (a 1-D array is one draw; ties are False)."""
    return np.asarray(_as_matrix(scores).mean(axis=1) > 0.5)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, returned in the input order.

    With p-values sorted ascending p(1) <= ... <= p(m), the adjusted p(i) is
    max over j <= i of min(1, (m - j + 1) * p(j)); the result is monotone and capped at 1.
    """
    p = [float(v) for v in p_values]
    if any(not 0.0 <= v <= 1.0 for v in p):  # also rejects NaN
        raise ValueError(f"p-values must lie in [0, 1], got {p}")
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=p.__getitem__)):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class CurveStep:
    """One step of a few-shot sweep: paired accuracy gain acc(k_to) - acc(k_from)."""

    k_from: int
    k_to: int
    gain: Interval


@dataclass(frozen=True)
class PlateauResult:
    """Outcome of detect_plateau."""

    status: str  # "plateaued" | "still_improving" | "insufficient_data"
    k_star: int | None
    next_k: int | None
    steps: tuple[CurveStep, ...]
    reason: str


def _step_text(step: CurveStep, confidence: float) -> str:
    a, b, g = step.k_from, step.k_to, step.gain
    move = f"doubling k from {a} to {b}" if b == 2 * a else f"going from k={a} to k={b}"
    ci = f"{100 * confidence:g}% CI {g.low:+.3f}..{g.high:+.3f}"
    return f"{move} gains {g.estimate:+.3f} ({ci})"


def _next_k(top: int | None, max_k: int | None) -> int | None:
    if top is None or (max_k is not None and top >= max_k):
        return None
    proposal = 2 * top if top > 0 else 1
    return proposal if max_k is None else min(proposal, max_k)


def detect_plateau(
    curve: Mapping[int, np.ndarray], *, min_gain: float = 0.02, n_boot: int = 2000,
    seed: int = 0, confidence: float = 0.95, max_k: int | None = None,
) -> PlateauResult:
    """Decide whether a few-shot accuracy curve has plateaued.

    ``curve`` maps k (number of shots, k=0 zero-shot) to per-example scores of shape
    (n_examples, n_draws), the same examples in the same order for every k.

    Rule. Sort the ks; for each consecutive pair (k, k') (normally k' = 2k, "doubling") the
    gain is paired_difference(mean over draws at k', mean over draws at k) with a percentile
    bootstrap interval at ``confidence``. A step is

    * *flat* when gain.estimate < min_gain and gain.low <= 0 (no evidence of any gain; a
      significant drop counts as flat);
    * a *real gain* when gain.estimate >= min_gain and gain.low > 0.

    The curve has plateaued at k* = k_from of the first flat step that comes after the last
    real gain (a noisy dip followed by a real rise therefore does not count). Otherwise it is
    still improving and next_k = 2 * max(k) (1 if max(k) == 0), capped at ``max_k``; next_k is
    None when max(k) already reached max_k. Fewer than two ks gives "insufficient_data".
    A small but significant gain (estimate < min_gain, low > 0) is neither flat nor real.
    """
    _check_confidence(confidence)
    ks = sorted(curve)
    if any(k < 0 for k in ks):
        raise ValueError(f"k must be >= 0, got {ks}")
    if len(ks) < 2:
        nxt = _next_k(ks[-1] if ks else None, max_k)
        have = f"only k={ks[0]} was measured" if ks else "no k was measured"
        tail = f"; try k={nxt} next" if nxt is not None else ""
        return PlateauResult("insufficient_data", None, nxt, (), f"{have}{tail}")
    mats = {k: _as_matrix(curve[k]) for k in ks}
    if len({y.shape[0] for y in mats.values()}) != 1 or min(y.size for y in mats.values()) == 0:
        raise ValueError("every k needs scores for the same, non-zero number of examples")
    means = {k: y.mean(axis=1) for k, y in mats.items()}
    steps = tuple(
        CurveStep(k0, k1, paired_difference(
            means[k1], means[k0], n_boot=n_boot, seed=seed, confidence=confidence))
        for k0, k1 in pairwise(ks)
    )
    real = [s.gain.estimate >= min_gain and s.gain.low > 0 for s in steps]
    last_real = max((i for i, r in enumerate(real) if r), default=-1)
    star = next(
        (i for i in range(last_real + 1, len(steps))
         if steps[i].gain.estimate < min_gain and steps[i].gain.low <= 0),
        None,
    )
    if star is not None:
        reason = (f"{_step_text(steps[star], confidence)}, below min_gain {min_gain:g} and "
                  "not significantly above 0")
        if star < len(steps) - 1:
            reason += f"; no later step gains significantly >= {min_gain:g}"
        return PlateauResult("plateaued", steps[star].k_from, None, steps, reason)
    last = steps[-1]
    if last_real == len(steps) - 1:
        reason = f"{_step_text(last, confidence)}, significantly at least min_gain {min_gain:g}"
    else:
        reason = (f"no step after the last significant gain is flat; the last step, "
                  f"{_step_text(last, confidence)}, is not both below min_gain {min_gain:g} "
                  "and consistent with no gain")
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
            return "never pays back: the fine-tuned model saves nothing per query"
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


@dataclass(frozen=True)
class ArmEvidence:
    """What the verdict needs about the fine-tuned arm versus the best prompting arm."""

    ft_delta: Interval  # accuracy(ft) - accuracy(best prompting), paired
    ft_p_adjusted: float  # Holm-adjusted McNemar p-value for that comparison
    break_even: BreakEven | None
    monthly_volume: float | None  # expected queries per month, None if not given


@dataclass(frozen=True)
class Verdict:
    """The recommendation with a one-sentence summary and the reasons behind it."""

    recommendation: str  # "keep_prompting" | "prompting_sufficient" | "fine_tune"
    sentence: str
    reasons: tuple[str, ...]


def _points(x: Interval) -> str:
    return f"{100 * x.estimate:+.1f} points, CI {100 * x.low:+.1f}..{100 * x.high:+.1f}"


def _pays_back(ft: ArmEvidence) -> tuple[bool, str]:
    be = ft.break_even
    if be is None:
        return False, "no cost comparison was available"
    if be.queries is None or be.monthly_volume_to_pay_back is None:
        return False, be.describe()
    if ft.monthly_volume is None:
        return True, f"{be.describe()} (no monthly volume given)"
    ok = ft.monthly_volume >= be.monthly_volume_to_pay_back
    verb = "covers" if ok else "falls short of"
    return ok, f"{be.describe()}; the stated {ft.monthly_volume:,.0f}/month {verb} it"


def _p_text(p: float) -> str:
    """A p-value for a sentence: tiny values as an upper bound, never a bare 0."""
    return "p<0.0001" if p < 1e-4 else f"p={p:.3g}"


def decide(
    plateau: PlateauResult, ft: ArmEvidence | None, *, alpha: float = 0.05,
    equivalence_margin: float = 0.02,
) -> Verdict:
    """Recommend keep_prompting, prompting_sufficient or fine_tune.

    * fine_tune, whatever the curve: the fine-tuned arm is significantly better
      (ft_delta.estimate > 0 and ft_p_adjusted < alpha), or it is as good
      (ft_delta.low > -equivalence_margin) and pays back: break_even.queries is not None and
      either monthly_volume >= break_even.monthly_volume_to_pay_back, or, with no monthly
      volume given, merely saves money per query (saving > 0, so it pays back eventually).
    * keep_prompting, otherwise, when the curve is still improving (names the next k) or has
      too few ks to tell.
    * prompting_sufficient, otherwise (plateaued, and no winning fine-tuned arm or none at all).
    """
    if plateau.status not in ("plateaued", "still_improving", "insufficient_data"):
        raise ValueError(f"unknown plateau status {plateau.status!r}")
    reasons: list[str] = [f"few-shot curve {plateau.status}: {plateau.reason}"]
    why = "no fine-tuned arm was evaluated"
    if ft is not None:
        d, p = ft.ft_delta, ft.ft_p_adjusted
        better = d.estimate > 0 and p < alpha
        as_good = d.low > -equivalence_margin
        pays, pay_text = _pays_back(ft)
        reasons.append(f"fine-tuned minus best prompt: {_points(d)}, Holm-adjusted {_p_text(p)}")
        reasons.append(f"fine-tuning {pay_text}")
        if better:
            return Verdict("fine_tune", f"Fine-tune: it beats the best prompt by {_points(d)}, "
                           f"Holm-adjusted {_p_text(p)}.", tuple(reasons))
        margin = f"{100 * equivalence_margin:g}-point margin"
        if as_good and pays:
            return Verdict("fine_tune", f"Fine-tune: it is as accurate as the best prompt "
                           f"({_points(d)}, within the {margin}) and {pay_text}.",
                           tuple(reasons))
        why = (f"the fine-tuned model is no better ({_points(d)}) and {pay_text}" if as_good
               else f"the fine-tuned model is not as accurate ({_points(d)}, beyond the {margin})")
    else:
        reasons.append(why)
    if plateau.status == "insufficient_data":
        nxt = f" (try k={plateau.next_k})" if plateau.next_k is not None else ""
        return Verdict("keep_prompting", "Keep prompting: more shot counts are needed to tell "
                       f"whether accuracy has plateaued{nxt}.", tuple(reasons))
    if plateau.status == "still_improving":
        last = plateau.steps[-1] if plateau.steps else None
        gain = f" (k={last.k_from}->{last.k_to}: {_points(last.gain)})" if last else ""
        nxt = (f"try k={plateau.next_k} next" if plateau.next_k is not None
               else "use the largest k allowed")
        return Verdict("keep_prompting", f"Keep prompting: accuracy is still rising with more "
                       f"examples{gain}; {nxt}.", tuple(reasons))
    return Verdict("prompting_sufficient", f"Prompting is sufficient: accuracy plateaus at "
                   f"k={plateau.k_star}; {why}.", tuple(reasons))
