"""The anytime-valid confidence sequence behind sequential evaluation (analysis/sequential.py),
checked against its formula and by simulation against the truth (issue 26, item 3): 2,000
simulated runs each, looks every 50 examples, up to 2,000 examples per run."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from harness.analysis.sequential import bets, bounds, excludes, log_wealth, settle

RUNS, N, EVERY, ALPHA = 2000, 2000, 50, 0.05
LOOKS = np.arange(EVERY, N + 1, EVERY) - 1  # index of the last example of each look


def _pairs(rng: np.random.Generator, p_a: float, p_b: float, runs: int = RUNS,
           n: int = N) -> np.ndarray:
    """Paired differences of two arms whose errors are independent: (runs, n) in {-1, 0, 1}."""
    return ((rng.random((runs, n)) < p_a).astype(float)
            - (rng.random((runs, n)) < p_b).astype(float))


def _first(hit: np.ndarray) -> np.ndarray:
    """Per run, the first look at which `hit` (runs, looks) holds; len(LOOKS) when none."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1])


def test_the_wealth_is_the_product_of_the_bets():
    """Against the formula, one observation at a time (Waudby-Smith & Ramdas 2024, 5.3)."""
    x = [1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0]
    m = 0.4
    lam = bets(np.array(x), m)
    mu, var, squares, wealth = 0.5, 0.25, 0.0, 1.0  # mu_0 = 1/2, sigma2_0 = 1/4
    for i, xi in enumerate(x, start=1):
        bet = (mu - m) / (var + (mu - m) ** 2)
        bet = min(max(bet, -0.5 / (1 - m)), 0.5 / m)
        assert lam[i - 1] == pytest.approx(bet)
        wealth *= 1 + bet * (xi - m)
        assert log_wealth(np.array(x[:i]), m)[-1] == pytest.approx(math.log(wealth))
        mu = (0.5 + sum(x[:i])) / (i + 1)
        squares += (xi - mu) ** 2
        var = (0.25 + squares) / (i + 1)


def test_the_bounds_are_where_exclusion_begins():
    rng = np.random.default_rng(0)
    x = (rng.random(300) < 0.3).astype(float)
    low, high = bounds(x, ALPHA)
    assert low < x.mean() < high
    assert not excludes(x, low + 1e-4, ALPHA)[-1] and excludes(x, low - 1e-4, ALPHA)[-1]
    assert not excludes(x, high - 1e-4, ALPHA)[-1] and excludes(x, high + 1e-4, ALPHA)[-1]
    assert bounds(np.array([]), ALPHA) == (0.0, 1.0)


def test_settle_names_what_is_settled():
    better = np.r_[np.ones(150), np.zeros(350)]
    assert settle(better, ALPHA).state == "better"
    assert settle(-better, ALPHA).state == "worse"
    assert settle(np.zeros(4000), ALPHA, margin=0.02).state == "equivalent"
    assert settle(np.zeros(50), ALPHA, margin=0.02).state == "open"
    assert settle(np.zeros(4000), ALPHA, min_gain=0.02).state == "flat"
    s = settle(better, ALPHA)
    assert s.low > 0 and s.estimate == pytest.approx(0.3) and s.n == 500 and s.settled


def test_a_under_the_null_a_wrong_verdict_is_rarer_than_alpha_but_peeking_is_not():
    """(a) Two equal arms (70% each, errors independent): the share of runs in which any look
    declares one better is at most alpha; a fixed-size McNemar test checked at every look is
    not (about 4 times alpha with 40 looks)."""
    d = _pairs(np.random.default_rng(1), 0.7, 0.7)
    at_half = excludes((d + 1) / 2, 0.5, ALPHA)[:, LOOKS]
    sequential_wrong = at_half.any(axis=1).mean()
    assert sequential_wrong <= ALPHA, sequential_wrong
    n10, n01 = np.cumsum(d > 0, axis=1)[:, LOOKS], np.cumsum(d < 0, axis=1)[:, LOOKS]
    z = np.abs(n10 - n01) / np.sqrt(np.maximum(n10 + n01, 1))
    peeking_wrong = (z > NormalDist().inv_cdf(1 - ALPHA / 2)).any(axis=1).mean()
    assert peeking_wrong > 2.5 * ALPHA, peeking_wrong
    once_wrong = (z[:, -1] > NormalDist().inv_cdf(1 - ALPHA / 2)).mean()
    assert abs(once_wrong - ALPHA) < 0.02  # checked once, the fixed test holds its level


def test_b_a_five_point_gap_settles_early_and_agrees_with_the_full_run():
    """(b) A true gap of 5 points at a discordance of 0.2: the sequential run reaches the full
    run's verdict in >= 95% of runs with <= 60% of the examples on average."""
    rng = np.random.default_rng(2)
    u = rng.random((RUNS, N))
    d = np.where(u < 0.125, 1.0, np.where(u < 0.2, -1.0, 0.0))  # P(+1) - P(-1) = 0.05
    x = (d + 1) / 2
    decisive = excludes(x, 0.5, ALPHA)[:, LOOKS]
    stop = _first(decisive)
    used = np.where(stop < len(LOOKS), LOOKS[np.minimum(stop, len(LOOKS) - 1)] + 1, N)
    running = np.cumsum(d, axis=1)[:, LOOKS]
    sign_at_stop = np.sign(running[np.arange(RUNS), np.minimum(stop, len(LOOKS) - 1)])
    sequential_says_better = (stop < len(LOOKS)) & (sign_at_stop > 0)
    n10, n01 = (d > 0).sum(axis=1), (d < 0).sum(axis=1)
    full_says_better = (n10 - n01) / np.sqrt(n10 + n01) > NormalDist().inv_cdf(1 - ALPHA / 2)
    agree = (sequential_says_better == full_says_better).mean()
    assert agree >= 0.95, agree
    assert used.mean() <= 0.6 * N, used.mean()


@pytest.mark.parametrize("p_a, p_b", [(0.7, 0.7), (0.8, 0.7), (0.55, 0.75)])
def test_c_the_interval_at_the_stop_covers_the_true_difference(p_a, p_b):
    """(c) The sequence's own interval covers the true difference at the stop (and at every
    look at once) in >= 95% of runs, whatever made the run stop."""
    d = _pairs(np.random.default_rng(3), p_a, p_b)
    x = (d + 1) / 2
    truth = ((p_a - p_b) + 1) / 2
    missed = excludes(x, truth, ALPHA)[:, LOOKS]
    stop = np.minimum(_first(excludes(x, 0.5, ALPHA)[:, LOOKS]), len(LOOKS) - 1)
    assert 1 - missed[np.arange(RUNS), stop].mean() >= 1 - ALPHA
    assert 1 - missed.any(axis=1).mean() >= 1 - ALPHA


def test_the_plans_expected_sample_size_is_the_simulations():
    """harness plan's figure for the design of (b): the same sequences, the same stop."""
    from harness.analysis.sequential import expected_examples

    sp = expected_examples(0.05, 0.2, ALPHA, look_every=EVERY, min_examples=EVERY, available=N)
    assert 0.3 * N < sp.expected < 0.6 * N and sp.settled >= 0.95
    none = expected_examples(0.0, 0.2, ALPHA, look_every=EVERY, min_examples=EVERY,
                             available=N, runs=500)
    assert none.settled <= ALPHA and none.expected > 0.95 * N  # equal arms: rarely settled
