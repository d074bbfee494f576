"""The extraction decision (issue 11, item 6): the micro-F1 bootstrap against hand-computed
figures and a simulation, the plateau on field F1, and the three verdict cases of the
schema-compliance floor. Runs through the CLI are in tests/running/test_extraction_verdict.py."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.compliance import ArmFormat, FormatEvidence, decide_with_floor
from harness.analysis.curves import CurveStep, PlateauResult, detect_plateau
from harness.analysis.rules import ArmEvidence, decide
from harness.analysis.stats import (
    Interval,
    bootstrap_f1_interval,
    micro_f1,
    paired_f1_difference,
)
from harness.tasks.extraction import ExtractionTask

SCHEMA = {"type": "object", "properties": {"name": {"type": ["string", "null"]},
                                           "people": {"type": ["integer", "null"]}}}

# --------------------------------------------------------------------------- micro F1


def test_micro_f1_by_hand_and_as_the_task_computes_it() -> None:
    # a: tp 3, fp 1, fn 2 -> 2*3 / (6 + 1 + 2) = 2/3; b: tp 3, fp 1, fn 1 -> 6/8
    a = np.array([[1, 0, 1], [2, 1, 0], [0, 0, 1]])
    b = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0]])
    assert micro_f1(a) == pytest.approx(2 / 3)
    assert micro_f1(b) == pytest.approx(0.75)
    assert micro_f1(np.zeros((2, 3))) == 0.0  # nothing to count
    t = paired_f1_difference(a, b, n_boot=500, seed=1)
    assert t.difference.estimate == pytest.approx(2 / 3 - 0.75)
    assert t.difference.low <= t.difference.estimate <= t.difference.high
    assert 0 < t.p_value <= 1
    # the task's own figure: 2 P R / (P + R) from the same counts
    task = ExtractionTask(SCHEMA)
    gold = [{"name": "Ann", "people": 4}, {"name": "Bob", "people": None}, {"name": None, "people": 2}]
    pred = [{"name": "Ann", "people": 5}, {"name": "Bob", "people": 3}, None]
    rows = [[sum(v[i] for v in task.field_counts([g], [p]).values()) for i in range(3)]
            for g, p in zip(gold, pred, strict=True)]
    assert rows == [[1, 1, 1], [1, 1, 0], [0, 0, 1]]
    assert micro_f1(np.array(rows)) == pytest.approx(task.micro(gold, pred)["f1"])


def test_identical_arms_have_no_difference_and_p_one() -> None:
    a = np.array([[1, 0, 1], [2, 1, 0], [0, 0, 1], [1, 1, 1]])
    t = paired_f1_difference(a, a.copy(), n_boot=300)
    assert (t.difference.estimate, t.difference.low, t.difference.high) == (0.0, 0.0, 0.0)
    assert t.p_value == 1.0
    one = bootstrap_f1_interval(a, n_boot=300)
    assert one.estimate == pytest.approx(micro_f1(a)) and one.low <= one.estimate <= one.high
    assert paired_f1_difference(a, a, n_boot=300, seed=3) == paired_f1_difference(a, a, n_boot=300,
                                                                                   seed=3)
    with pytest.raises(ValueError):
        paired_f1_difference(a, a[:2])
    with pytest.raises(ValueError):
        micro_f1(np.array([[1, np.nan, 0]]))


def _population_f1(p: float, q: float) -> float:
    """Two gold values per example, each found with probability p (else missed), and one
    spurious value with probability q: E[tp] = 2p, E[fn] = 2(1 - p), E[fp] = q."""
    return 4 * p / (4 * p + q + 2 * (1 - p))


def _simulate(rng: np.random.Generator, n: int, pa: float, qa: float, pb: float, qb: float
              ) -> tuple[np.ndarray, np.ndarray]:
    u = rng.random((n, 2))  # shared: the same examples are hard for both arms (the pairing)
    v, w = rng.random(n), rng.random(n)  # spurious values independently
    tp_a, tp_b = (u < pa).sum(axis=1), (u < pb).sum(axis=1)
    a = np.column_stack([tp_a, v < qa, 2 - tp_a]).astype(float)
    b = np.column_stack([tp_b, w < qb, 2 - tp_b]).astype(float)
    return a, b


def test_paired_f1_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(20261202)
    pa, qa, pb, qb = 0.8, 0.2, 0.7, 0.3
    truth = _population_f1(pa, qa) - _population_f1(pb, qb)
    reps, covered, one_covered, rejected = 200, 0, 0, 0
    for i in range(reps):
        a, b = _simulate(rng, 150, pa, qa, pb, qb)
        t = paired_f1_difference(a, b, n_boot=1000, seed=i)
        covered += t.difference.low <= truth <= t.difference.high
        one = bootstrap_f1_interval(a, n_boot=1000, seed=i)
        one_covered += one.low <= _population_f1(pa, qa) <= one.high
        null_a, null_b = _simulate(rng, 150, pa, qa, pa, qa)
        rejected += paired_f1_difference(null_a, null_b, n_boot=1000, seed=i).p_value < 0.05
    assert 0.90 <= covered / reps <= 0.99
    assert 0.90 <= one_covered / reps <= 0.99
    assert 0.01 <= rejected / reps <= 0.10  # the test's size under no difference, about 5%


# --------------------------------------------------------------------------- plateau on F1


def _f1_gain(later: np.ndarray, earlier: np.ndarray, groups: np.ndarray | None) -> Interval:
    return paired_f1_difference(later, earlier, n_boot=500).difference


def test_plateau_on_field_f1_uses_the_given_difference() -> None:
    """Exact match flat (every answer has a wrong field) while F1 rises: the accuracy curve
    plateaus at k=0, the F1 curve is still improving."""
    n = 30
    k0 = np.tile([0.0, 1.0, 1.0], (n, 1))  # name wrong too: tp 0, fp 1, fn 1
    k1 = np.tile([1.0, 1.0, 1.0], (n, 1))  # name right, people wrong
    acc = detect_plateau({0: np.zeros((n, 1)), 1: np.zeros((n, 1))}, n_boot=500)
    assert (acc.status, acc.k_star) == ("plateaued", 0)
    f1 = detect_plateau({0: k0, 1: k1}, n_boot=500, difference=_f1_gain, unit=" field F1")
    assert f1.status == "still_improving" and f1.next_k == 2
    assert f1.steps[0].gain.estimate == pytest.approx(0.5) and f1.steps[0].kind == "real_gain"
    assert "gains +0.500 field F1" in f1.reason
    # a NaN anywhere in an example's row leaves it out of the step
    k1[0, 2] = np.nan
    assert detect_plateau({0: k0, 1: k1}, n_boot=200, difference=_f1_gain).steps[0].n == n - 1


# --------------------------------------------------------------------------- the floor's verdicts

PLATEAU = PlateauResult("plateaued", 1, None, (CurveStep(1, 2, Interval(0.0, -0.01, 0.01)),), "flat")
EQUAL = ArmEvidence(Interval(0.01, -0.02, 0.04), 0.6, None, None)  # fine-tuned minus prompt
BETTER = ArmEvidence(Interval(0.10, 0.06, 0.14), 0.001, None, None)
RAW = ArmFormat("raw", 0.55, "none")
CONSTRAINED = ArmFormat("constrained", 0.98, "json_schema")
FT = ArmFormat("ft", 0.99, "none")


def test_fine_tune_for_format_when_only_the_fine_tuned_arm_reaches_the_floor() -> None:
    fmt = FormatEvidence(0.95, None, RAW, FT)
    v = decide_with_floor(PLATEAU, EQUAL, fmt, metric="field_f1")
    assert v.recommendation == "fine_tune"
    assert v.sentence.startswith("Fine-tune for format: only the fine-tuned arm, ft, reaches the "
                                 "95% schema-compliance floor (decision.min_schema_compliance) (99%)")
    assert "the most compliant prompt, raw (unconstrained), reaches 55%" in v.sentence
    # nobody reaches it: nothing can be recommended
    none = decide_with_floor(PLATEAU, EQUAL, FormatEvidence(0.995, None, CONSTRAINED, FT))
    assert none.recommendation == "keep_prompting" and "no arm reaches the" in none.sentence


def test_constrained_decoding_already_gives_the_format() -> None:
    fmt = FormatEvidence(0.95, CONSTRAINED, RAW, FT)
    v = decide_with_floor(PLATEAU, EQUAL, fmt, metric="field_f1")
    assert v.recommendation == "prompting_sufficient"
    assert v.sentence == ("Constrained decoding already gives the format: constrained reaches 98% "
                          "compliance at equal field F1 (fine-tuned minus it: +1.0 points, CI "
                          "-2.0..+4.0, Holm-adjusted p=0.6); fine-tuning for format is not needed.")
    # the prompt significantly better: still no fine-tune, "at a higher"
    worse = ArmEvidence(Interval(-0.10, -0.14, -0.06), 0.001, None, None)
    assert "at a higher accuracy" in decide_with_floor(PLATEAU, worse, fmt).sentence


def test_the_metric_case_when_the_fine_tuned_arm_wins_or_the_best_prompt_is_unconstrained() -> None:
    fmt = FormatEvidence(0.95, CONSTRAINED, RAW, FT)
    v = decide_with_floor(PLATEAU, BETTER, fmt, metric="field_f1")
    assert v.recommendation == "fine_tune"
    assert v.sentence == decide(PLATEAU, BETTER, metric="field_f1").sentence
    assert v.sentence.startswith("Fine-tune: it beats the best prompt by +10.0 points")
    unconstrained = FormatEvidence(0.5, RAW, RAW, FT)
    u = decide_with_floor(PLATEAU, EQUAL, unconstrained, metric="field_f1")
    assert u.recommendation == "prompting_sufficient"
    assert u.sentence.startswith("Prompting is sufficient: field F1 plateaus at k=1")


def test_a_fine_tuned_arm_below_the_floor_cannot_be_recommended() -> None:
    low_ft = ArmFormat("ft", 0.80, "none")
    v = decide_with_floor(PLATEAU, BETTER, FormatEvidence(0.95, CONSTRAINED, RAW, low_ft))
    assert v.recommendation == "prompting_sufficient"
    assert ("the fine-tuned arm, ft, cannot be recommended: its schema compliance 80% is below "
            "the 95% schema-compliance floor") in v.sentence
    # without the floor the same evidence says fine-tune
    assert decide(PLATEAU, BETTER).recommendation == "fine_tune"


def test_accuracy_sentences_are_unchanged_and_f1_ones_name_the_metric() -> None:
    improving = PlateauResult("still_improving", None, 4, (CurveStep(1, 2, Interval(0.1, 0.05, 0.15)),),
                              "up")
    assert decide(improving, None).sentence.startswith("Keep prompting: accuracy is still rising")
    assert decide(improving, None, metric="field_f1").sentence.startswith(
        "Keep prompting: field F1 is still rising")
    with pytest.raises(ValueError):
        decide(improving, None, metric="bleu")
