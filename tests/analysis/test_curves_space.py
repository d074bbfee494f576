"""The prompt design space: a curve per (variant, selection), one plateau judgement over them
with Bonferroni-widened intervals, the "what was tried" table and the untried levers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from harness.analysis import stats
from harness.analysis.curves import curves_and_plateau
from harness.analysis.design_space import tried_frame, untried
from harness.analysis.steps import curve_confidence
from harness.config import DecisionConfig

N = 200


def _scores(right: int, offset: int = 0) -> np.ndarray:
    """N examples, `right` of them correct (a rotating block, so overlaps are controlled)."""
    out = np.zeros(N)
    out[(np.arange(right) + offset) % N] = 1
    return out[:, None]


def _row(strategy: str, type_: str, k: int, mat: np.ndarray, **extra: object) -> dict:
    acc = float(mat.mean())
    ci = stats.wilson_interval(int(mat.sum()), N)
    return {"strategy": strategy, "type": type_, "model": "m", "k": k, "n": N, "accuracy": acc,
            "ci_low": ci.low, "ci_high": ci.high, "structured_output": "json_schema",
            "samples": 1, "variant": None, "selection": None, "errors": 0,
            "schema_compliance": 1.0, **extra}


def _space(b2: int) -> tuple[pd.DataFrame, dict]:
    """zero-shot 100/200; A (stratified): k=1 120, k=2 120; B (similar): k=1 120, k=2 b2."""
    mats = {("zero-shot", 0): _scores(100), ("A", 1): _scores(120), ("A", 2): _scores(120),
            ("B", 1): _scores(120), ("B", 2): _scores(b2)}
    rows = [_row("zero-shot", "zero_shot", 0, mats[("zero-shot", 0)]),
            _row("A", "few_shot", 1, mats[("A", 1)], selection="stratified"),
            _row("A", "few_shot", 2, mats[("A", 2)], selection="stratified"),
            _row("B", "few_shot", 1, mats[("B", 1)], selection="similar/tfidf"),
            _row("B", "few_shot", 2, mats[("B", 2)], selection="similar/tfidf")]
    return pd.DataFrame(rows), mats


def test_each_curve_is_judged_at_bonferroni_confidence_and_one_rising_curve_decides():
    summary, mats = _space(b2=160)
    decision = DecisionConfig(bootstrap=500)
    curve, plateau, each = curves_and_plateau(summary, mats, decision, best="B")
    assert curve_confidence(2) == pytest.approx(0.975)
    assert [p.strategy for p in each] == ["A", "B"]
    # every step is the paired bootstrap at 97.5%, computed here from the score vectors
    for p in each:
        ks = [0, 1, 2]
        arms = {0: ("zero-shot", 0), 1: (p.strategy, 1), 2: (p.strategy, 2)}
        for step, (k0, k1) in zip(p.steps, itertools.pairwise(ks), strict=True):
            ref = stats.paired_difference(mats[arms[k1]][:, 0], mats[arms[k0]][:, 0],
                                          n_boot=500, seed=0, confidence=0.975)
            assert (step.gain.estimate, step.gain.low, step.gain.high) == pytest.approx(
                (ref.estimate, ref.low, ref.high), abs=1e-12)
    # the 97.5% interval is wider than the 95% one for the same step
    narrow = stats.paired_difference(mats[("B", 2)][:, 0], mats[("B", 1)][:, 0], n_boot=500,
                                     seed=0, confidence=0.95)
    wide = each[1].steps[1].gain
    assert wide.low < narrow.low and wide.high > narrow.high
    assert each[0].status == "plateaued" and each[1].status == "still_improving"
    assert plateau is not None and plateau.status == "still_improving" and plateau.strategy == "B"
    assert plateau.next_k == 4 and "B is still improving" in plateau.reason
    assert "2 curves judged" in plateau.reason and "97.5%" in plateau.reason
    # the curve table holds both curves, each with its own k=0 point
    assert curve["strategy"].tolist() == ["A", "A", "A", "B", "B", "B"]
    assert curve["k"].tolist() == [0, 1, 2, 0, 1, 2]


def test_the_space_plateaus_only_when_every_curve_has():
    summary, mats = _space(b2=121)
    _, plateau, each = curves_and_plateau(summary, mats, DecisionConfig(bootstrap=500), best="B")
    assert [p.status for p in each] == ["plateaued", "plateaued"]
    assert plateau is not None and plateau.status == "plateaued" and plateau.strategy == "B"
    assert plateau.reason.startswith("every curve has plateaued")


def test_one_curve_keeps_the_95_percent_rule():
    summary, mats = _space(b2=160)
    one = summary[summary["strategy"] != "B"]
    _, plateau, each = curves_and_plateau(one, mats, DecisionConfig(bootstrap=500))
    ref = stats.paired_difference(mats[("A", 1)][:, 0], mats[("zero-shot", 0)][:, 0],
                                  n_boot=500, seed=0, confidence=0.95)
    assert plateau is not None and len(each) == 1
    assert plateau.steps[0].gain.low == pytest.approx(ref.low, abs=1e-12)


def _comparisons(pairs: dict[str, tuple[float, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arm_a": a, "arm_b": "zero-shot", "delta": d, "delta_ci_low": lo,
                          "delta_ci_high": hi, "p_adjusted": p}
                         for a, (d, lo, hi, p) in pairs.items()])


def test_what_was_tried_lists_each_setting_with_its_best_arm_and_gain():
    summary, _ = _space(b2=160)
    summary = pd.concat([summary, pd.DataFrame([
        _row("zs:terse", "zero_shot", 0, _scores(90), variant="terse"),
        _row("vote", "zero_shot", 0, _scores(110), samples=5),
        _row("ft", "fine_tuned", 0, _scores(190)),
    ])], ignore_index=True)
    comparisons = _comparisons({"B@k=2": (0.3, 0.2, 0.4, 0.001), "A@k=1": (0.1, 0.0, 0.2, 0.2),
                                "vote": (0.05, -0.02, 0.12, 0.5)})
    # one reversed row: zero-shot minus zs:terse
    comparisons = pd.concat([comparisons, pd.DataFrame([{
        "arm_a": "zero-shot", "arm_b": "zs:terse", "delta": 0.05, "delta_ci_low": -0.01,
        "delta_ci_high": 0.11, "p_adjusted": 0.4}])], ignore_index=True)
    t = tried_frame(summary, comparisons)
    got = {(r["dimension"], r["setting"]): r for _, r in t.iterrows()}
    assert list(got) == [("zero-shot", "k = 0"), ("shots (k)", "k = 1..2 (1, 2)"),
                         ("selection", "stratified"), ("selection", "similar/tfidf"),
                         ("variant", "terse"), ("voting", "5 samples")]
    assert got[("zero-shot", "k = 0")]["best_arm"] == "vote"  # 110 > 100 > 90 right
    assert got[("shots (k)", "k = 1..2 (1, 2)")]["best_arm"] == "B@k=2"
    assert got[("shots (k)", "k = 1..2 (1, 2)")]["gain"] == pytest.approx(0.3)
    sel = got[("selection", "stratified")]
    assert sel["best_arm"] == "A@k=1" and sel["best"] == pytest.approx(0.6)  # the first of a tie
    assert sel["p_adjusted"] == pytest.approx(0.2)
    terse = got[("variant", "terse")]  # the reversed row, its sign and interval flipped
    assert terse["gain"] == pytest.approx(-0.05)
    assert (terse["gain_ci_low"], terse["gain_ci_high"]) == pytest.approx((-0.11, 0.01))
    assert got[("voting", "5 samples")]["arms"] == 1
    assert got[("zero-shot", "k = 0")]["gain"] == pytest.approx(0.05)  # the vote's row


def test_untried_levers():
    summary, _ = _space(b2=160)
    assert untried(summary) == ("self-consistency (samples: 5 with temperature: 0.7)",
                                "prompt variants (variants: on a strategy)")
    only_zero = summary[summary["type"] == "zero_shot"].assign(structured_output="none")
    assert untried(only_zero)[0].startswith("few-shot examples")
    assert untried(only_zero)[-1].startswith("constrained decoding")
    stratified = summary[summary["strategy"] != "B"]
    assert "similar examples (selection: similar)" in untried(stratified)
    assert untried(summary[summary["type"] == "fine_tuned"]) == ()


def test_a_curve_that_cannot_be_judged_does_not_widen_the_others():
    summary, mats = _space(b2=160)
    mats[("V", 1)] = _scores(150)  # a vote at one k: no zero-shot of 5 samples to start from
    summary = pd.concat([summary, pd.DataFrame([_row("V", "few_shot", 1, mats[("V", 1)],
                                                     samples=5, selection="stratified")])],
                        ignore_index=True)
    _, plateau, each = curves_and_plateau(summary, mats, DecisionConfig(bootstrap=500), best="B")
    assert [p.status for p in each] == ["plateaued", "still_improving", "insufficient_data"]
    ref = stats.paired_difference(mats[("B", 2)][:, 0], mats[("B", 1)][:, 0], n_boot=500,
                                  seed=0, confidence=0.975)
    assert each[1].steps[1].gain.low == pytest.approx(ref.low, abs=1e-12)
    assert plateau is not None and "2 curves judged" in plateau.reason
