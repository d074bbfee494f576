"""Issue 24, item 3: one paired-test dispatcher and one unpaired comparison
(analysis/comparisons.py), used by the analysis and the gate alike: the Newcombe interval
against Newcombe's published values, the dispatch, and the gate's figures equal to the
analysis's for the same per-example data."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from harness.analysis import clustered, stats
from harness.analysis.comparisons import (
    newcombe_interval,
    paired,
    paired_mean_difference,
    paired_test,
    unpaired_test,
)
from harness.gating import ArmData, Snapshot, compare

ROOT = Path(__file__).resolve().parents[2]

# Newcombe (1998), "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Statistics in Medicine 17: 873-890, Table II, method 10
# (the hybrid score interval): (m, n, x, y) -> (lower, upper) of x/m - y/n, to 4 decimals.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_newcombe_1998_table_ii(
        counts: tuple[int, int, int, int], expected: tuple[float, float]) -> None:
    x, m, y, n = counts
    got = newcombe_interval(x / m, m, y / n, n)
    assert got.estimate == pytest.approx(x / m - y / n)
    assert (round(got.low, 4), round(got.high, 4)) == expected


def test_unpaired_test_is_the_newcombe_interval_and_the_pooled_z_test() -> None:
    t = unpaired_test(0.8, 70, 0.6, 80)  # 56/70 vs 48/80
    assert t.test == "z_test" and t.difference == newcombe_interval(0.8, 70, 0.6, 80)
    # pooled 104/150: z = 0.2 / sqrt(0.6933 * 0.3067 * (1/70 + 1/80)) = 2.6502, p = 0.00805
    assert t.p_value == pytest.approx(0.00805, abs=1e-5)
    assert unpaired_test(1.0, 50, 1.0, 50).p_value == 1.0  # nothing varies: no evidence


def _draws(rng: np.random.Generator, n: int, draws: int, p: float) -> np.ndarray:
    return (rng.random((n, draws)) < p).astype(float)


def test_paired_test_dispatch() -> None:
    rng = np.random.default_rng(3)
    x, y = _draws(rng, 40, 1, 0.8)[:, 0], _draws(rng, 40, 1, 0.6)[:, 0]
    groups = [f"c{i // 4}" for i in range(40)]
    plain = paired_test(x, y, n_boot=300)
    assert plain.test == "mcnemar" and plain.p_value == stats.mcnemar_exact(x > 0.5, y > 0.5)
    assert plain.difference == stats.paired_difference(x, y, n_boot=300, seed=0)
    clus = paired_test(x, y, n_boot=300, clusters=groups)
    assert clus.test == "clustered_mcnemar"
    assert clus.p_value == clustered.clustered_mcnemar(x > 0.5, y > 0.5, groups)
    assert clus.difference == stats.paired_difference(x, y, n_boot=300, seed=0, clusters=groups)
    ca, cb = rng.integers(0, 3, (40, 3)).astype(float), rng.integers(0, 3, (40, 3)).astype(float)
    f1 = paired_test(ca, cb, n_boot=300, metric="field_f1")
    ref = stats.paired_f1_difference(ca, cb, n_boot=300, seed=0)
    assert (f1.test, f1.difference, f1.p_value) == ("paired_bootstrap", ref.difference, ref.p_value)
    f1c = paired_test(ca, cb, n_boot=300, metric="field_f1", clusters=groups)
    ref = stats.paired_f1_difference(ca, cb, n_boot=300, seed=0, clusters=groups)
    assert (f1c.test, f1c.difference, f1c.p_value) == ("cluster_bootstrap", ref.difference,
                                                       ref.p_value)


def test_cluster_labels_and_codes_give_the_same_figures() -> None:
    rng = np.random.default_rng(4)
    x, y = _draws(rng, 30, 1, 0.7)[:, 0], _draws(rng, 30, 1, 0.5)[:, 0]
    labels = [f"c{i % 6}" for i in range(30)]
    codes = np.array([i % 6 for i in range(30)]) * 7 + 3  # sparse codes, same grouping
    assert paired_test(x, y, n_boot=300, clusters=labels) == paired_test(
        x, y, n_boot=300, clusters=codes)


def test_analysis_paired_goes_through_paired_test() -> None:
    rng = np.random.default_rng(5)
    ma, mb = _draws(rng, 50, 3, 0.7), _draws(rng, 50, 3, 0.6)
    ma[7, 1] = math.nan  # an example without every result: left out of both
    codes = np.arange(50) // 5
    mats = {("a", 0): ma, ("b", 0): mb}
    keep = ~np.isnan(ma).any(axis=1)
    for groups in (None, codes):
        got = paired(mats, ("a", 0), ("b", 0), n_boot=300, clusters=groups)
        want = paired_test(ma[keep].mean(axis=1), mb[keep].mean(axis=1), n_boot=300,
                           clusters=None if groups is None else groups[keep])
        assert got == (49, want.difference, want.p_value, want.test)
        assert got[1] == paired_mean_difference(
            ma[keep].mean(axis=1), mb[keep].mean(axis=1), n_boot=300,
            clusters=None if groups is None else groups[keep])


def _snapshot(mat: np.ndarray, ids: list[str], sha: str = "d", meta: Any = None) -> Snapshot:
    per = {i: float(v) for i, v in zip(ids, mat.mean(axis=1), strict=True)}
    value = float(mat.mean())
    arm = ArmData("few-shot@k=2", "few", "few_shot", 2, len(ids), mat.shape[1],
                  {"accuracy": value, "schema_compliance": 1.0},
                  {"accuracy": per, "schema_compliance": dict.fromkeys(per, 1.0)})
    return Snapshot("x", "x", sha, {arm.name: arm}, meta=meta)


@pytest.mark.parametrize("clustered_run", [False, True])
def test_gate_and_analysis_give_the_same_numbers(clustered_run: bool) -> None:
    """The same per-example results, gated (run against baseline) and compared in the analysis
    (arm against arm): the same change, interval, p-value and test."""
    rng = np.random.default_rng(6)
    n = 60
    now, was = _draws(rng, n, 2, 0.6), _draws(rng, n, 2, 0.85)
    ids = [f"ex{i:03d}" for i in range(n)]  # the gate pairs in id order: here the rows' order
    labels = [f"conv{i // 3:02d}" for i in range(n)]
    meta = SimpleNamespace(examples=tuple(ids), clusters=tuple(labels)) if clustered_run else None
    gated = compare(_snapshot(was, ids), _snapshot(now, ids, meta=meta), n_boot=500)
    row = next(r for r in gated.rows if r.metric == "accuracy")
    codes = stats.cluster_codes(labels, n) if clustered_run else None  # arms.clusters_of
    got = paired({("now", 2): now, ("was", 2): was}, ("now", 2), ("was", 2), n_boot=500,
                 clusters=codes)
    assert got is not None
    _, delta, p, test = got
    assert row.change == delta and row.p_value == p
    assert (row.test, test) == (("clustered McNemar", "clustered_mcnemar") if clustered_run
                                else ("McNemar", "mcnemar"))
    assert row.change is not None and row.change.estimate == pytest.approx(now.mean() - was.mean())


def test_gate_unpaired_rows_are_unpaired_test() -> None:
    rng = np.random.default_rng(7)
    now, was = _draws(rng, 40, 1, 0.6), _draws(rng, 50, 1, 0.8)
    gated = compare(_snapshot(was, [f"b{i}" for i in range(50)], sha="old"),
                    _snapshot(now, [f"a{i}" for i in range(40)]))
    row = next(r for r in gated.rows if r.metric == "accuracy")
    want = unpaired_test(float(now.mean()), 40, float(was.mean()), 50)
    assert (row.change, row.p_value, row.test) == (want.difference, want.p_value, "z-test")


def test_comparisons_module_loads_no_statistics_stack() -> None:
    """The gate imports the dispatchers: the module must not pull in pandas or scipy."""
    probe = ("import sys, harness.analysis.comparisons, harness.gating; "
             "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
