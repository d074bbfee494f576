"""Comparisons: *is one arm better than another?* The difference of two arms with its interval
and test, and the comparisons table (every arm against zero-shot and the reference prompt).

Two dispatchers, used by the analysis and the gate (harness/gating) alike:

* ``paired_test``: two arms on the same examples (per-example values in the same order): the
  paired bootstrap interval of the difference, and McNemar's exact test on the majority-correct
  answers (accuracy-like metrics) or the paired bootstrap's p-value (field F1). ``paired`` is it
  over two arms' score matrices.
* ``unpaired_test``: two proportions measured on different data: Newcombe's hybrid score
  interval of the difference (``newcombe_interval``) and the pooled two-proportion z-test.

With `dataset.cluster` (``clusters``: each example's cluster label or code, arms.clusters_of)
the bootstraps resample whole clusters and McNemar's test becomes Durkalski et al.'s clustered
McNemar test (analysis/clustered.py); without it the figures are the unclustered ones.

Importing this module is light (numpy only): the gate uses it, and pandas and the arms' tables
load only with ``comparisons_frame`` and ``detectable``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from harness.analysis import clustered, stats
from harness.analysis.intervals import complete_rows

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis import power
    from harness.analysis.arms import ArmId, Matrices

Clusters = np.ndarray | None  # cluster code of each eval example (arms.clusters_of)
Labels = Sequence[object] | np.ndarray | None  # cluster label (or code) of each example


@dataclass(frozen=True)
class DifferenceTest:
    """A difference between two arms with its interval, a two-sided p-value and the test:
    "mcnemar", "clustered_mcnemar", "paired_bootstrap", "cluster_bootstrap" (paired_test) or
    "z_test" (unpaired_test)."""

    difference: stats.Interval
    p_value: float
    test: str


def paired_test(x: np.ndarray, y: np.ndarray, *, n_boot: int, clusters: Labels = None,
                metric: str = "accuracy") -> DifferenceTest:
    """x minus y on the same examples, in the same order (the one paired test of the analysis
    and the gate).

    Any metric but field F1: ``x`` and ``y`` are per-example scores in [0, 1] (the mean over
    draws); the difference of their means with its paired bootstrap interval (seed 0,
    paired_mean_difference) and McNemar's exact test on the majority-correct answers (score >
    0.5; "mcnemar"); clustered, the bootstrap over clusters and Durkalski et al.'s clustered
    McNemar test ("clustered_mcnemar"). Field F1: ``x`` and ``y`` are (n, 3) per-example
    (tp, fp, fn) counts (arms' count matrices); the micro-F1 difference and its p-value from one
    paired bootstrap ("paired_bootstrap"; clustered: "cluster_bootstrap").
    """
    n = np.shape(x)[0]
    codes = stats.cluster_codes(clusters, n)  # contiguous codes: the bootstraps' own
    if metric == "field_f1":
        t = stats.paired_f1_difference(x, y, n_boot=n_boot, seed=0, clusters=codes)
        return DifferenceTest(t.difference, t.p_value,
                              "paired_bootstrap" if codes is None else "cluster_bootstrap")
    d = paired_mean_difference(x, y, n_boot=n_boot, clusters=codes)
    right_x, right_y = stats.majority_correct(x), stats.majority_correct(y)
    if codes is None:
        return DifferenceTest(d, stats.mcnemar_exact(right_x, right_y), "mcnemar")
    return DifferenceTest(d, clustered.clustered_mcnemar(right_x, right_y, codes),
                          "clustered_mcnemar")


def newcombe_interval(p_a: float, n_a: float, p_b: float, n_b: float,
                      confidence: float = 0.95) -> stats.Interval:
    """p_a - p_b of two independent proportions (p_a of n_a, p_b of n_b) with Newcombe's hybrid
    score interval (Newcombe 1998, Statistics in Medicine 17: 873-890, method 10): with
    [l_a, u_a] and [l_b, u_b] the Wilson intervals of each proportion, d - sqrt((p_a - l_a)^2 +
    (u_b - p_b)^2) to d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)."""
    w_a = stats.wilson_interval(min(n_a, max(0.0, p_a * n_a)), n_a, confidence)
    w_b = stats.wilson_interval(min(n_b, max(0.0, p_b * n_b)), n_b, confidence)
    d = p_a - p_b
    return stats.Interval(d, d - math.hypot(p_a - w_a.low, w_b.high - p_b),
                          d + math.hypot(w_a.high - p_a, p_b - w_b.low))


def unpaired_test(p_a: float, n_a: int, p_b: float, n_b: int) -> DifferenceTest:
    """p_a - p_b of two proportions measured on different data (p_a of n_a examples, p_b of n_b):
    the Newcombe 95% interval (newcombe_interval) and the two-sided pooled two-proportion
    z-test's p-value (1.0 when the pooled proportion is 0 or 1; "z_test")."""
    d = p_a - p_b
    pooled = (p_a * n_a + p_b * n_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p = 1.0 if se == 0 else 2 * (1 - NormalDist().cdf(abs(d) / se))
    return DifferenceTest(newcombe_interval(p_a, n_a, p_b, n_b), min(1.0, p), "z_test")


def paired(mats: Matrices, a: ArmId, b: ArmId, *, n_boot: int, metric: str = "accuracy",
           clusters: Clusters = None) -> tuple[int, stats.Interval, float, str] | None:
    """Arm a minus arm b on the examples both have: (n, delta with its paired bootstrap
    interval, two-sided p-value, test), or None when they share no example: paired_test of
    the two arms' means over draws (field F1: of their count matrices, count_matrix).
    """
    ma, mb = mats[a], mats[b]
    keep = complete_rows(ma, mb)
    if not keep.any():
        return None
    ma, mb = ma[keep], mb[keep]
    groups = None if clusters is None else clusters[keep]
    if metric == "field_f1":
        t = paired_test(ma, mb, n_boot=n_boot, clusters=groups, metric=metric)
    else:
        t = paired_test(ma.mean(axis=1), mb.mean(axis=1), n_boot=n_boot, clusters=groups,
                        metric=metric)
    return int(keep.sum()), t.difference, t.p_value, t.test


@functools.lru_cache(maxsize=8)
def _paired_difference(a: bytes, b: bytes, n_boot: int, confidence: float,
                       clusters: bytes | None) -> stats.Interval:
    groups = None if clusters is None else np.frombuffer(clusters, dtype=np.int64)
    return stats.paired_difference(np.frombuffer(a), np.frombuffer(b), n_boot=n_boot, seed=0,
                                   confidence=confidence, clusters=groups)


def paired_mean_difference(a: np.ndarray, b: np.ndarray, *, n_boot: int,
                           confidence: float = 0.95, clusters: Clusters = None) -> stats.Interval:
    """stats.paired_difference(a, b, seed=0) of two per-example score vectors, remembered for
    the last few pairs: the comparisons table, the plateau's steps and the verdict weigh some
    pairs more than once, and each is a bootstrap over every example (or cluster)."""
    groups = (None if clusters is None
              else np.ascontiguousarray(clusters, dtype=np.int64).tobytes())
    return _paired_difference(np.ascontiguousarray(a, dtype=float).tobytes(),
                              np.ascontiguousarray(b, dtype=float).tobytes(), n_boot, confidence,
                              groups)


def detectable(ma: np.ndarray, mb: np.ndarray, clusters: Clusters) -> power.Detectable | None:
    """power.detectable_pair of two arms' score matrices; clustered, at the effective size of
    the paired difference (n / its design effect, analysis/clustered.py)."""
    from harness.analysis import power  # pandas: not for the gate

    if clusters is None:
        return power.detectable_pair(ma, mb)
    keep = complete_rows(ma, mb)
    if not keep.any():
        return None
    right_a, right_b = stats.majority_correct(ma[keep]), stats.majority_correct(mb[keep])
    diff = right_a.astype(float) - right_b.astype(float)
    deff = clustered.design_effect(diff, clusters[keep])
    return power.detectable_pair(ma, mb, design_effect=1.0 if math.isnan(deff) else deff)


def comparisons_frame(summary: pd.DataFrame, mats: Matrices, *, n_boot: int, alpha: float,
                      metric: str = "accuracy", min_compliance: float | None = None,
                      clusters: Clusters = None) -> pd.DataFrame:
    """Every arm vs zero-shot and vs the reference prompting arm (reference_arm): paired delta
    of ``metric``, its test (see paired; ``mats`` are count matrices for field_f1), Holm over
    all rows."""
    import pandas as pd

    from harness.analysis.arms import reference_arm, row_name

    cols = ["arm_a", "arm_b", "n", "delta", "delta_ci_low", "delta_ci_high", "p_value",
            "p_adjusted", "significant", "metric", "test", "discordance", "mde"]
    ok = summary[summary["n"] > 0]
    refs = []
    zs = ok[ok["type"] == "zero_shot"]
    if len(zs):
        refs.append(zs.iloc[0])
    best = reference_arm(summary, metric, min_compliance)
    if best is not None and (
            not refs or (best["strategy"], best["k"]) != (refs[0]["strategy"], refs[0]["k"])):
        refs.append(best)
    rows, pairs = [], set()
    for ref in refs:
        for _, arm in ok.iterrows():
            a, b = (arm["strategy"], arm["k"]), (ref["strategy"], ref["k"])
            if a == b or frozenset((a, b)) in pairs:
                continue
            pairs.add(frozenset((a, b)))
            got = paired(mats, a, b, n_boot=n_boot, metric=metric, clusters=clusters)
            if got is None:
                continue
            n, d, p, test = got
            # what this comparison can detect (80% power, alpha 0.05; accuracy only)
            det = detectable(mats[a], mats[b], clusters) if metric == "accuracy" else None
            rows.append({"arm_a": row_name(arm), "arm_b": row_name(ref), "n": n,
                         "delta": d.estimate, "delta_ci_low": d.low, "delta_ci_high": d.high,
                         "p_value": p, "test": test,
                         "discordance": det.discordance if det else math.nan,
                         "mde": det.mde if det and det.mde is not None else math.nan,
                         "design_effect": det.design_effect if det else math.nan})
    if clusters is not None:  # clustered runs only: unclustered tables keep their columns
        cols.append("design_effect")
    out = pd.DataFrame(rows, columns=[*cols[:7], "test", "discordance", "mde", "design_effect"])
    out["p_adjusted"] = stats.holm_adjust(list(out["p_value"])) if len(out) else []
    out["significant"] = out["p_adjusted"] < alpha
    out["metric"] = metric
    return out[cols]


__all__ = ["Clusters", "DifferenceTest", "Labels", "comparisons_frame", "detectable",
           "newcombe_interval", "paired", "paired_mean_difference", "paired_test", "unpaired_test"]
