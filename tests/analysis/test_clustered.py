"""Clustered eval sets (`dataset.cluster`), tested against simulation and references: interval
coverage with a known intra-cluster correlation, the clustered McNemar test's size and its
reduction to McNemar's, the design effect against Kish's formula, and the planned power of
clustered comparisons against the empirical rejection rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from harness.analysis import clustered, power, stats


def _beta_binomial(rng: np.random.Generator, k: int, m: int, mean: float, icc: float
                   ) -> np.ndarray:
    """k clusters of m 0/1 outcomes with the given mean and intra-cluster correlation: each
    cluster's rate ~ Beta(mean s, (1 - mean) s) with s = 1 / icc - 1 (ICC = 1 / (s + 1))."""
    s = 1 / icc - 1
    rates = rng.beta(mean * s, (1 - mean) * s, k)
    return (rng.random((k, m)) < rates[:, None]).astype(float).ravel()


@pytest.mark.parametrize(("k", "m", "mean", "icc"), [(40, 5, 0.7, 0.3), (30, 8, 0.6, 0.2)])
def test_clustered_wilson_covers_95_percent_and_plain_wilson_does_not(k, m, mean, icc):
    rng = np.random.default_rng(7)
    codes = np.repeat(np.arange(k), m)
    reps = 1500
    hit_clustered = hit_plain = 0
    for _ in range(reps):
        y = _beta_binomial(rng, k, m, mean, icc)
        c = clustered.clustered_wilson(y, codes)
        p = stats.wilson_interval(y.sum(), y.size)
        hit_clustered += c.low <= mean <= c.high
        hit_plain += p.low <= mean <= p.high
    assert 0.93 <= hit_clustered / reps <= 0.97
    assert hit_plain / reps < 0.88  # the independent-examples interval under-covers


def test_design_effect_matches_kish_for_equal_clusters():
    rng = np.random.default_rng(5)
    k, m, icc = 200, 5, 0.3
    codes = np.repeat(np.arange(k), m)
    got = [clustered.design_effect(_beta_binomial(rng, k, m, 0.5, icc), codes)
           for _ in range(300)]
    assert float(np.mean(got)) == pytest.approx(1 + (m - 1) * icc, rel=0.05)  # Kish: 2.2
    independent = [clustered.design_effect(rng.integers(0, 2, k * m).astype(float), codes)
                   for _ in range(300)]
    assert float(np.mean(independent)) == pytest.approx(1.0, abs=0.05)


def test_clustered_mcnemar_with_singleton_clusters_is_mcnemars_chi_square():
    rng = np.random.default_rng(2)
    a, b = rng.random(120) < 0.6, rng.random(120) < 0.5
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    reference = float(chi2.sf((n01 - n10) ** 2 / (n01 + n10), 1))  # McNemar, no correction
    assert clustered.clustered_mcnemar(a, b, np.arange(120)) == pytest.approx(reference, rel=1e-9)


def test_clustered_mcnemar_durkalski_statistic_by_hand():
    # net differences per cluster (a right minus b right): x +2, y -2, z +1, so
    # X^2 = (2 - 2 + 1)^2 / (4 + 4 + 1) = 1 / 9
    a = np.array([1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 1, 1, 1, 0], dtype=bool)
    groups = ["x", "x", "x", "y", "y", "y", "z"]
    assert clustered.clustered_mcnemar(a, b, groups) == pytest.approx(
        float(chi2.sf(1 / 9, 1)), rel=1e-12)
    assert clustered.clustered_mcnemar(a, a, groups) == 1.0


def _clustered_pairs(rng: np.random.Generator, k: int, m: int, psi: float, q: float,
                     conc: float) -> np.ndarray:
    """Per-example paired outcome d in {+1, -1, 0}: discordant with probability psi, in arm a's
    favour with a cluster-level probability q_c ~ Beta(q conc, (1 - q) conc)."""
    qc = rng.beta(q * conc, (1 - q) * conc, k)
    u = rng.random((k, m))
    return np.where(u < psi * qc[:, None], 1, np.where(u < psi, -1, 0)).ravel()


