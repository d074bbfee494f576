"""A verdict resting on no evidence says so (found by a newcomer's trial: `prompting_sufficient`
from 12 examples, stated flatly): a caution when the eval cannot detect any difference, and one
when a plateau's flat step does not rule out a gain of min_gain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, last_user_content

from harness.analysis.curves import CurveStep, PlateauResult, plateau_caution
from harness.analysis.power import caution
from harness.analysis.results import Planning
from harness.analysis.stats import Interval
from harness.cli import main


def _plateau(gain: Interval, kind: str, status: str = "plateaued") -> PlateauResult:
    return PlateauResult(status, 0, None, (CurveStep(0, 2, gain, kind, 48),), "why")


def test_a_flat_step_that_holds_min_gain_is_a_caution() -> None:
    text = plateau_caution(_plateau(Interval(-0.021, -0.188, 0.156), "flat"), 0.02)
    assert text is not None
    assert "k=0 shows no evidence of a gain, not evidence of none" in text
    assert "(-2.1 points, interval -18.8..+15.6, n = 48)" in text
    assert "min_gain (2 points)" in text


@pytest.mark.parametrize(("gain", "kind", "status"), [
    (Interval(-0.1, -0.3, 0.0), "flat", "plateaued"),  # a gain of 2 points is ruled out
    (Interval(0.005, 0.001, 0.015), "practically_flat", "plateaued"),
    (Interval(0.1, 0.05, 0.15), "real_gain", "still_improving"),
])
def test_no_caution_where_the_plateau_rules_the_gain_out(gain: Interval, kind: str,
                                                         status: str) -> None:
    assert plateau_caution(_plateau(gain, kind, status), 0.02) is None
    assert plateau_caution(None, 0.02) is None


def _planning(mde: float | None) -> Planning:
    return Planning(12, 0.2, mde, 0.8, 0.05, "exact McNemar", ("a", "b"), "s")


def test_an_eval_that_can_detect_nothing_is_a_caution_without_a_fine_tune() -> None:
    text = caution(_planning(None), None)
    assert text is not None and "with n = 12 this eval cannot detect even the largest" in text
    assert caution(_planning(0.2), None) is None  # it can detect 20 points: no caution then
    assert caution(_planning(0.2), 0.3) is None
    assert caution(_planning(0.2), 0.1) is not None  # smaller than what it can detect


def test_a_tiny_run_carries_the_caution_in_summary_json(make_config, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    def reply(body: dict) -> str:  # type: ignore[type-arg]
        """Zero-shot right; few-shot (more than two messages) wrong on 'billing'."""
        label = last_user_content(body).splitlines()[0]
        if len(body["messages"]) > 2 and label == "billing":
            label = "account"
        return json.dumps({"label": label})

    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=reply) as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [2]}])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["planning"]["mde"] is None  # 4 examples: nothing is detectable
    rec = summary["recommendation"]
    assert rec["verdict"] == "prompting_sufficient"
    assert any("cannot detect even the largest possible paired difference" in r
               for r in rec["reasons"])
