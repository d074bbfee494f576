"""The extraction decision end to end (issue 11, item 6): runs against the loopback server with
figures worked out by hand, analysed under `decision.metric` and `decision.min_schema_compliance`:
the three verdict cases, and field F1 changing the plateau and the comparisons' test."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.analysis import Analysis, analyse
from harness.cli import main
from harness.running.store import read_meta, read_records

FT_MODEL = "ft:fake-model:acme:extract:1"
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "people": {"type": ["integer", "null"]}},
    "required": ["name", "people"],
    "additionalProperties": False,
}


def _gold(i: int) -> dict[str, Any]:
    return {"name": f"G{i}", "people": i % 5 + 1}


def _text(i: int) -> str:
    return f"Guest {i} books a table"


def _index(body: dict[str, Any]) -> int:
    return int(last_user_content(body).split()[1])


def _run(tmp: Path, name: str, n: int, strategies: list[dict[str, Any]], responder: Any,
         decision: dict[str, Any] | None = None) -> Path:
    """A run of `n` eval examples (gold _gold(i)) and a 12-example training pool."""
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "eval.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"text": _text(i), "slots": _gold(i)}) + "\n")
    with open(tmp / "train.jsonl", "w") as f:
        for i in range(1000, 1012):
            f.write(json.dumps({"text": _text(i), "slots": _gold(i)}) + "\n")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=responder) as server:
        mp.setenv("TEST_API_KEY", "x")
        mp.setenv("HARNESS_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("HARNESS_REGISTRY", str(tmp / "finetunes.json"))
        mp.setenv("HARNESS_HISTORY", str(tmp / "history.jsonl"))
        cfg = {
            "name": name,
            "task": {"type": "extraction", "instructions": "Extract the booking.",
                     "output_schema": SCHEMA, "match": {"people": "number"}},
            "dataset": {"eval": "eval.jsonl", "train": "train.jsonl", "input": "text",
                        "target": "slots"},
            "models": {"fake": {"provider": "openai", "model": "fake-model",
                                "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
            "strategies": strategies,
            "run": {"concurrency": 4, "max_attempts": 1},
            **({"decision": decision} if decision else {}),
        }
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out = tmp / "run"
        assert main(["run", str(path), "--out", str(out), "--no-cache"]) == 0
    return out


def _analyse(run: Path, **decision: Any) -> Analysis:
    meta = read_meta(run)
    meta = dataclasses.replace(meta, decision=dataclasses.replace(meta.decision, **decision))
    return analyse(read_records(run), meta)


# --------------------------------------------------------------------------- format run
# 40 examples. ft (unconstrained) always right. cz (constrained) right but for examples 0 and 1,
# whose `people` breaks the schema: compliance 38/40 = 95%, exact match 38/40, field counts
# tp 76, fp 0, fn 4, F1 = 152/156. raw (unconstrained) answers prose on even examples:
# compliance 50%, tp 40, fn 40, F1 = 80/120.


def _format_responder(body: dict[str, Any]) -> str:
    i = _index(body)
    right = json.dumps(_gold(i))
    if body.get("model") == FT_MODEL:
        return right
    if "response_format" in body:
        return json.dumps({"name": f"G{i}", "people": "two"}) if i < 2 else right
    return f"The booking is for G{i}" if i % 2 == 0 else right


FORMAT_STRATEGIES = [
    {"name": "cz", "type": "zero_shot", "model": "fake"},
    {"name": "raw", "type": "zero_shot", "model": "fake", "structured_output": "none"},
    {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": FT_MODEL,
     "structured_output": "none"},
]


@pytest.fixture(scope="module")
def format_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("format"), "format", 40, FORMAT_STRATEGIES,
                _format_responder, {"metric": "field_f1", "min_schema_compliance": 0.9})


def test_format_run_figures_by_hand(format_run: Path) -> None:
    a = _analyse(format_run)
    s = a.summary.set_index("strategy")
    assert list(s["schema_compliance"]) == pytest.approx([0.95, 0.5, 1.0])
    assert list(s["field_f1"]) == pytest.approx([152 / 156, 80 / 120, 1.0])
    assert list(s["structured_output"]) == ["json_schema", "none", "none"]
    assert s.loc["cz", "field_f1_ci_low"] <= 152 / 156 <= s.loc["cz", "field_f1_ci_high"]
    c = a.comparisons.set_index("arm_a")
    assert list(c["arm_b"]) == ["cz", "cz"]  # cz is both zero-shot and the best prompt
    assert set(c["test"]) == {"paired_bootstrap"} and set(c["metric"]) == {"field_f1"}
    assert c.loc["ft", "delta"] == pytest.approx(1 - 152 / 156)
    assert c.loc["raw", "delta"] == pytest.approx(80 / 120 - 152 / 156)
    assert c.loc["raw", "significant"] and not c.loc["ft", "significant"]
    assert a.evidence.metric == "field_f1" and a.evidence.comparison.test == "paired_bootstrap"
    # exact match: McNemar on 2 discordant pairs, 2 * (1/2)^2 = 0.5 before Holm
    acc = _analyse(format_run, metric="accuracy").comparisons.set_index("arm_a")
    assert set(acc["test"]) == {"mcnemar"}
    assert acc.loc["ft", "p_value"] == pytest.approx(0.5)
    assert acc.loc["ft", "delta"] == pytest.approx(2 / 40)


def test_constrained_decoding_already_gives_the_format(format_run: Path) -> None:
    """The run's own config: field F1 with a 90% floor; cz reaches it, constrained, and the
    fine-tuned arm is not significantly better."""
    summary = json.loads((format_run / "summary.json").read_text())
    rec = summary["recommendation"]
    assert rec["verdict"] == "prompting_sufficient"
    assert rec["sentence"].startswith("Constrained decoding already gives the format: cz reaches "
                                      "95% compliance at equal field F1 (fine-tuned minus it: "
                                      "+2.6 points")
    assert rec["sentence"].endswith("fine-tuning for format is not needed.")
    assert rec["fine_tune"]["metric"] == "field_f1"
    assert rec["fine_tune"]["min_schema_compliance"] == 0.9


def test_fine_tune_for_format(format_run: Path) -> None:
    v = _analyse(format_run, min_schema_compliance=0.97).verdict
    assert v.recommendation == "fine_tune"
    assert v.sentence == ("Fine-tune for format: only the fine-tuned arm, ft, reaches the 97% "
                          "schema-compliance floor (decision.min_schema_compliance) (100%); the "
                          "most compliant prompt, cz (constrained), reaches 95%.")


def test_without_a_floor_the_verdict_is_the_metric_case(format_run: Path) -> None:
    v = _analyse(format_run, min_schema_compliance=None).verdict
    assert v.recommendation == "keep_prompting"  # no sweep; as good, but no cost to weigh
    assert v.sentence.startswith("Keep prompting: more shot counts are needed to tell whether "
                                 "field F1 has plateaued")
    assert _analyse(format_run, min_schema_compliance=None, metric="accuracy").verdict.sentence \
        .startswith("Keep prompting: more shot counts are needed to tell whether accuracy")


# --------------------------------------------------------------------------- plateau run
# 30 examples. zero-shot gets both fields wrong (F1 0), one shot gets the name right and
# `people` wrong (tp 1, fp 1, fn 1 each: F1 1/2); neither is ever exactly right. ft is right.


def _plateau_responder(body: dict[str, Any]) -> str:
    i = _index(body)
    if body.get("model") == FT_MODEL:
        return json.dumps(_gold(i))
    if i >= 1000:
        return json.dumps(_gold(i))
    shots = any(m["role"] == "assistant" for m in body["messages"])
    return json.dumps({"name": f"G{i}" if shots else "X", "people": 99})


PLATEAU_STRATEGIES = [
    {"name": "zs", "type": "zero_shot", "model": "fake"},
    {"name": "fs", "type": "few_shot", "model": "fake", "shots": [1]},
    {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": FT_MODEL},
]


@pytest.fixture(scope="module")
def plateau_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("plateau"), "plateau", 30, PLATEAU_STRATEGIES,
                _plateau_responder)


def test_field_f1_changes_the_plateau_and_the_test(plateau_run: Path) -> None:
    acc = _analyse(plateau_run)
    assert acc.plateau is not None and (acc.plateau.status, acc.plateau.k_star) == ("plateaued", 0)
    assert list(acc.curve["accuracy"]) == [0.0, 0.0]
    assert set(acc.comparisons["test"]) == {"mcnemar"}
    f1 = _analyse(plateau_run, metric="field_f1")
    assert f1.plateau is not None and f1.plateau.status == "still_improving"
    assert f1.plateau.next_k == 2 and f1.plateau.steps[0].gain.estimate == pytest.approx(0.5)
    assert list(f1.curve["field_f1"]) == pytest.approx([0.0, 0.5])
    assert list(f1.curve["gain"])[1] == pytest.approx(0.5)
    assert set(f1.comparisons["test"]) == {"paired_bootstrap"}
    assert f1.evidence.best_prompting_arm == "fs@k=1"  # best by F1, not the accuracy tie


def test_the_fine_tuned_arm_wins_on_the_metric_despite_a_floor(plateau_run: Path) -> None:
    """Every arm is compliant and the best prompt constrained, but the fine-tuned arm is
    significantly better: the metric case, not 'constrained decoding already gives the format'."""
    v = _analyse(plateau_run, metric="field_f1", min_schema_compliance=0.9).verdict
    assert v.recommendation == "fine_tune"
    assert v.sentence.startswith("Fine-tune: it beats the best prompt by +50.0 points")


def test_field_f1_on_a_classification_run_is_refused(tmp_path: Path) -> None:
    from run_helpers import FIXTURE_RUNS

    from harness.errors import InputError

    with pytest.raises(InputError, match=r"decision\.metric: field_f1 applies to extraction"):
        _analyse(FIXTURE_RUNS / "complete", metric="field_f1")


def test_the_chart_plots_the_decision_metric(plateau_run: Path) -> None:
    from harness.report.chart import curve_svg

    assert 'aria-label="Learning curve: accuracy' in curve_svg(_analyse(plateau_run))
    svg = curve_svg(_analyse(plateau_run, metric="field_f1"))
    assert 'aria-label="Learning curve: field F1' in svg and ">field F1<" in svg