def _known_design_effect(m: int, psi: float, q: float, conc: float) -> float:
    """1 + (m - 1) ICC of d: within a cluster cov(d_i, d_j) = 4 psi^2 var(q_c), var(d) = psi -
    delta^2."""
    delta = psi * (2 * q - 1)
    return 1 + (m - 1) * 4 * psi**2 * (q * (1 - q) / (conc + 1)) / (psi - delta**2)


def test_cluster_bootstrap_of_a_paired_difference_covers_and_the_plain_one_does_not():
    rng = np.random.default_rng(11)
    k, m, psi, q, conc, reps = 40, 5, 0.4, 0.65, 0.5, 300
    codes = np.repeat(np.arange(k), m)
    delta = psi * (2 * q - 1)  # E[a - b], known
    hit_clustered = hit_plain = 0
    for r in range(reps):
        d = _clustered_pairs(rng, k, m, psi, q, conc)
        a, b = (d == 1).astype(float), (d == -1).astype(float)
        c = stats.paired_difference(a, b, n_boot=400, seed=r, clusters=codes)
        p = stats.paired_difference(a, b, n_boot=400, seed=r)
        hit_clustered += c.low <= delta <= c.high
        hit_plain += p.low <= delta <= p.high
    assert _known_design_effect(m, psi, q, conc) > 1.9
    assert 0.91 <= hit_clustered / reps <= 0.98
    assert hit_plain / reps < 0.87


@pytest.mark.parametrize(("k", "m", "psi", "q", "conc"),
                         [(100, 4, 0.3, 0.6, 2.0), (60, 5, 0.4, 0.62, 3.0), (100, 4, 0.3, 0.5, 2.0)])
def test_planned_clustered_power_matches_the_rejection_rate(k, m, psi, q, conc):
    rng = np.random.default_rng(13)
    codes = np.repeat(np.arange(k), m)
    deff = _known_design_effect(m, psi, q, conc)
    delta = psi * (2 * q - 1)
    reps = 2500
    rejected = 0
    for _ in range(reps):
        d = _clustered_pairs(rng, k, m, psi, q, conc)
        rejected += clustered.clustered_mcnemar(d == 1, d == -1, codes) < 0.05
    planned = power.normal_power(k * m / deff, delta, psi) if delta else 0.05
    assert rejected / reps == pytest.approx(planned, abs=0.03)
    if delta:  # the unclustered McNemar at the same n would promise more
        assert power.power(k * m, delta, psi)[0] > planned + 0.05


def test_clustered_mde_is_the_detectable_difference_at_the_effective_size():
    got = power.clustered_mde(400, 0.3, 1.6)
    assert got.n == 400 and got.design_effect == 1.6 and "effective size 250" in got.method
    assert got.mde is not None
    assert power.normal_power(250, got.mde, 0.3) == pytest.approx(0.8, abs=0.002)
    assert got.mde > power.mde(400, 0.3).mde  # type: ignore[operator]
    assert power.clustered_mde(400, 0.3, 0.7) == power.mde(400, 0.3)  # deff < 1: truncated


def test_unclustered_calls_are_unchanged_by_the_cluster_argument_default():
    rng = np.random.default_rng(1)
    a, b = rng.random(80), rng.random(80)
    assert stats.paired_difference(a, b, n_boot=300) == stats.paired_difference(
        a, b, n_boot=300, clusters=None)
    # every example its own cluster: the resample draws the same indices, so the same interval
    plain = stats.paired_difference(a, b, n_boot=300)
    singletons = stats.paired_difference(a, b, n_boot=300, clusters=np.arange(80))
    assert (singletons.low, singletons.high) == pytest.approx((plain.low, plain.high), abs=1e-12)
