"""`harness plan` and the detectable difference every run reports."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from run_helpers import FIXTURE_RUNS

from harness.analysis.planning import planned_comparisons
from harness.analysis.power import mde
from harness.cli import main


def test_planned_comparisons_count_as_the_comparisons_table_makes_them():
    assert planned_comparisons(1, True) == 1
    assert planned_comparisons(2, True) == 1  # zero-shot vs the other, which is also the best
    assert planned_comparisons(5, True) == 4 + 3
    assert planned_comparisons(3, False) == 2


def test_plan_without_a_pilot_uses_stated_defaults_and_holm(make_config, capsys):
    cfg = make_config(n_eval=5)  # 20 examples; zero-shot + few-shot k=1, 2 -> 3 arms
    assert main(["plan", str(cfg), "--delta", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "n = 20 eval examples, 3 planned comparison(s)" in out
    assert "alpha/3 = 0.01667" in out and "stated defaults: discordance 0.25" in out
    want = mde(20, 0.25, alpha=0.05 / 3).mde
    assert f"{100 * want:.1f} points" in out if want is not None else "not detectable" in out


def test_plan_with_a_pilot_uses_each_comparisons_own_discordance(tmp_path, make_config, capsys):
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "pilot")
    cfg = make_config(n_eval=50)
    assert main(["plan", str(cfg), "--pilot", str(run)]) == 0
    out = capsys.readouterr().out
    assert "from the pilot run" in out and " vs zero-shot" in out
    assert main(["report", str(run)]) == 0
    comparisons = pd.read_csv(run / "comparisons.csv")
    row = comparisons[comparisons["discordance"] > 0].iloc[0]
    planned = mde(200, float(row["discordance"]), alpha=0.05 / 3).mde
    shown = f"{100 * planned:.1f} points" if planned is not None else "not detectable"
    line = next(x for x in out.splitlines() if x.strip().startswith(
        f"{row['arm_a']} vs {row['arm_b']}"))
    assert shown in line


def test_bad_plan_arguments_are_one_line(make_config, tmp_path, capsys):
    cfg = make_config()
    assert main(["plan", str(cfg), "--delta", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --delta") and err.count("\n") == 1
    assert main(["plan", str(cfg), "--pilot", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_every_run_states_what_it_can_detect(tmp_path):
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "run")
    assert main(["report", str(run)]) == 0
    data = json.loads((run / "summary.json").read_text())
    plan = data["planning"]
    comparisons = pd.read_csv(run / "comparisons.csv")
    assert {"discordance", "mde"} <= set(comparisons.columns)
    pair = comparisons[(comparisons["arm_a"] == plan["comparison"][0])
                       & (comparisons["arm_b"] == plan["comparison"][1])].iloc[0]
    assert plan["discordance"] == pytest.approx(pair["discordance"], rel=1e-5)
    assert plan["n"] == pair["n"]
    assert plan["mde"] == mde(int(pair["n"]), plan["discordance"]).mde
    assert plan["sentence"].startswith(f"With n = {plan['n']}, this eval can")
    assert plan["sentence"] in (run / "report.html").read_text().replace("&#x27;", "'")
