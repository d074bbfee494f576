"""Tests for harness.stats against independent references and simulations."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from harness.analysis.cost import break_even
from harness.analysis.curves import CurveStep, PlateauResult, detect_plateau
from harness.analysis.rules import ArmEvidence, decide
from harness.analysis.stats import (
    Interval,
    bootstrap_interval,
    holm_adjust,
    majority_correct,
    mcnemar_exact,
    paired_difference,
    wilson_interval,
)

scipy_stats = pytest.importorskip("scipy.stats")


def _wilson_reference(x: int, n: int, confidence: float) -> tuple[float, float]:
    """Closed-form Wilson bounds, written out independently of the product code."""
    z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
    p = x / n
    centre = (x + z**2 / 2) / (n + z**2)
    half = z * math.sqrt(n) / (n + z**2) * math.sqrt(p * (1 - p) + z**2 / (4 * n))
    return centre - half, centre + half


# --------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("x", "n", "confidence"),
    [(17, 20, 0.95), (850, 1000, 0.95), (0, 10, 0.95), (10, 10, 0.95), (3, 7, 0.90), (1, 2, 0.99)],
)
def test_wilson_matches_references(x: int, n: int, confidence: float) -> None:
    got = wilson_interval(x, n, confidence)
    low, high = _wilson_reference(x, n, confidence)
    ci = scipy_stats.binomtest(x, n).proportion_ci(confidence, method="wilson")
    assert got.estimate == pytest.approx(x / n, abs=1e-12)
    assert got.low == pytest.approx(low, abs=1e-6)
    assert got.high == pytest.approx(high, abs=1e-6)
    assert got.low == pytest.approx(ci.low, abs=1e-6)
    assert got.high == pytest.approx(ci.high, abs=1e-6)


def test_wilson_hand_values_and_widths() -> None:
    # 17/20: z = 1.959964, z^2 = 3.841459, centre = (17 + 1.920729) / 23.841459 = 0.793606,
    # half = 1.959964 * sqrt(20) / 23.841459 * sqrt(0.1275 + 0.048018) = 0.154025.
    small = wilson_interval(17, 20)
    assert small.low == pytest.approx(0.639581, abs=1e-6)
    assert small.high == pytest.approx(0.947631, abs=1e-6)
    large = wilson_interval(850, 1000)
    assert large.low == pytest.approx(0.826531, abs=1e-6)
    assert large.high == pytest.approx(0.870790, abs=1e-6)
    assert small.high - small.low > 6 * (large.high - large.low)


def test_wilson_edge_cases() -> None:
    empty = wilson_interval(0, 0)
    assert math.isnan(empty.estimate) and math.isnan(empty.low) and math.isnan(empty.high)
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, 10, confidence=1.0)


@pytest.mark.parametrize("n", [50, 200])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.85])
def test_wilson_coverage_simulation(p: float, n: int) -> None:
    rng = np.random.default_rng(12345)
    sims = 20_000
    # The interval only depends on x, so evaluate it once per possible x.
    covers = np.array([(iv.low <= p <= iv.high) for iv in map(lambda x: wilson_interval(x, n),
                                                                 range(n + 1))])
    simulated = covers[rng.binomial(n, p, size=sims)].mean()
    # Exact coverage from scipy's Wilson interval and binomial pmf (independent reference).
    exact = sum(
        scipy_stats.binom.pmf(x, n, p)
        for x in range(n + 1)
        if (ci := scipy_stats.binomtest(x, n).proportion_ci(0.95, method="wilson")).low
        <= p <= ci.high
    )
    se = math.sqrt(exact * (1 - exact) / sims)
    assert abs(simulated - exact) < 4 * se
    # Wilson's exact coverage oscillates with n and p: 0.935 at (0.5, 50), 0.970 at (0.1, 50).
    assert 0.925 <= simulated <= 0.975


# --------------------------------------------------------------------------- bootstrap


def _coverage(intervals: list[Interval], truth: float) -> float:
    return float(np.mean([iv.low <= truth <= iv.high for iv in intervals]))


def test_bootstrap_coverage_with_shared_draw_effects() -> None:
    """Draw j shares one effect across all examples (e.g. one demo set per draw): the row and
    column resampling is needed; resampling examples alone covers only ~82% here."""
    rng = np.random.default_rng(2024)
    sims, n, m = 2000, 100, 5
    logit = np.log((p := rng.random((sims, n))) / (1 - p))
    shift = rng.normal(0.0, 0.5, size=(sims, 1, m))
    prob = 1 / (1 + np.exp(-(logit[:, :, None] + shift)))
    data = (rng.random((sims, n, m)) < prob).astype(float)
    # Truth: logit(U) and the normal shift are symmetric about 0, so E[prob] = 0.5 exactly.
    intervals = [bootstrap_interval(d, n_boot=400, seed=i) for i, d in enumerate(data)]
    assert 0.93 <= _coverage(intervals, 0.5) <= 0.97


def test_bootstrap_coverage_independent_draws_is_conservative() -> None:
    """Heterogeneous difficulty, draws Bernoulli given difficulty. The two-way bootstrap is
    known to be conservative here (it counts draw noise more than once): coverage >= nominal."""
    rng = np.random.default_rng(7)
    sims, n, m = 2000, 100, 5
    difficulty = rng.beta(0.6, 0.3, size=(sims, n, 1))  # mean 2/3, many near 0 or 1
    data = (rng.random((sims, n, m)) < difficulty).astype(float)
    intervals = [bootstrap_interval(d, n_boot=400, seed=i) for i, d in enumerate(data)]
    # ~0.967 here (0.98 with less heterogeneous difficulty); never below nominal.
    assert 0.945 <= _coverage(intervals, 2 / 3) <= 0.99


def test_bootstrap_coverage_single_draw() -> None:
    """One draw: no columns to resample, a plain percentile bootstrap over examples."""
    rng = np.random.default_rng(8)
    sims, n = 3000, 200
    data = (rng.random((sims, n)) < rng.beta(0.6, 0.3, size=(sims, n))).astype(float)
    intervals = [bootstrap_interval(d, n_boot=400, seed=i) for i, d in enumerate(data)]
    assert 0.93 <= _coverage(intervals, 2 / 3) <= 0.97


def test_bootstrap_deterministic_and_shapes() -> None:
    rng = np.random.default_rng(1)
    scores = (rng.random((60, 4)) < 0.7).astype(float)
    first = bootstrap_interval(scores, n_boot=300, seed=11)
    assert first == bootstrap_interval(scores, n_boot=300, seed=11)
    assert first != bootstrap_interval(scores, n_boot=300, seed=12)
    assert first.estimate == pytest.approx(scores.mean())
    assert first.low < first.estimate < first.high
    one_d = bootstrap_interval(scores[:, 0], n_boot=300, seed=3)
    assert one_d == bootstrap_interval(scores[:, :1], n_boot=300, seed=3)
    assert math.isnan(bootstrap_interval(np.zeros((0, 3))).estimate)
    constant = bootstrap_interval(np.ones((20, 3)), n_boot=50)
    assert (constant.low, constant.estimate, constant.high) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- paired difference


def _latent_arm(rng: np.random.Generator, z: np.ndarray, accuracy: float, draws: int,
                noise: float = 0.7) -> np.ndarray:
    """Per-example mean over draws; correct when z + noise < t, so P(correct) = accuracy."""
    t = math.sqrt(1 + noise**2) * NormalDist().inv_cdf(accuracy)
    eps = rng.normal(0.0, noise, size=(*z.shape, draws))
    return (z[..., None] + eps < t).astype(float)


def test_paired_difference_coverage_correlated_pairs() -> None:
    rng = np.random.default_rng(99)
    sims, n = 2000, 200
    z = rng.normal(size=(sims, n))
    a = _latent_arm(rng, z, 0.70, 3).mean(axis=2)
    b = _latent_arm(rng, z, 0.62, 3).mean(axis=2)
    truth = 0.70 - 0.62
    intervals = [paired_difference(a[i], b[i], n_boot=400, seed=i) for i in range(sims)]
    assert 0.93 <= _coverage(intervals, truth) <= 0.97
    # Pairing: width ~ 2 * 1.96 * sd(a - b) / sqrt(n), far below the unpaired width.
    d = a[0] - b[0]
    paired_width = 2 * 1.96 * d.std(ddof=1) / math.sqrt(n)
    unpaired_width = 2 * 1.96 * math.sqrt((a[0].var(ddof=1) + b[0].var(ddof=1)) / n)
    width = intervals[0].high - intervals[0].low
    assert width == pytest.approx(paired_width, rel=0.15)
    assert width < 0.8 * unpaired_width


def test_paired_difference_basics() -> None:
    a = np.array([1.0, 1.0, 0.0, 1.0, 0.5])
    b = np.array([0.0, 1.0, 0.0, 0.0, 0.5])
    got = paired_difference(a, b, n_boot=500, seed=5)
    assert got.estimate == pytest.approx(0.4)
    assert got == paired_difference(a, b, n_boot=500, seed=5)
    assert paired_difference(a, a).low == paired_difference(a, a).high == 0.0
    with pytest.raises(ValueError):
        paired_difference(a, b[:3])
    assert math.isnan(paired_difference(np.array([]), np.array([])).estimate)


# --------------------------------------------------------------------------- McNemar


def _pairs(n01: int, n10: int, both: int = 7, neither: int = 4) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * n01 + [0] * n10 + [1] * both + [0] * neither, dtype=bool)
    b = np.array([0] * n01 + [1] * n10 + [1] * both + [0] * neither, dtype=bool)
    return a, b


@pytest.mark.parametrize(
    ("n01", "n10"),
    [(1, 0), (0, 1), (10, 2), (2, 10), (50, 30), (30, 30), (31, 30), (400, 350), (1100, 950),
     (5200, 4900), (60_000, 59_000)],
)
def test_mcnemar_matches_scipy_binomtest(n01: int, n10: int) -> None:
    a, b = _pairs(n01, n10)
    expected = scipy_stats.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_mcnemar_hand_values() -> None:
    assert mcnemar_exact(*_pairs(0, 0)) == 1.0
    assert mcnemar_exact(*_pairs(5, 0)) == pytest.approx(0.0625, abs=1e-15)  # 2 * 0.5**5
    assert mcnemar_exact(*_pairs(1, 0)) == 1.0
    # 10 vs 2: 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact(*_pairs(10, 2)) == pytest.approx(2 * 79 / 4096, rel=1e-15)
    ints = mcnemar_exact(np.array([1, 1, 0, 1]), np.array([0, 0, 0, 1]))
    assert ints == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mcnemar_exact(np.array([0.5, 1.0]), np.array([0.0, 1.0]))


def test_majority_correct() -> None:
    scores = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
    assert majority_correct(scores).tolist() == [True, False, True, True]
    assert majority_correct(np.array([[1.0, 0.0]])).tolist() == [False]  # tie is not a majority
    assert majority_correct(np.array([1.0, 0.0])).tolist() == [True, False]


# --------------------------------------------------------------------------- Holm


def test_holm_hand_example() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.6]) == [1.0, 1.0]
    assert holm_adjust([0.02]) == [0.02]
    assert holm_adjust([]) == []
    with pytest.raises(ValueError):
        holm_adjust([float("nan")])


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(3)
    p = rng.random(12) ** 3
    expected = multitest.multipletests(p, method="holm")[1]
    assert holm_adjust(p.tolist()) == pytest.approx(expected.tolist(), abs=1e-12)


# --------------------------------------------------------------------------- plateau


def _curve(accuracies: dict[int, float], n: int, draws: int, seed: int) -> dict[int, np.ndarray]:
    """Scores whose true accuracy at k is exactly accuracies[k]; examples share a latent
    difficulty across k (so the ks are positively correlated), draws are independent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    return {k: _latent_arm(rng, z, acc, 1 if k == 0 else draws) for k, acc in accuracies.items()}


