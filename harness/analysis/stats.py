"""The estimators: *which interval and test, computed how?* Statistics behind the
prompt-or-fine-tune decision.

Pure functions over numpy arrays; results are frozen dataclasses. Accuracies are fractions in
[0, 1]; "points" in human sentences are percentage points.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; estimate is successes / n.

    Returns Interval(nan, nan, nan) when n == 0.
    """
    check_confidence(confidence)
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


def cluster_codes(clusters: Sequence[object] | np.ndarray | None, n: int) -> np.ndarray | None:
    """Integer codes 0..G-1 of each example's cluster (None: every example its own cluster)."""
    if clusters is None:
        return None
    labels = np.asarray(clusters)
    if labels.shape != (n,):
        raise ValueError(f"clusters must give one label per example ({n}), got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _resample_weights(rng: np.random.Generator, n: int, reps: int, codes: np.ndarray | None
                      ) -> np.ndarray:
    """(reps, n) weights of a with-replacement resample: of examples (codes None), or of whole
    clusters (each example weighted by how often its cluster is drawn)."""
    if codes is None:
        return _resample_counts(rng, n, reps)
    return _resample_counts(rng, int(codes.max()) + 1, reps)[:, codes]


FEW_VALUES = 32  # scores with at most this many distinct values are resampled as counts


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_boot: int
                     ) -> np.ndarray | None:
    """`n_boot` bootstrap replicates of the mean of `values` (1-D), drawn as counts: a
    with-replacement resample of n items is, in distribution, Multinomial(n, the empirical
    frequencies of the distinct values), so only the counts of those values are drawn (n_boot
    x k numbers instead of n_boot x n). None when there are more than FEW_VALUES values."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) > FEW_VALUES:
        return None
    n = len(values)
    drawn = rng.multinomial(n, counts / n, size=n_boot)
    return np.asarray(drawn @ distinct / n)


def _percentile(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    low, high = np.quantile(replicates, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return Interval(estimate, float(low), float(high))


def bootstrap_interval(
    scores: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
    clusters: Sequence[object] | np.ndarray | None = None,
) -> Interval:
    """Two-way (examples x draws) percentile bootstrap interval for the mean score.

    ``scores`` has shape (n_examples, n_draws); a 1-D array is one draw. Each replicate resamples
    rows (examples) with replacement and, independently, columns (draws) with replacement
    (Owen's pigeonhole bootstrap), so a draw-level effect shared by all examples (e.g. one
    demonstration set per draw) widens the interval. When draws are independent within each
    example the interval is conservative (it counts per-draw noise more than once). Deterministic
    for a given seed.

    ``clusters`` (one label per example) resamples whole clusters instead of examples (the
    cluster bootstrap; Field & Welsh 2007): each replicate's mean is its weighted sum over the
    drawn examples' total weight, so clusters of unequal size are handled as a ratio estimate.
    """
    check_confidence(confidence)
    y = _as_matrix(scores)
    n, m = y.shape
    if n == 0 or m == 0:
        return _NAN_INTERVAL
    codes = cluster_codes(clusters, n)
    rng = np.random.default_rng(seed)
    if codes is None and m == 1:
        fast = _resampled_means(y[:, 0], rng, n_boot)
        if fast is not None:
            return _percentile(float(y.mean()), fast, confidence)
    parts = []
    for reps in _chunks(n, n_boot):
        rows = _resample_weights(rng, n, reps, codes)
        cols = _resample_counts(rng, m, reps) if m > 1 else np.ones((reps, 1))
        total = n if codes is None else rows.sum(axis=1)
        parts.append(((rows @ y) * cols).sum(axis=1) / (total * m))
    return _percentile(float(y.mean()), np.concatenate(parts), confidence)


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
    clusters: Sequence[object] | np.ndarray | None = None,
) -> Interval:
    """mean(a) - mean(b) with a paired percentile bootstrap interval over examples.

    ``a`` and ``b`` are per-example scores (1-D, same examples in the same order, e.g. the mean
    over draws); each replicate resamples example indices once and uses them for both arms.
    With ``clusters`` each replicate resamples whole clusters (see bootstrap_interval).
    """
    check_confidence(confidence)
    x, z = _as_matrix(a), _as_matrix(b)
    if x.shape[1] != 1 or x.shape != z.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {x.shape} and {z.shape}")
    n = x.shape[0]
    if n == 0:
        return _NAN_INTERVAL
    d = (x - z)[:, 0]
    codes = cluster_codes(clusters, n)
    rng = np.random.default_rng(seed)
    if codes is None:
        fast = _resampled_means(d, rng, n_boot)
        if fast is not None:
            return _percentile(float(d.mean()), fast, confidence)
    parts = []
    for reps in _chunks(n, n_boot):
        w = _resample_weights(rng, n, reps, codes)
        parts.append(w @ d / (n if codes is None else w.sum(axis=1)))
    return _percentile(float(d.mean()), np.concatenate(parts), confidence)


def _as_counts(counts: np.ndarray, name: str) -> np.ndarray:
    """(n_examples, 3) float array of per-example (tp, fp, fn) counts."""
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n_examples, 3) of (tp, fp, fn), got {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"{name} contains negative, NaN or infinite counts")
    return c


def micro_f1(counts: np.ndarray) -> float:
    """Micro F1 = 2 tp / (2 tp + fp + fn) over summed per-example (tp, fp, fn) counts; 0 when
    there is nothing to count (no gold value and no prediction), as the extraction task does."""
    tp, fp, fn = _as_counts(counts, "counts").sum(axis=0)
    denom = 2.0 * tp + fp + fn
    return float(2.0 * tp / denom) if denom > 0 else 0.0


def _f1_rows(weights: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Micro F1 of each resample: weights (reps, n) of how often each example is drawn."""
    tp, fp, fn = (weights @ c).T
    denom = 2.0 * tp + fp + fn
    return np.asarray(np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0))


