"""Issue 24, item 3: the one interval dispatcher (analysis/intervals.py) picks the interval for
an arm's per-example scores: Wilson for one draw, the two-way bootstrap for several, and their
clustered forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import clustered, stats
from harness.analysis.intervals import complete_rows, interval, proportion

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Statistics in Medicine 17: 857-872, Table I, method 3 (Wilson score).
WILSON_TABLE_I = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)),
                  ((0, 20), (0.0, 0.1611)), ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize(("counts", "expected"), WILSON_TABLE_I)
def test_one_draw_is_the_wilson_interval(counts: tuple[int, int],
                                         expected: tuple[float, float]) -> None:
    x, n = counts
    mat = np.zeros((n, 1))
    mat[:x, 0] = 1.0
    got = interval(mat, n_boot=100, seed=0)
    assert got == stats.wilson_interval(x, n) == proportion(x, n)
    assert (round(got.low, 4), round(got.high, 4)) == expected


def test_several_draws_are_the_two_way_bootstrap() -> None:
    rng = np.random.default_rng(1)
    mat = (rng.random((30, 3)) < 0.7).astype(float)
    assert interval(mat, n_boot=400, seed=2) == stats.bootstrap_interval(mat, n_boot=400, seed=2)


def test_incomplete_examples_are_left_out() -> None:
    mat = np.array([[1.0, 0.0], [1.0, math.nan], [0.0, 0.0], [1.0, 1.0]])
    assert complete_rows(mat).tolist() == [True, False, True, True]
    assert interval(mat, n_boot=300, seed=0) == stats.bootstrap_interval(
        mat[[0, 2, 3]], n_boot=300, seed=0)
    empty = interval(np.full((3, 1), math.nan), n_boot=10, seed=0)
    assert all(math.isnan(v) for v in (empty.estimate, empty.low, empty.high))


def test_clustered_forms() -> None:
    rng = np.random.default_rng(2)
    codes = np.arange(40) // 4
    one = (rng.random((40, 1)) < 0.6).astype(float)
    one[5, 0] = math.nan
    keep = ~np.isnan(one[:, 0])
    want = clustered.clustered_wilson(one[keep, 0], codes[keep])
    assert interval(one, n_boot=100, seed=0, clusters=codes) == want
    assert proportion(int(one[keep, 0].sum()), int(keep.sum()), clusters=codes[keep],
                      values=one[keep, 0]) == want
    several = (rng.random((40, 2)) < 0.6).astype(float)
    assert interval(several, n_boot=300, seed=1, clusters=codes) == stats.bootstrap_interval(
        several, n_boot=300, seed=1, clusters=codes)
