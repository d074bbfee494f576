"""Clustered examples: *how do related examples change the intervals and tests?* Statistics for
clustered eval sets (`dataset.cluster`): groups of related examples, such as the turns of one
conversation or the messages of one customer, whose answers are correlated.

Examples in one cluster are not independent, so an eval of n examples in K clusters carries
less information than n independent ones. The *design effect* (Kish 1965) is the ratio of the
variance of a mean under the clustering to its variance were the examples independent; the
*effective size* is n / deff. With no `dataset.cluster` none of this applies and the run's
figures are the unclustered ones, unchanged.

* ``design_effect``: the cluster-robust (sandwich) variance of a mean over the independent
  variance: deff = [K/(K-1) sum_c (T_c - n_c ybar)^2 / n^2] / [s^2 / n], where T_c is the sum
  over cluster c (Miller 2024, "Adding Error Bars to Evals", eq. 5, the clustered standard error).
* ``clustered_wilson``: the Wilson interval at the effective size, with Korn & Graubard's
  (1998, Survey Methodology 24: 193-201) degrees-of-freedom correction (the effective size times
  (z / t_{K-1})^2) and deff truncated at 1, as they recommend.
* ``clustered_mcnemar``: Durkalski, Palesch, Lipsitz & Rust (2003, "Analysis of clustered
  matched-pair data", Statistics in Medicine 22: 2417-2428): with d_c = b_c - c_c the difference
  of the two arms' discordant counts in cluster c, X^2 = (sum_c d_c)^2 / sum_c d_c^2 ~ chi^2(1)
  under no difference. With clusters of one example it is McNemar's (b - c)^2 / (b + c).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from harness.analysis.stats import Interval, cluster_codes, wilson_interval


def cluster_totals(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the values, number of examples) of each cluster, clusters in code order."""
    k = int(codes.max()) + 1 if codes.size else 0
    return (np.bincount(codes, weights=np.asarray(values, dtype=float), minlength=k),
            np.bincount(codes, minlength=k).astype(float))


def design_effect(values: np.ndarray, clusters: Sequence[object] | np.ndarray) -> float:
    """The design effect of the mean of per-example ``values`` (1-D) under ``clusters`` (one
    label per example): the cluster-robust variance of the mean over the independent one. 1.0
    when the values do not vary (neither variance has anything to measure); NaN with fewer than
    two clusters or two examples."""
    y = np.asarray(values, dtype=float)
    n = y.shape[0]
    codes = cluster_codes(clusters, n)
    assert codes is not None
    k = int(codes.max()) + 1 if n else 0
    if n < 2 or k < 2:
        return math.nan
    s2 = float(np.var(y, ddof=1))
    if s2 == 0:
        return 1.0
    totals, sizes = cluster_totals(y, codes)
    robust = k / (k - 1) * float(np.sum((totals - sizes * y.mean()) ** 2)) / n**2
    return float(robust / (s2 / n))


def effective_size(n: int, deff: float, k: int, confidence: float = 0.95) -> float:
    """Korn & Graubard's effective size: n / max(1, deff), times (z / t_{K-1})^2 so that a
    normal-theory interval on it uses the t quantile of K - 1 degrees of freedom."""
    if k < 2 or math.isnan(deff):
        return float(n)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    from scipy.stats import t as student_t  # only a clustered run needs it (0.5-1 s to import)

    t = float(student_t.ppf(0.5 + confidence / 2.0, k - 1))
    return n / max(1.0, deff) * (z / t) ** 2


def clustered_wilson(values: np.ndarray, clusters: Sequence[object] | np.ndarray,
                     confidence: float = 0.95) -> Interval:
    """The Wilson interval of a proportion of clustered 0/1 ``values``, at the effective size
    (effective_size); the estimate is the plain proportion."""
    y = np.asarray(values, dtype=float)
    n = y.shape[0]
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    codes = cluster_codes(clusters, n)
    assert codes is not None
    k = int(codes.max()) + 1
    p = float(y.mean())
    n_eff = effective_size(n, design_effect(y, codes), k, confidence)
    got = wilson_interval(p * n_eff, n_eff, confidence)
    return Interval(p, got.low, got.high)


def clustered_mcnemar(a: np.ndarray, b: np.ndarray, clusters: Sequence[object] | np.ndarray
                      ) -> float:
    """Two-sided p-value of Durkalski et al.'s (2003) clustered McNemar test for paired
    per-example correctness ``a`` and ``b`` (booleans) of clustered examples; 1.0 when no
    cluster has a net difference."""
    x, z = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.ndim != 1 or x.shape != z.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {x.shape} and {z.shape}")
    codes = cluster_codes(clusters, x.shape[0])
    assert codes is not None
    if not x.size:
        return 1.0
    d, _ = cluster_totals(x.astype(float) - z.astype(float), codes)
    denom = float(np.sum(d * d))
    if denom == 0:
        return 1.0
    chi2 = float(np.sum(d)) ** 2 / denom
    return min(1.0, math.erfc(math.sqrt(chi2 / 2.0)))


def summary(clusters: Sequence[object] | np.ndarray) -> dict[str, float]:
    """The clusters of an eval: how many, and their mean and largest size."""
    codes = cluster_codes(clusters, len(clusters))
    assert codes is not None
    sizes = np.bincount(codes) if codes.size else np.zeros(0)
    return {"clusters": int(sizes.size), "mean_cluster_size": float(sizes.mean()) if sizes.size
            else math.nan, "max_cluster_size": int(sizes.max()) if sizes.size else 0}


__all__ = [
    "cluster_totals",
    "clustered_mcnemar",
    "clustered_wilson",
    "design_effect",
    "effective_size",
    "summary",
]