def test_plateau_at_known_saturation_point() -> None:
    curve = _curve({0: 0.2, 1: 0.3, 2: 0.45, 4: 0.55, 8: 0.6, 16: 0.6}, n=2000, draws=3, seed=1)
    result = detect_plateau(curve, n_boot=500)
    assert result.status == "plateaued"
    assert result.k_star == 8
    assert result.next_k is None
    assert [(s.k_from, s.k_to) for s in result.steps] == [(0, 1), (1, 2), (2, 4), (4, 8), (8, 16)]
    assert result.steps[3].gain.low > 0
    assert "doubling k from 8 to 16" in result.reason and "min_gain 0.02" in result.reason


def test_still_improving_suggests_double_the_largest_k() -> None:
    curve = _curve({1: 0.3, 2: 0.4, 4: 0.5, 8: 0.6, 16: 0.7}, n=2000, draws=3, seed=2)
    result = detect_plateau(curve, n_boot=500)
    assert result.status == "still_improving"
    assert result.k_star is None and result.next_k == 32
    assert "k=32" in result.reason
    assert detect_plateau(curve, n_boot=200, max_k=20).next_k == 20
    capped = detect_plateau(curve, n_boot=200, max_k=16)
    assert capped.status == "still_improving" and capped.next_k is None
    assert "max_k=16" in capped.reason


