"""Intervals: *how sure are we of one arm's figure?* The one dispatcher that picks the interval
for an arm's per-example scores: Wilson for one draw, the two-way bootstrap over examples and
draws for several, and, for a clustered eval (`dataset.cluster`), the Wilson interval at the
effective size and the bootstrap over clusters. The analysis and the gate both use it.
"""

from __future__ import annotations

import math

import numpy as np

from harness.analysis import clustered, stats


def complete_rows(*mats: np.ndarray) -> np.ndarray:
    """Mask of the examples that have a result in every matrix."""
    keep = np.ones(mats[0].shape[0], dtype=bool)
    for m in mats:
        keep &= ~np.isnan(m).any(axis=1)
    return keep


def interval(mat: np.ndarray, n_boot: int, seed: int, clusters: np.ndarray | None = None
             ) -> stats.Interval:
    """Wilson for one draw, the two-way bootstrap for several; clustered, the Wilson interval
    at the effective size (clustered.clustered_wilson) and the bootstrap over clusters."""
    keep = complete_rows(mat)
    m = mat[keep]
    if m.size == 0:
        return stats.Interval(math.nan, math.nan, math.nan)
    groups = None if clusters is None else clusters[keep]
    if m.shape[1] == 1:
        if groups is not None:
            return clustered.clustered_wilson(m[:, 0], groups)
        return stats.wilson_interval(int(m.sum()), m.shape[0])
    return stats.bootstrap_interval(m, n_boot=n_boot, seed=seed, clusters=groups)


def proportion(successes: int, n: int, clusters: np.ndarray | None = None,
               values: np.ndarray | None = None) -> stats.Interval:
    """A proportion's interval: Wilson; clustered (with each value's cluster code), the
    Wilson interval at the effective size (clustered.clustered_wilson)."""
    if clusters is not None and values is not None:
        return clustered.clustered_wilson(values, clusters)
    return stats.wilson_interval(successes, n)


__all__ = ["complete_rows", "interval", "proportion"]
