"""Paired comparisons of two arms on the same examples: the difference with its interval, the
test, and the comparisons table (every arm against zero-shot and the reference prompt).

With `dataset.cluster` (``clusters``: each example's cluster code, tables.clusters_of) the
bootstraps resample whole clusters and McNemar's test becomes Durkalski et al.'s clustered
McNemar test (analysis/clustered.py); without it the figures are the unclustered ones.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from harness.analysis import clustered, power, stats
from harness.analysis.tables import ArmId, Matrices, complete_rows, reference_arm, row_name

Clusters = np.ndarray | None  # cluster code of each eval example (tables.clusters_of)


def paired(mats: Matrices, a: ArmId, b: ArmId, *, n_boot: int, metric: str = "accuracy",
           clusters: Clusters = None) -> tuple[int, stats.Interval, float, str] | None:
    """Arm a minus arm b on the examples both have: (n, delta with its paired bootstrap
    interval, two-sided p-value, test), or None when they share no example.

    Accuracy: mean over draws, McNemar's exact test on the majority-correct answers
    ("mcnemar"; clustered: "clustered_mcnemar", Durkalski et al. 2003). Field F1: ``mats`` are
    count matrices (count_matrix), the micro-F1 difference and its p-value from one paired
    bootstrap ("paired_bootstrap"; clustered: "cluster_bootstrap", resampling clusters).
    """
    ma, mb = mats[a], mats[b]
    keep = complete_rows(ma, mb)
    if not keep.any():
        return None
    ma, mb = ma[keep], mb[keep]
    groups = None if clusters is None else clusters[keep]
    if metric == "field_f1":
        t = stats.paired_f1_difference(ma, mb, n_boot=n_boot, seed=0, clusters=groups)
        return (int(keep.sum()), t.difference, t.p_value,
                "paired_bootstrap" if groups is None else "cluster_bootstrap")
    d = paired_mean_difference(ma.mean(axis=1), mb.mean(axis=1), n_boot=n_boot, clusters=groups)
    right_a, right_b = stats.majority_correct(ma), stats.majority_correct(mb)
    if groups is None:
        return int(keep.sum()), d, stats.mcnemar_exact(right_a, right_b), "mcnemar"
    return (int(keep.sum()), d, clustered.clustered_mcnemar(right_a, right_b, groups),
            "clustered_mcnemar")


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


__all__ = ["Clusters", "comparisons_frame", "detectable", "paired", "paired_mean_difference"]