def test_noisy_flat_curve_with_small_n_plateaus_at_first_k() -> None:
    rng = np.random.default_rng(4)
    base = (rng.random((30, 1)) < 0.5).astype(float)
    # Every k has exactly the same accuracy, but different examples are right at each k.
    curve = {k: base[rng.permutation(30)] for k in (0, 1, 2, 4)}
    result = detect_plateau(curve, n_boot=500)
    assert result.status == "plateaued" and result.k_star == 0
    first = result.steps[0].gain
    assert first.estimate == 0.0 and first.low < -0.1 and first.high > 0.1


def test_dip_then_real_rise_is_still_improving() -> None:
    curve = _curve({1: 0.5, 2: 0.5, 4: 0.7}, n=2000, draws=3, seed=5)
    result = detect_plateau(curve, n_boot=500)
    assert result.status == "still_improving" and result.next_k == 8


def test_significant_drop_counts_as_no_gain() -> None:
    curve = _curve({1: 0.6, 2: 0.45, 4: 0.45}, n=2000, draws=3, seed=6)
    result = detect_plateau(curve, n_boot=500)
    assert result.steps[0].gain.high < 0
    assert result.status == "plateaued" and result.k_star == 1


def test_plateau_insufficient_data_and_validation() -> None:
    one = detect_plateau({4: np.ones((10, 2))})
    assert one.status == "insufficient_data" and one.k_star is None and one.next_k == 8
    assert detect_plateau({}).status == "insufficient_data"
    with pytest.raises(ValueError):
        detect_plateau({0: np.ones((10, 1)), 1: np.ones((11, 1))})


