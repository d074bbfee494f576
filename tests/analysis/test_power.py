"""Power of the paired comparisons, against a published example, an independent exact sum with
scipy, and simulation of McNemar's test as the harness runs it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import stats
from harness.analysis.power import (
    caution,
    connor_n,
    exact_power,
    mde,
    normal_power,
    required_n,
)
from harness.analysis.results import Planning


def test_connor_sample_size_matches_the_published_example():
    """Connor (1987, Biometrics 43:207-211, p. 209): p01 = 0.45, p10 = 0.05, two-sided alpha
    0.05, power 0.8 -> 23 pairs."""
    n = connor_n(0.05 - 0.45, 0.45 + 0.05, alpha=0.05, power=0.8)
    assert math.ceil(n) == 23
    assert normal_power(23, 0.40, 0.50) >= 0.8 > normal_power(22, 0.40, 0.50) - 0.01


def test_exact_power_equals_an_independent_sum_over_every_outcome():
    scipy_stats = pytest.importorskip("scipy.stats")
    for n, psi, delta in [(40, 0.3, 0.15), (60, 0.5, 0.1), (25, 0.2, 0.2)]:
        q = (psi + delta) / (2 * psi)
        total = 0.0
        for d in range(n + 1):
            w = scipy_stats.binom.pmf(d, n, psi)
            for k in range(d + 1):
                if d and scipy_stats.binomtest(min(k, d - k), d, 0.5).pvalue < 0.05:
                    total += w * scipy_stats.binom.pmf(k, d, q)
        assert exact_power(n, delta, psi) == pytest.approx(total, abs=1e-9)


@pytest.mark.parametrize(("n", "psi", "delta"), [(400, 0.2, 0.06), (150, 0.3, 0.12),
                                                 (1000, 0.1, 0.02)])
def test_planned_power_matches_the_simulated_rejection_rate(n, psi, delta):
    """Simulated eval pairs with known discordant rates, each tested with the harness's own
    McNemar test: the rejection rate lies within 2.5 points of the exact power."""
    rng = np.random.default_rng(7)
    reps = 3000
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    rejected = 0
    for _ in range(reps):
        cell = rng.choice(3, size=n, p=[p10, p01, 1 - psi])
        a = cell == 0  # arm a right, arm b wrong
        b = cell == 1
        rejected += stats.mcnemar_exact(a, b) < 0.05
    planned = exact_power(n, delta, psi)
    assert abs(rejected / reps - planned) < 0.025, (rejected / reps, planned)
    assert abs(normal_power(n, delta, psi) - planned) < 0.06


def test_the_minimum_detectable_difference_is_where_power_reaches_80_percent():
    det = mde(1000, 0.25)
    assert det.mde is not None and det.method == "exact McNemar"
    assert exact_power(1000, det.mde, 0.25) >= 0.8 > exact_power(1000, 0.97 * det.mde, 0.25)
    # the quickstart's size: differences under about 20 points are out of reach
    small = mde(48, 0.25)
    assert small.mde is not None and small.mde > 0.15
    # a tiny eval with rare disagreement can detect nothing at all
    assert mde(10, 0.05).mde is None


def test_the_required_size_reaches_the_target_and_grows_with_smaller_effects():
    n, method = required_n(0.03, 0.25)
    assert method == "exact McNemar"
    assert all(exact_power(m, 0.03, 0.25) >= 0.8 for m in range(n, n + 4))
    assert exact_power(int(0.9 * n), 0.03, 0.25) < 0.8
    assert abs(n - connor_n(0.03, 0.25)) / n < 0.08  # close to the normal approximation
    assert required_n(0.06, 0.25)[0] < n / 3


def test_caution_only_when_the_decisive_difference_is_below_what_can_be_detected():
    def plan(mde: float | None) -> Planning:
        return Planning(100, 0.25, mde, 0.8, 0.05, "exact McNemar", ("a", "b"), "")

    assert caution(plan(0.05), 0.03) is not None and "+3.0 points" in str(caution(plan(0.05), 0.03))
    assert caution(plan(0.05), -0.07) is None and caution(None, 0.01) is None
    assert "any difference" in str(caution(plan(None), 0.2))


@pytest.mark.parametrize("d", [1, 2, 7, 30, 60, 400, 3000])
@pytest.mark.parametrize("q", [0.5, 0.52, 0.6, 0.8, 0.97])
def test_the_windowed_conditional_power_equals_the_full_binomial_sum(d: int, q: float) -> None:
    """The two rejection tails of Binomial(d, q), summed over terms near the mode only, equal
    the sum over every term: by math.comb with fractions for small d, and in log space for
    large d (an independent computation: math.lgamma, no shared helper)."""
    from fractions import Fraction

    from harness.analysis.power import _conditional_power, _critical

    c = _critical(d, 0.05)
    ks = [k for k in range(d + 1) if k <= c or k >= d - c] if c >= 0 else []
    if d <= 60:
        qf = Fraction(q)
        want = float(sum(math.comb(d, k) * qf ** k * (1 - qf) ** (d - k) for k in ks))
    else:
        want = sum(math.exp(math.lgamma(d + 1) - math.lgamma(k + 1) - math.lgamma(d - k + 1)
                            + k * math.log(q) + (d - k) * math.log1p(-q)) for k in ks)
    assert _conditional_power(d, q, 0.05) == pytest.approx(want, rel=1e-9, abs=1e-15)