def bootstrap_f1_interval(
    counts: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
    clusters: Sequence[object] | np.ndarray | None = None,
) -> Interval:
    """Micro F1 of one arm with a percentile bootstrap interval over examples.

    ``counts`` is (n_examples, 3): each example's (tp, fp, fn) summed over its fields (for
    several draws, the mean over draws). Micro F1 is a ratio, not a mean of per-example scores,
    so each replicate resamples examples and recomputes 2 tp / (2 tp + fp + fn) from the summed
    counts. Deterministic for a given seed. ``clusters``: resample whole clusters.
    """
    check_confidence(confidence)
    c = _as_counts(counts, "counts")
    n = c.shape[0]
    if n == 0:
        return _NAN_INTERVAL
    codes = cluster_codes(clusters, n)
    rng = np.random.default_rng(seed)
    parts = [_f1_rows(_resample_weights(rng, n, reps, codes), c) for reps in _chunks(n, n_boot)]
    return _percentile(micro_f1(c), np.concatenate(parts), confidence)


@dataclass(frozen=True)
class PairedTest:
    """A paired difference with its interval and a two-sided p-value."""

    difference: Interval
    p_value: float


def paired_f1_difference(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
    clusters: Sequence[object] | np.ndarray | None = None,
) -> PairedTest:
    """micro F1(a) - micro F1(b) with a paired percentile bootstrap interval and p-value.

    ``a`` and ``b`` are (n_examples, 3) per-example (tp, fp, fn) counts of two arms on the same
    examples in the same order. Each replicate draws example indices once and uses them for both
    arms (the pairing), recomputing each arm's micro F1 from its summed counts. The two-sided
    p-value inverts the percentile interval: p = 2 * min(#{d* <= 0} + 1, #{d* >= 0} + 1) /
    (n_boot + 1), capped at 1 (never 0; below alpha roughly when the (1 - alpha) interval
    excludes 0). Deterministic for a given seed. ``clusters``: resample whole clusters.
    """
    check_confidence(confidence)
    x, z = _as_counts(a, "a"), _as_counts(b, "b")
    if x.shape != z.shape:
        raise ValueError(f"a and b must cover the same examples, got {x.shape} and {z.shape}")
    n = x.shape[0]
    if n == 0:
        return PairedTest(_NAN_INTERVAL, 1.0)
    codes = cluster_codes(clusters, n)
    rng = np.random.default_rng(seed)
    parts = []
    for reps in _chunks(n, n_boot):
        w = _resample_weights(rng, n, reps, codes)
        parts.append(_f1_rows(w, x) - _f1_rows(w, z))
    d = np.concatenate(parts)
    below, above = int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0))
    p = min(1.0, 2.0 * (min(below, above) + 1) / (d.size + 1))
    return PairedTest(_percentile(micro_f1(x) - micro_f1(z), d, confidence), p)


def _binom_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if n <= _EXACT_BINOMIAL_MAX_N:  # exact integers; int / int is correctly rounded
        count, c = 0, 1  # sum of C(n, i) for i <= k; c = C(n, i)
        for i in range(k + 1):
            count += c
            c = c * (n - i) // (i + 1)
        return count / (1 << n)
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