# --------------------------------------------------------------------------- break-even


def test_break_even_mission_example() -> None:
    # Prompted base model: 2,000 prompt + 50 completion tokens at $0.15 / $0.60 per 1M
    # = 0.000330; fine-tuned: 200 prompt + 50 completion at $0.30 / $1.20 = 0.000120.
    # Training: 1M trained tokens at $3 per 1M = $3.00.
    result = break_even(3.0, 0.000330, 0.000120)
    assert result.saving_per_query == pytest.approx(0.000210)
    assert result.queries == pytest.approx(14_285.714285714, rel=1e-9)
    assert result.monthly_volume_to_pay_back == pytest.approx(4_761.904761905, rel=1e-9)
    assert result.describe() == "pays back after 14,286 queries (4,762/month over 3 months)"


def test_break_even_never_and_horizon() -> None:
    worse = break_even(10.0, 0.001, 0.002)
    assert worse.queries is None and worse.monthly_volume_to_pay_back is None
    assert worse.describe().startswith("never pays back")
    assert break_even(10.0, 0.001, 0.001).queries is None
    yearly = break_even(120.0, 0.01, 0.0, horizon_months=12)
    assert yearly.queries == pytest.approx(12_000)
    assert yearly.monthly_volume_to_pay_back == pytest.approx(1_000)
    assert yearly.describe() == "pays back after 12,000 queries (1,000/month over 12 months)"
    free = break_even(0.0, 0.002, 0.001)
    assert free.queries == 0.0 and free.monthly_volume_to_pay_back == 0.0
    with pytest.raises(ValueError):
        break_even(-1.0, 0.002, 0.001)


