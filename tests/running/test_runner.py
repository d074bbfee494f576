"""End-to-end runs against a real loopback server speaking the OpenAI wire format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fake_openai import ChatReply, FakeOpenAI

from harness.cli import main
from harness.config import load_config
from harness.running import Runner, plan
from harness.running.outcome import RunIncomplete


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), *extra])


def test_run_writes_reports_with_a_row_per_example_and_arm(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "sk-test-secret")
    with FakeOpenAI(api_key="sk-test-secret") as server:
        cfg = make_config(server.base_url, n_eval=5)
        out = tmp_path / "run"
        assert _run(cfg, out) == 0
    results = pd.read_csv(out / "results.csv")
    # 20 examples x (zero-shot + 2 ks x 2 draws)
    assert len(results) == 20 * 5
    assert results.groupby(["strategy", "k", "draw"]).size().eq(20).all()
    assert results["correct"].all() and results["schema_valid"].all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["strategy"]) == ["zero-shot", "few-shot", "few-shot"]
    assert list(summary["k"]) == [0, 1, 2]
    # n is examples everywhere; answers counts examples x draws
    assert (summary["n"] == 20).all() and (summary["draws"] == [1, 2, 2]).all()
    assert (summary["answers"] == [20, 40, 40]).all() and (summary["coverage"] == 1.0).all()
    # the fake server echoes every label: all right, no errors
    assert (summary["accuracy"] == 1.0).all() and (summary["macro_f1"] == 1.0).all()
    assert (summary["schema_compliance"] == 1.0).all() and (summary["errors"] == 0).all()
    assert (summary["ci_high"] == 1.0).all()
    # one draw: Wilson's lower bound for 20/20, n / (n + z^2); two draws: a bootstrap over draws
    assert summary["ci_low"].tolist() == pytest.approx([20 / (20 + 1.959964**2), 1.0, 1.0], abs=1e-5)
    data = json.loads((out / "summary.json").read_text())
    assert data["meta"]["complete"] is True
    rec = data["recommendation"]
    assert rec["verdict"] == "prompting_sufficient"  # a flat curve and no fine-tuned arm
    assert rec["plateau"]["status"] == "plateaued" and rec["plateau"]["k_star"] == 0
    assert [s["gain"]["estimate"] for s in rec["plateau"]["steps"]] == [0.0, 0.0]
    html = (out / "report.html").read_text()
    assert "learning-curve" in html and "<script" not in html
    for path in out.iterdir():
        assert "sk-test-secret" not in path.read_text(errors="replace")


def test_few_shot_prompts_carry_examples_as_turns(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(
            server.base_url,
            n_eval=2,
            strategies=[{"name": "fs", "type": "few_shot", "model": "fake", "shots": 3}],
        )
        assert _run(cfg, tmp_path / "run") == 0
        bodies = list(server.requests)
    assert len(bodies) == 8
    roles = [m["role"] for m in bodies[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert bodies[0]["response_format"]["type"] == "json_schema"
    # run.seed is unset, so no seed is sent (unset parameters are never sent)
    assert "seed" not in bodies[0] and None not in bodies[0].values()
    # the same draw uses the same examples for every input (a shared prefix)
    assert all(b["messages"][:-1] == bodies[0]["messages"][:-1] for b in bodies)


def test_rerun_into_same_folder_sends_nothing_twice(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=3)
        out = tmp_path / "run"
        assert _run(cfg, out, "--no-cache") == 0
        first = server.attempts
        assert _run(cfg, out, "--resume", "--no-cache") == 0
        assert server.attempts == first
    assert len(pd.read_csv(out / "results.csv")) == 12 * 5


def test_failures_are_recorded_per_example(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")

    def responder(body):
        text = body["messages"][-1]["content"]
        if "message 0 " in text:
            return ChatReply.context_length_exceeded(4096)
        if "message 1 " in text:
            return ChatReply(content='{"label": "bill', finish_reason="length")
        if "message 2 " in text:
            return ChatReply(content="not json at all")
        return json.dumps({"label": text.splitlines()[0]})

    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(
            server.base_url, n_eval=4, strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}]
        )
        assert _run(cfg, tmp_path / "run") == 0
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    kinds = df["error_kind"].fillna("ok").value_counts().to_dict()
    assert kinds == {"context_length": 4, "truncated": 4, "invalid_json": 4, "ok": 4}
    s = pd.read_csv(tmp_path / "run" / "summary.csv").iloc[0]
    assert s["accuracy"] == pytest.approx(0.25) and s["errors"] == 4


def test_plan_marks_missing_fine_tune_unavailable(make_config):
    cfg = load_config(
        make_config(
            strategies=[
                {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "local-ft:nope"}
            ]
        )
    )
    arms = [s.arm for s in plan(cfg).strategies]
    assert len(arms) == 1
    assert arms[0].unavailable and "harness finetune" in arms[0].unavailable


def test_unavailable_arm_gives_error_rows_not_a_crash(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg_path = make_config(
            server.base_url,
            n_eval=2,
            strategies=[
                {"name": "zs", "type": "zero_shot", "model": "fake"},
                {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "local-ft:x"},
            ],
        )
        runner = Runner(plan(load_config(cfg_path)), tmp_path / "run", use_cache=False)
        with pytest.raises(RunIncomplete, match="--allow-missing"):
            runner.execute()
        counts = runner.counts
    assert counts.by_error == {"model_unavailable": 8}
