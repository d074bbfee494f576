"""`harness validate` and `harness run --dry-run`: what a run will request and cost, and the
warnings, before any model is called (issue 10, item 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeOpenAI

from harness.cli import main

ZERO_SHOT = [{"name": "zs", "type": "zero_shot", "model": "fake"}]


def test_validate_refuses_an_unset_api_key_like_run(make_config, capsys, monkeypatch):
    monkeypatch.delenv("TEST_API_KEY", raising=False)
    cfg = make_config(n_eval=2, strategies=ZERO_SHOT)
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "TEST_API_KEY" in err and "is not set" in err and "Traceback" not in err


def test_validate_prints_requests_cost_and_warnings(make_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    labels = [f"label {i}" for i in range(150)]
    cfg = make_config(n_eval=2, strategies=ZERO_SHOT, run={"concurrency": 10000})
    data = yaml.safe_load(cfg.read_text())
    known = json.loads((tmp_path / "labels.json").read_text())
    (tmp_path / "labels.json").write_text(json.dumps([*known, *labels]))
    data["dataset"]["limit"] = 500
    data["models"]["fake"]["price"] = {"input": 1.0, "output": 2.0}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "8 requests" in out and "total: 8 requests" in out
    assert "estimated cost <= $" in out
    assert f"{len(labels) + 4} labels" in out and "run.concurrency 10000" in out
    assert "dataset.limit 500" in out


def test_dry_run_sends_nothing_and_writes_nothing(make_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=ZERO_SHOT)
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--dry-run"]) == 0
        assert server.attempts == 0 and not server.requests
    assert not out.exists()
    text = capsys.readouterr().out
    assert "total: 12 requests" in text and "price unknown" in text


@pytest.mark.parametrize("limit", [2])
def test_dry_run_honours_limit(make_config, capsys, monkeypatch, limit: int) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")
    cfg: Path = make_config(n_eval=3, strategies=ZERO_SHOT)
    assert main(["run", str(cfg), "--dry-run", "--limit", str(limit)]) == 0
    assert f"total: {limit} requests" in capsys.readouterr().out