# --------------------------------------------------------------------------- verdict


def _plateau(status: str, k_star: int | None = None, next_k: int | None = None) -> PlateauResult:
    steps = (CurveStep(4, 8, Interval(0.05, 0.02, 0.08)),)
    return PlateauResult(status, k_star, next_k, steps if status != "insufficient_data" else (),
                         "test")


_PAYS = break_even(3.0, 0.000330, 0.000120)  # needs 4,762 queries/month over 3 months


def test_decide_fine_tune_when_significantly_better() -> None:
    ft = ArmEvidence(Interval(0.06, 0.03, 0.09), 0.001, None, None)
    for plateau in (_plateau("plateaued", 8), _plateau("still_improving", next_k=32),
                    _plateau("insufficient_data")):
        verdict = decide(plateau, ft)
        assert verdict.recommendation == "fine_tune"
        assert "+6.0 points" in verdict.sentence
    worse = ArmEvidence(Interval(-0.06, -0.09, -0.03), 0.001, None, None)
    assert decide(_plateau("plateaued", 8), worse).recommendation == "prompting_sufficient"
    not_sig = ArmEvidence(Interval(0.06, 0.03, 0.09), 0.2, None, None)
    assert decide(_plateau("plateaued", 8), not_sig).recommendation == "prompting_sufficient"


def test_decide_fine_tune_when_as_good_and_pays_back() -> None:
    delta = Interval(-0.005, -0.015, 0.005)
    enough = ArmEvidence(delta, 0.6, _PAYS, 5_000)
    verdict = decide(_plateau("plateaued", 8), enough)
    assert verdict.recommendation == "fine_tune"
    assert "14,286 queries" in verdict.sentence
    short = ArmEvidence(delta, 0.6, _PAYS, 4_000)
    assert decide(_plateau("plateaued", 8), short).recommendation == "prompting_sufficient"
    no_volume = ArmEvidence(delta, 0.6, _PAYS, None)
    assert decide(_plateau("plateaued", 8), no_volume).recommendation == "fine_tune"
    never = ArmEvidence(delta, 0.6, break_even(3.0, 0.0001, 0.0002), None)
    assert decide(_plateau("plateaued", 8), never).recommendation == "prompting_sufficient"
    worse = ArmEvidence(Interval(-0.01, -0.03, 0.01), 0.6, _PAYS, 5_000)  # low below -0.02
    assert decide(_plateau("plateaued", 8), worse).recommendation == "prompting_sufficient"
    wider = decide(_plateau("plateaued", 8), worse, equivalence_margin=0.05)
    assert wider.recommendation == "fine_tune"


def test_decide_keep_prompting_while_improving() -> None:
    ft = ArmEvidence(Interval(0.0, -0.03, 0.03), 0.9, _PAYS, 1_000)
    for arm in (ft, None):
        verdict = decide(_plateau("still_improving", next_k=32), arm)
        assert verdict.recommendation == "keep_prompting"
        assert "k=32" in verdict.sentence


def test_decide_prompting_sufficient_and_insufficient_data() -> None:
    verdict = decide(_plateau("plateaued", 8), None)
    assert verdict.recommendation == "prompting_sufficient"
    assert "k=8" in verdict.sentence
    sparse = decide(_plateau("insufficient_data", next_k=8), None)
    assert sparse.recommendation == "keep_prompting"
    assert "more shot counts" in sparse.sentence and "k=8" in sparse.sentence


