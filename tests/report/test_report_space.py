"""A run over the prompt design space end to end: two selections, variants and a vote, reported
as curves, a "what was tried" table, the untried levers, and in the history."""

from __future__ import annotations

import json

import pandas as pd
from fake_openai import FakeOpenAI

from harness.cli import main


def test_a_design_space_run_reports_curves_tried_and_untried(make_config, tmp_path, monkeypatch,
                                                               capsys):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, n_train=4, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "stratified", "type": "few_shot", "model": "fake", "shots": [1, 2]},
            {"name": "similar", "type": "few_shot", "model": "fake", "shots": [1, 2],
             "selection": "similar"},
            {"name": "vote", "type": "zero_shot", "model": "fake", "samples": 3,
             "temperature": 0.7},
        ])
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Not tried yet, and cheap to try: prompt variants (variants: on a strategy)." in printed
    data = json.loads((out / "summary.json").read_text())
    rec = data["recommendation"]
    assert [c["strategy"] for c in rec["curves"]] == ["stratified", "similar"]
    assert rec["untried"] == ["prompt variants (variants: on a strategy)"]
    assert "2 curves judged" in rec["plateau"]["reason"]
    curve = pd.DataFrame(data["learning_curve"])
    assert curve.groupby("strategy")["k"].apply(list).to_dict() == {
        "similar": [0, 1, 2], "stratified": [0, 1, 2]}
    tried = pd.read_csv(out / "tried.csv")
    assert set(zip(tried["dimension"], tried["setting"], strict=True)) == {
        ("zero-shot", "k = 0"), ("shots (k)", "k = 1..2 (1, 2)"), ("selection", "stratified"),
        ("selection", "similar/tfidf"), ("voting", "3 samples")}
    html = (out / "report.html").read_text()
    for marker in ('id="tried"', 'id="voting"', 'id="cache-note"', 'id="untried"'):
        assert marker in html
    # the learning curve has one line per curve
    assert html.count('id="learning-curve"') == 1 and ">similar<" in html and ">stratified<" in html

    assert main(["history", str(cfg)]) == 0
    shown = capsys.readouterr().out
    assert "similar@k=2 on fake-model (selection similar/tfidf):" in shown
    assert "vote on fake-model (3 samples):" in shown
    assert "tried across runs" in shown and "selection  similar/tfidf" in shown
