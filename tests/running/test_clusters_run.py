"""`dataset.cluster` end to end: read and checked with the data, recorded in run.json, and
the reports' intervals, tests, design effect and planning account for it; a run without it is
unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import LABELS, write_csv
from fake_openai import FakeOpenAI, last_user_content

from harness.analysis import clustered, stats
from harness.cli import main


def _clustered_project(make_config, base_url: str, tmp_path: Path, cluster: str | None) -> Path:
    """Eval messages from 12 customers, 4 each; the fake model is wrong on every 'returns'
    message of even-numbered customers at zero-shot (correlated within a customer)."""
    cfg = make_config(base_url, n_eval=3)
    rows = [{"text": f"{lab}\ncustomer {c} message {i} about {lab}", "category": lab,
             "customer": f"c{c}"}
            for c in range(12) for i, lab in enumerate(LABELS)]
    write_csv(tmp_path / "eval.csv", rows)
    data = yaml.safe_load(cfg.read_text())
    if cluster is not None:
        data["dataset"]["cluster"] = cluster
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def _responder(body):
    text = last_user_content(body)
    label = text.splitlines()[0]
    c = int(re.search(r"customer (\d+)", text).group(1))  # type: ignore[union-attr]
    zero_shot = len(body["messages"]) <= 2
    if zero_shot and c % 2 == 0 and label in ("returns", "billing"):
        label = "shipping"
    return json.dumps({"label": label})


def test_a_clustered_run_resamples_clusters_and_tests_with_the_clustered_mcnemar(
        make_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_responder) as server:
        cfg = _clustered_project(make_config, server.base_url, tmp_path, "customer")
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    ids = {f"{i}": f"c{i // 4}" for i in range(48)}
    assert dict(zip(meta["examples"], meta["clusters"], strict=True)) == ids
    summary = pd.read_csv(run / "summary.csv")
    zs = summary[summary["strategy"] == "zero-shot"].iloc[0]
    assert zs["clusters"] == 12
    results = pd.read_csv(run / "results.csv")
    zero = results[results["strategy"] == "zero-shot"]
    right = zero.sort_values("example_id", key=lambda s: s.astype(int))
    deff = clustered.design_effect(right["correct"].astype(float).to_numpy(),
                                   [ids[str(e)] for e in right["example_id"]])
    assert zs["design_effect"] == pytest.approx(deff, rel=1e-5) and deff > 1.3
    # zero-shot accuracy 36/48, clustered: wider than the plain Wilson interval
    assert zs["accuracy"] == 0.75
    want = clustered.clustered_wilson(right["correct"].astype(float).to_numpy(),
                                      [ids[str(e)] for e in right["example_id"]])
    assert (zs["ci_low"], zs["ci_high"]) == pytest.approx((want.low, want.high), rel=1e-5)
    plain = stats.wilson_interval(36, 48)
    assert want.high - want.low > plain.high - plain.low + 0.03
    comparisons = pd.read_csv(run / "comparisons.csv")
    assert set(comparisons["test"]) == {"clustered_mcnemar"}
    assert "design_effect" in comparisons.columns
    data = json.loads((run / "summary.json").read_text())
    assert data["clustering"]["field"] == "customer" and data["clustering"]["clusters"] == 12
    assert "design effect" in data["planning"]["sentence"]
    html = (run / "report.html").read_text()
    assert 'id="clusters"' in html and "clustered McNemar p" in html
    assert "12 clusters" in out


def test_without_a_cluster_field_nothing_about_clusters_appears(make_config, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_responder) as server:
        cfg = _clustered_project(make_config, server.base_url, tmp_path, None)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    run = tmp_path / "run"
    assert "clusters" not in json.loads((run / "run.json").read_text())
    assert not {"clusters", "design_effect"} & set(pd.read_csv(run / "summary.csv").columns)
    comparisons = pd.read_csv(run / "comparisons.csv")
    assert set(comparisons["test"]) == {"mcnemar"} and "design_effect" not in comparisons
    assert "clustering" not in json.loads((run / "summary.json").read_text())
    assert 'id="clusters"' not in (run / "report.html").read_text()


def test_a_missing_or_empty_cluster_field_is_a_located_error(make_config, tmp_path, capsys):
    cfg = _clustered_project(make_config, "http://127.0.0.1:9/v1", tmp_path, "client")
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset.eval:") and "no column 'client'" in err
    assert "did you mean" not in err or "customer" in err
    assert not (tmp_path / "run").exists()
    rows = [{"text": f"{lab}\nmessage {i}", "category": lab, "customer": "" if i == 2 else "c"}
            for i, lab in enumerate(LABELS)]
    write_csv(tmp_path / "eval.csv", rows)
    data = yaml.safe_load(cfg.read_text())
    data["dataset"]["cluster"] = "customer"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "line 6: empty cluster in field 'customer'" in err and err.count("\n") == 1


def test_plan_scales_a_clustered_pilot_by_its_design_effect(make_config, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_responder) as server:
        cfg = _clustered_project(make_config, server.base_url, tmp_path, "customer")
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["plan", str(cfg), "--pilot", str(tmp_path / "run"), "--delta", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "design effect" in out and "effective size" in out
    assert main(["plan", str(cfg)]) == 0
    assert "design effect is taken as 1" in capsys.readouterr().out


def test_the_gate_pairs_a_clustered_run_over_its_clusters(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_responder) as server:
        cfg = _clustered_project(make_config, server.base_url, tmp_path, "customer")
        assert main(["run", str(cfg), "--out", str(tmp_path / "base"), "--no-cache"]) == 0
        assert main(["run", str(cfg), "--out", str(tmp_path / "now"), "--no-cache"]) == 0
    assert main(["gate", str(tmp_path / "now"), "--baseline", str(tmp_path / "base")]) == 0
    assert "clustered McNemar" in (tmp_path / "now" / "gate.md").read_text()


def test_naming_clusters_later_re_analyses_a_finished_run_without_a_request(
        make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_responder) as server:
        cfg = _clustered_project(make_config, server.base_url, tmp_path, None)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        sent = server.attempts
        data = yaml.safe_load(cfg.read_text())
        data["dataset"]["cluster"] = "customer"
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--resume",
                     "--no-cache"]) == 0
        assert server.attempts == sent
    assert set(pd.read_csv(tmp_path / "run" / "comparisons.csv")["test"]) == {"clustered_mcnemar"}
