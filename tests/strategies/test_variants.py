"""Prompt variants: `variants: {NAME: {system, user}}` on a strategy, one arm `STRATEGY:NAME` each."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from fake_openai import FakeOpenAI

from harness.cli import main


def test_variants_are_arms_with_their_own_prompts_and_hashes(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    (tmp_path / "terse.yaml").write_text(yaml.safe_dump({"system": "Labels: {labels}. Answer."}))
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2],
             "variants": {"plain": {},
                          "persona": {"system": "You are a senior support agent. "
                                                "{instructions} Labels: {labels}"},
                          "terse": "terse.yaml"}},
        ])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
        systems = {b["messages"][0]["content"] for b in server.requests}
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    names = [f"{s}@k={k}" if k else s for s, k in zip(summary["strategy"], summary["k"],
                                                      strict=True)]
    assert names == ["zero-shot", "few-shot:plain@k=1", "few-shot:plain@k=2",
                     "few-shot:persona@k=1", "few-shot:persona@k=2", "few-shot:terse@k=1",
                     "few-shot:terse@k=2"]
    assert summary["variant"].fillna("").tolist() == ["", "plain", "plain", "persona", "persona",
                                                      "terse", "terse"]
    # one prompt version per (variant, k); the plain variant's prompt is the strategy's own
    assert summary["prompt_sha256"].nunique() == 7
    assert any(s.startswith("You are a senior support agent.") for s in systems)
    assert any(s.startswith("Labels: ") for s in systems)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    persona = next(a for a in run["arms"] if a["strategy"] == "few-shot:persona")
    assert persona["variant"] == "persona"
    assert persona["prompt_example"].startswith("[system]\nYou are a senior support agent.")
    html = (tmp_path / "run" / "report.html").read_text()
    assert "few-shot:persona@k=2" in html and "You are a senior support agent." in html


def test_a_variant_with_a_bad_placeholder_is_named(make_config, tmp_path, capsys):
    cfg = make_config(strategies=[
        {"name": "zs", "type": "zero_shot", "model": "fake",
         "variants": {"odd": {"system": "Use {lables}"}}}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "strategies[0].variants.odd" in err
    assert "lables" in err and err.count("\n") == 1


def test_variants_and_samples_only_on_prompting_strategies(make_config, tmp_path, capsys):
    cfg = make_config(strategies=[
        {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "ft:x",
         "samples": 3, "temperature": 0.5, "variants": {"a": {}}}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "strategies[0].samples" in err and "strategies[0].variants" in err


def test_a_missing_variant_file_is_named(make_config, tmp_path, capsys):
    cfg = make_config(strategies=[
        {"name": "zs", "type": "zero_shot", "model": "fake", "variants": {"a": "nope.yaml"}}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "strategies[0].variants.a" in err and "nope.yaml" in err


def test_a_reasoning_variant_scores_only_the_answer(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    schemas = []

    def responder(body: dict) -> str:
        schema = body["response_format"]["json_schema"]["schema"]
        schemas.append(schema)
        text = body["messages"][-1]["content"]
        label = text.splitlines()[0]
        if "reasoning" not in schema["properties"]:
            return json.dumps({"label": label})
        if "returns" in label:  # no reasoning where it is required: breaks the schema
            return json.dumps({"label": label})
        return json.dumps({"reasoning": "The first line names the topic, so " * 3,
                           "label": label})

    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=[
            {"name": "zs", "type": "zero_shot", "model": "fake",
             "variants": {"plain": {}, "think": {"reasoning": True}}}])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    think = [s for s in schemas if "reasoning" in s["properties"]]
    assert len(think) == 8 and next(iter(think[0]["properties"])) == "reasoning"
    assert think[0]["required"][0] == "reasoning"
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").set_index("strategy")
    plain, reasoned = summary.loc["zs:plain"], summary.loc["zs:think"]
    assert plain["accuracy"] == 1.0 and plain["schema_compliance"] == 1.0
    # 6 of 8 answers reason first and are right; the 2 "returns" answers break the schema
    assert reasoned["accuracy"] == 0.75 and reasoned["schema_compliance"] == 0.75
    assert reasoned["mean_completion_tokens"] > 3 * plain["mean_completion_tokens"]
    assert plain["prompt_sha256"] != reasoned["prompt_sha256"]
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    ok = results[(results["strategy"] == "zs:think") & results["correct"]]
    assert set(ok["prediction"]) <= {"billing", "shipping", "account"}
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    arm = next(a for a in run["arms"] if a["strategy"] == "zs:think")
    assert arm["reasoning"] is True and '{"reasoning": "<your reasoning' in arm["prompt_example"]
    # re-scored from the stored outputs: the same figures
    assert main(["report", str(tmp_path / "run"), "--rescore"]) == 0
    again = pd.read_csv(tmp_path / "run" / "summary.csv").set_index("strategy")
    assert again.loc["zs:think", "accuracy"] == 0.75
    assert not (tmp_path / "run" / "results.before-rescore.jsonl").exists()


def test_reasoning_variants_need_a_zero_shot_strategy(make_config, capsys):
    cfg = make_config(strategies=[
        {"name": "fs", "type": "few_shot", "model": "fake", "shots": [1],
         "variants": {"think": {"reasoning": True}}}])
    assert main(["validate", str(cfg)]) == 2
    assert "strategies[0].variants.think.reasoning" in capsys.readouterr().err