# --------------------------------------------------------------------------- a committed run


def test_analyse_a_committed_run_end_to_end() -> None:
    """The complete fixture (13 examples): zero-shot misses 'returns' 0 and 2, few-shot 'returns' 0
    in both draws, every arm the XSS input (an invalid label)."""
    from run_helpers import FIXTURE_RUNS

    from harness.analysis import analyse
    from harness.running.store import read_meta, read_records

    run = FIXTURE_RUNS / "complete"
    a = analyse(read_records(run), read_meta(run))
    assert a.complete
    assert list(a.curve["k"]) == [0, 1, 2, 4]
    assert list(a.curve["accuracy"]) == pytest.approx([10 / 13, 11 / 13, 11 / 13, 11 / 13])
    assert a.plateau is not None and (a.plateau.status, a.plateau.k_star) == ("plateaued", 1)
    assert [s.gain.estimate for s in a.plateau.steps] == pytest.approx([1 / 13, 0.0, 0.0])
    pairs = list(zip(a.comparisons["arm_a"], a.comparisons["arm_b"], strict=True))
    assert pairs == [("few-shot@k=1", "zero-shot"), ("few-shot@k=2", "zero-shot"),
                     ("few-shot@k=4", "zero-shot"), ("fine-tuned", "zero-shot"),
                     ("few-shot@k=2", "few-shot@k=1"), ("few-shot@k=4", "few-shot@k=1"),
                     ("fine-tuned", "few-shot@k=1")]
    assert list(a.comparisons["delta"]) == pytest.approx([1 / 13] * 3 + [2 / 13, 0, 0, 1 / 13])
    assert list(a.comparisons["p_value"]) == pytest.approx([1, 1, 1, 0.5, 1, 1, 1])
    assert not a.comparisons["significant"].any()
    assert a.verdict.recommendation == "prompting_sufficient"
    assert a.evidence.fine_tuned_arm == "fine-tuned" and a.evidence.best_prompting_arm == "few-shot@k=1"
    c = a.evidence.comparison
    assert c is not None and c.delta.estimate == pytest.approx(1 / 13) and c.p_adjusted == 1.0
    zs = a.per_class[a.per_class["strategy"] == "zero-shot"].set_index("label")
    assert list(zs["support"]) == [4, 3, 3, 3]
    assert list(zs["recall"]) == pytest.approx([3 / 4, 1, 1 / 3, 1])
    assert list(zs["precision"]) == pytest.approx([1, 3 / 5, 1, 1])


# Scores with few distinct values are resampled as multinomial counts (stats._resampled_means).
# In distribution that is the bootstrap itself: checked against the explicit resampling path
# and against the exact variance of a resampled mean, var(values) / n.
@pytest.mark.parametrize("kind", ["paired", "single"])
def test_resampling_counts_is_the_bootstrap_in_distribution(kind, monkeypatch):
    from harness.analysis import stats

    rng = np.random.default_rng(7)
    n = 400
    a = (rng.random(n) < 0.8).astype(float)
    b = np.where(rng.random(n) < 0.15, 1 - a, a)

    def interval() -> stats.Interval:
        if kind == "paired":
            return stats.paired_difference(a, b, n_boot=40_000, seed=3)
        return stats.bootstrap_interval(a, n_boot=40_000, seed=3)

    fast = interval()
    monkeypatch.setattr(stats, "FEW_VALUES", 0)  # every resample drawn item by item
    slow = interval()
    monkeypatch.undo()
    assert fast.estimate == slow.estimate
    assert abs(fast.low - slow.low) < 0.004 and abs(fast.high - slow.high) < 0.004
    values = a - b if kind == "paired" else a
    drawn = stats._resampled_means(values, np.random.default_rng(1), 40_000)
    assert drawn is not None
    assert drawn.var() == pytest.approx(values.var() / n, rel=0.03)
    assert drawn.mean() == pytest.approx(values.mean(), abs=0.001)
