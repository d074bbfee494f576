"""Issue 24, item 5: `harness plan` plans the comparisons the plateau rule rests on too: each
few-shot curve's steps from one k to the next (its zero-shot arm as k=0), at the alpha the
plateau rule judges them at (1 - curves.curve_confidence(m), Bonferroni over the m curves), from
a pilot run's own pairs of arms when given. The figures are checked against an independent
simulation of the exact McNemar test (scipy's binomial test), the alphas against Bonferroni's
0.05 / m."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_helpers import FIXTURE_RUNS
from scipy.stats import binomtest

from harness.analysis import steps
from harness.analysis.planning import (
    EvalPlan,
    PlannedStep,
    curve_steps,
    plan_lines,
    plan_steps,
    step_alpha,
)
from harness.analysis.power import DEFAULT_DISCORDANCE, mde, required_n
from harness.api import load_config
from harness.cli import main
from harness.running.plan import plan

ZERO = {"name": "zero-shot", "type": "zero_shot", "model": "fake"}
SWEEP = {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2, 4, 8]}
SIMILAR = {"name": "similar", "type": "few_shot", "model": "fake", "shots": [1, 2, 4, 8],
           "selection": "similar"}


def _steps(cfg: Path) -> tuple[list[tuple[str, int, int, str, str]], int]:
    steps, curves = curve_steps(s.arm for s in plan(load_config(cfg)).strategies)
    return [(s.strategy, s.k_from, s.k_to, s.arm_from, s.arm_to) for s in steps], curves


def _plan(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["plan", str(cfg), *args]) == 0
    return capsys.readouterr().out.splitlines()


def _step_lines(out: list[str]) -> dict[str, str]:
    """The step lines of a plan, by step name ("few-shot k=1 -> k=2")."""
    head = next(i for i, line in enumerate(out) if line.startswith("few-shot steps ("))
    rows = [line.strip() for line in out[head + 1:] if " -> k=" in line]
    return {" ".join(r.split()[:4]): r for r in rows}


def _points(x: float | None) -> str:
    return "not detectable" if x is None else f"{100 * x:.1f} points"


def test_a_sweep_is_planned_step_by_step_as_the_plateau_judges_it(make_config):
    cfg = make_config(strategies=[ZERO, SWEEP])  # k = 0 (the zero-shot arm), 1, 2, 4, 8
    steps, curves = _steps(cfg)
    assert curves == 1
    assert steps == [("few-shot", 0, 1, "zero-shot", "few-shot@k=1"),
                     ("few-shot", 1, 2, "few-shot@k=1", "few-shot@k=2"),
                     ("few-shot", 2, 4, "few-shot@k=2", "few-shot@k=4"),
                     ("few-shot", 4, 8, "few-shot@k=4", "few-shot@k=8")]


def test_a_curve_of_one_point_is_not_judged_and_a_second_curve_is(make_config):
    models = {name: {"provider": "openai", "model": name, "base_url": "http://127.0.0.1:9/v1",
                     "api_key_env": "TEST_API_KEY"} for name in ("fake", "other")}
    lone = {"name": "lone", "type": "few_shot", "model": "other", "shots": [4]}  # no zero-shot
    steps, curves = _steps(make_config(strategies=[ZERO, SWEEP, lone], extra={"models": models}))
    assert curves == 1 and {s[0] for s in steps} == {"few-shot"}
    steps, curves = _steps(make_config(strategies=[ZERO, SWEEP, SIMILAR]))
    assert curves == 2
    assert [s[1:3] for s in steps if s[0] == "similar"] == [(0, 1), (1, 2), (2, 4), (4, 8)]


def test_no_sweep_no_steps(make_config, capsys):
    cfg = make_config(strategies=[ZERO])
    assert _steps(cfg) == ([], 0)
    assert not any(line.startswith("few-shot steps") for line in _plan(capsys, cfg))


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_the_step_alpha_is_bonferroni_over_the_curves(m):
    # the textbook Bonferroni level of each of m judgements at familywise 0.05
    assert step_alpha(m) == pytest.approx(0.05 / m, rel=1e-9)


def test_the_step_alpha_is_the_plateau_rules_own(make_config, capsys, monkeypatch):
    monkeypatch.setattr(steps, "curve_confidence", lambda m: 0.9)  # the plateau rule changed
    out = _plan(capsys, make_config(n_eval=50, strategies=[ZERO, SWEEP]), "--delta", "0.1")
    head = next(line for line in out if line.startswith("few-shot steps"))
    assert "each step tests at alpha 0.1," in head and "at 90% confidence" in head, head
    want = mde(200, DEFAULT_DISCORDANCE, alpha=0.1).mde
    assert all(_points(want) in line for line in _step_lines(out).values())


@pytest.mark.parametrize(("strategies", "m"), [([ZERO, SWEEP], 1), ([ZERO, SWEEP, SIMILAR], 2)])
def test_plan_lists_each_step_at_the_plateaus_alpha(make_config, capsys, strategies, m):
    cfg = make_config(n_eval=50, strategies=strategies)  # 200 eval examples
    out = _plan(capsys, cfg, "--delta", "0.1")
    head = next(line for line in out if line.startswith("few-shot steps"))
    assert f"{m} curve(s) judged" in head and f"each step tests at alpha {0.05 / m:g}," in head
    lines = _step_lines(out)
    names = [f"{s['name']} k={a} -> k={b}" for s in strategies[1:]
             for a, b in ((0, 1), (1, 2), (2, 4), (4, 8))]
    assert list(lines) == names
    want = mde(200, DEFAULT_DISCORDANCE, alpha=0.05 / m).mde
    need, _ = required_n(0.1, DEFAULT_DISCORDANCE, alpha=0.05 / m)
    for line in lines.values():
        assert f"{DEFAULT_DISCORDANCE:.3f}" in line and _points(want) in line
        assert f" {need:,} " in line and "(exact McNemar)" in line
    # the comparisons keep their own Holm alpha: a stricter one, so a larger difference
    comparisons = int(out[0].split(" planned comparison")[0].split(", ")[-1])
    holm = mde(200, DEFAULT_DISCORDANCE, alpha=0.05 / comparisons).mde
    assert holm is not None and want is not None and holm > want
    assert _points(holm) in next(line for line in out if line.strip().startswith("any two arms"))


def _simulated_power(n: int, delta: float, psi: float, alpha: float, reps: int = 3000,
                     seed: int = 1) -> float:
    """The exact McNemar test's power by simulation: n10, n01 of a multinomial draw, rejected
    when scipy's two-sided binomial test of n10 of n10 + n01 at 1/2 gives p < alpha."""
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=reps)
    p: dict[tuple[int, int], float] = {}
    hits = 0
    for n10, n01, _ in draws:
        key = (int(n10), int(n10 + n01))
        if key not in p:
            p[key] = binomtest(*key, 0.5).pvalue if key[1] else 1.0
        hits += p[key] < alpha
    return hits / reps


def test_the_step_figures_match_a_simulated_exact_mcnemar_test():
    steps = [PlannedStep("few-shot", 1, 2, "few-shot@k=1", "few-shot@k=2")]
    (row,) = plan_steps(200, steps, 2, delta=0.1, target=0.8)  # two curves: alpha 0.025
    assert row.detectable is not None and row.needed is not None
    sd = (0.8 * 0.2 / 3000) ** 0.5
    at_mde = _simulated_power(200, row.detectable, DEFAULT_DISCORDANCE, 0.025)
    assert at_mde == pytest.approx(0.8, abs=4 * sd + 0.005)
    # a visibly smaller difference is not detected with 80% power at that alpha
    assert _simulated_power(200, row.detectable - 0.02, DEFAULT_DISCORDANCE, 0.025) < 0.8 - 3 * sd
    # the examples needed for 10 points reach 80% power, and fewer than 85% of them do not
    assert _simulated_power(row.needed, 0.1, DEFAULT_DISCORDANCE, 0.025) > 0.8 - 4 * sd
    assert _simulated_power(int(0.85 * row.needed), 0.1, DEFAULT_DISCORDANCE, 0.025) < 0.8


def _pilot(tmp_path: Path) -> Path:
    """A copy of the committed complete run: zero-shot, few-shot k=1/2/4 (2 draws), fine-tuned."""
    return shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "pilot")


def _majority_right(records: pd.DataFrame, strategy: str, k: int) -> pd.Series:
    arm = records[(records["strategy"] == strategy) & (records["k"] == k)]
    return arm.groupby("example_id")["correct"].mean() > 0.5


def test_the_pilot_gives_each_step_its_own_discordance(make_config, tmp_path, capsys):
    run = _pilot(tmp_path)
    records = pd.read_json(run / "results.jsonl", lines=True, dtype={"example_id": str})
    assert set(records["error_kind"].dropna()) <= {"schema"}  # every example answered
    out = _plan(capsys, make_config(n_eval=50, strategies=[ZERO, SWEEP]), "--pilot", str(run))
    lines = _step_lines(out)
    assert list(lines) == ["few-shot k=0 -> k=1", "few-shot k=1 -> k=2", "few-shot k=2 -> k=4",
                           "few-shot k=4 -> k=8"]
    arms = {0: ("zero-shot", 0), 1: ("few-shot", 1), 2: ("few-shot", 2), 4: ("few-shot", 4)}
    for a, b in ((0, 1), (1, 2), (2, 4)):
        x, y = _majority_right(records, *arms[a]), _majority_right(records, *arms[b])
        psi = float((x != y.reindex(x.index)).mean())
        line = lines[f"few-shot k={a} -> k={b}"]
        assert line.split()[4] == f"{psi:.3f}", line
        if psi > 0:
            assert _points(mde(200, psi, alpha=0.05).mde) in line
        else:
            assert "no disagreement in the pilot" in line
    assert any(float(lines[f"few-shot k={a} -> k={b}"].split()[4]) > 0
               for a, b in ((0, 1), (1, 2), (2, 4)))  # the fixture has a step that disagrees
    lacking = lines["few-shot k=4 -> k=8"]  # the pilot has no k=8: the default, said so
    assert lacking.split()[4] == f"{DEFAULT_DISCORDANCE:.3f}"
    assert "the stated default discordance: the pilot lacks this pair" in lacking


def test_the_steps_say_when_the_plateau_judges_another_metric():
    steps = plan_steps(100, [PlannedStep("fs", 1, 2, "fs@k=1", "fs@k=2")], 1)

    def show(metric: str) -> list[str]:
        p = EvalPlan(100, 1, 0.05, 0.8, 0.03, "stated defaults", (), (), steps=steps, curves=1,
                     step_alpha=step_alpha(1), metric=metric)
        return plan_lines(p, "x")

    assert any(line.strip().startswith("fs k=1 -> k=2") for line in show("accuracy"))
    assert not any("field f1" in line for line in show("accuracy"))
    assert any("the plateau judges the steps on field f1" in line for line in show("field_f1"))
