"""Extraction end to end against the loopback server, with every figure computed by hand
(issue 11): exact match, field precision / recall / F1, compliance, constrained and not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "people": {"type": ["integer", "null"]}},
    "required": ["name", "people"],
    "additionalProperties": False,
}
GOLD = [
    ("Table for 4 under Ann", {"name": "Ann", "people": 4}),
    ("Just me, Bob", {"name": "Bob", "people": 1}),
    ("Hello there", {"name": None, "people": None}),
    ("Two for Cy", {"name": "Cy", "people": 2}),
    ("Dee here", {"name": "Dee", "people": None}),
    ("Six people", {"name": None, "people": 6}),
]
TRAIN = [(f"Booking number {i} for Pat", {"name": "Pat", "people": i}) for i in range(1, 13)]
# what the model says, by input, when its answer is constrained by the schema...
CONSTRAINED = {
    "Table for 4 under Ann": '{"name": "ann.", "people": 4}',  # normalized: right
    "Just me, Bob": '{"name": "Bob", "people": 2}',  # people wrong: a false positive and a miss
    "Hello there": '{"name": null, "people": null}',
    "Two for Cy": '{"name": "Cy", "people": 2}',
    "Dee here": '{"name": "Dee", "people": 3}',  # people where there is none: a false positive
    "Six people": '{"name": null, "people": 6}',
}
# ... and on its own
UNCONSTRAINED = {
    "Table for 4 under Ann": '```json\n{"name": "Ann", "people": 4}\n```',  # one fence: lenient
    "Just me, Bob": "Bob, 1 person",  # not JSON: predicts nothing
    "Hello there": '{"name": null, "people": null}',
    "Two for Cy": '{"name": "Cy", "people": "two"}',  # breaks the schema: predicts nothing
    "Dee here": '{"name": "Dee", "people": null, "extra": 1}',  # breaks the schema
    "Six people": '{"name": null, "people": 6}',
}


def _responder(body: dict[str, Any]) -> str:
    text = last_user_content(body)
    if text.startswith("Booking number"):
        return json.dumps({"name": "Pat", "people": int(text.split()[2])})
    return (CONSTRAINED if "response_format" in body else UNCONSTRAINED)[text]


def _project(tmp: Path, base_url: str, strategies: list[dict[str, Any]]) -> Path:
    with open(tmp / "eval.jsonl", "w") as f:
        for text, gold in GOLD:
            f.write(json.dumps({"text": text, "slots": gold}) + "\n")
    with open(tmp / "train.jsonl", "w") as f:
        for text, gold in TRAIN:
            f.write(json.dumps({"text": text, "slots": gold}) + "\n")
    (tmp / "schema.json").write_text(json.dumps(SCHEMA))
    cfg = {
        "name": "extract",
        "task": {"type": "extraction", "instructions": "Extract the booking.",
                 "output_schema": "schema.json", "match": {"people": "number"}},
        "dataset": {"eval": "eval.jsonl", "train": "train.jsonl", "input": "text",
                    "target": "slots"},
        "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                            "api_key_env": "TEST_API_KEY"}},
        "strategies": strategies,
        "run": {"concurrency": 2, "max_attempts": 1},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")


def test_exact_match_field_f1_and_compliance_by_hand(tmp_path: Path) -> None:
    strategies = [
        {"name": "constrained", "type": "zero_shot", "model": "fake"},
        {"name": "raw", "type": "zero_shot", "model": "fake", "structured_output": "none"},
    ]
    with FakeOpenAI(responder=_responder) as server:
        cfg = _project(tmp_path, server.base_url, strategies)
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--no-cache"]) == 0
        bodies = [b for b in server.requests if "messages" in b]
    # constrained arms send the schema; `none` sends no response_format at all
    assert sum("response_format" in b for b in bodies) == 6
    assert all(b["response_format"]["json_schema"]["schema"] == SCHEMA
               for b in bodies if "response_format" in b)
    arms = {a["strategy"]: a for a in json.loads((out / "summary.json").read_text())["arms"]}
    c, r = arms["constrained"], arms["raw"]
    csv_columns = pd.read_csv(out / "summary.csv").columns
    assert {"accuracy", "field_precision", "field_recall", "field_f1", "schema_compliance",
            "n", "errors"} <= set(csv_columns)
    assert c["n"] == r["n"] == 6
    assert c["accuracy"] == pytest.approx(4 / 6) and r["accuracy"] == pytest.approx(3 / 6)
    # constrained: 7 right non-null values, 2 false positives, 1 miss, of 8 gold values
    assert c["field_precision"] == pytest.approx(7 / 9)
    assert c["field_recall"] == pytest.approx(7 / 8)
    assert c["field_f1"] == pytest.approx(14 / 17)
    # unconstrained: the unparsable and schema-breaking answers predict nothing (5 misses)
    assert r["field_precision"] == pytest.approx(1.0)
    assert r["field_recall"] == pytest.approx(3 / 8)
    assert r["field_f1"] == pytest.approx(6 / 11)
    assert c["schema_compliance"] == 1.0 and r["schema_compliance"] == pytest.approx(0.5)
    assert r["parse_failure_rate"] == pytest.approx(1 / 6)
    assert c["structured_output"] == "json_schema" and r["structured_output"] == "none"
    assert c["lenient_parses"] == 0 and r["lenient_parses"] == 1
    results = pd.read_csv(out / "results.csv")
    raw = results[results["strategy"] == "raw"].set_index("input")
    assert raw.loc["Just me, Bob", "error_kind"] == "invalid_json"
    assert raw.loc["Two for Cy", "error_kind"] == "schema"
    assert raw.loc["Two for Cy", "error"].startswith("people:")
    assert raw.loc["Dee here", "error_kind"] == "schema"
    constrained = results[results["strategy"] == "constrained"].set_index("input")
    assert constrained.loc["Just me, Bob", "error_kind"] == "wrong_values"
    assert json.loads(constrained.loc["Just me, Bob", "fields_right"]) == {"name": True,
                                                                         "people": False}
    assert json.loads(raw.loc["Two for Cy", "fields_right"]) == {"name": False, "people": False}
    per_field = pd.read_csv(out / "per_field.csv")
    row = per_field[(per_field["strategy"] == "constrained") & (per_field["field"] == "people")]
    assert row["accuracy"].iloc[0] == pytest.approx(4 / 6)
    assert row["support"].iloc[0] == 4
    assert not (out / "per_class.csv").exists()


def test_few_shot_examples_are_canonical_json(tmp_path: Path) -> None:
    strategies = [{"name": "fs", "type": "few_shot", "model": "fake", "shots": 2}]
    with FakeOpenAI(responder=_responder) as server:
        cfg = _project(tmp_path, server.base_url, strategies)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        body = next(b for b in server.requests if "messages" in b)
    assistant = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 2
    for text in assistant:
        obj = json.loads(text)
        assert list(obj) == ["name", "people"] and text == json.dumps(obj, ensure_ascii=False)


def test_csv_columns_and_an_input_template(tmp_path: Path) -> None:
    (tmp_path / "eval.csv").write_text(
        "requested,text,name,people\npeople,4,,4\nname,Ann,Ann,\nname,Bob,Bob,\n")
    (tmp_path / "train.csv").write_text("requested,text,name,people\n" + "".join(
        f"people,{i},,{i}\n" for i in range(10, 22)))
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    seen: list[str] = []

    def responder(body: dict[str, Any]) -> str:
        text = last_user_content(body)
        seen.append(text)
        return json.dumps({"name": None, "people": 4})

    with FakeOpenAI(responder=responder) as server:
        cfg = {
            "name": "csv", "task": {"type": "extraction", "instructions": "Extract.",
                                    "output_schema": "schema.json"},
            "dataset": {"eval": "eval.csv", "train": "train.csv",
                        "input": "Asked for: {requested}\nCustomer: {text}",
                        "target_fields": {"name": "name", "people": "people"}},
            "models": {"fake": {"provider": "openai", "model": "fake-model",
                                "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
            "strategies": [{"name": "zs", "type": "zero_shot", "model": "fake"}],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert main(["run", str(path), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    assert "Asked for: people\nCustomer: 4" in seen
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert results["correct"].tolist() == [True, False, False]  # "4" read as the integer 4


def _bad_project(tmp: Path, rows: list[str], input_field: str = "text") -> Path:
    (tmp / "eval.jsonl").write_text("".join(r + "\n" for r in rows))
    cfg = {
        "name": "bad", "task": {"type": "extraction", "instructions": "Extract.",
                                "output_schema": SCHEMA},
        "dataset": {"eval": "eval.jsonl", "input": input_field, "target": "slots"},
        "models": {"m": {"provider": "openai", "model": "x", "api_key_env": None}},
        "strategies": [{"name": "zs", "type": "zero_shot", "model": "m"}],
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_bad_gold_object_is_one_located_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    good = json.dumps({"text": "a", "slots": {"name": "A", "people": 1}})
    bad = json.dumps({"text": "b", "slots": {"name": "B", "people": "many"}})
    cfg = _bad_project(tmp_path, [good, bad])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "eval.jsonl: line 2" in lines[0] and "people" in lines[0]
    assert "schema path properties/people/type" in lines[0]


def test_a_bad_input_template_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.dumps({"text": "a", "slots": {"name": "A", "people": 1}})
    cfg = _bad_project(tmp_path, [good], input_field="Asked: {asked}\n{text}")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "'asked'" in lines[0] and "Traceback" not in err


def test_labels_do_not_apply_to_extraction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.dumps({"text": "a", "slots": {"name": "A", "people": 1}})
    cfg = _bad_project(tmp_path, [good])
    data = yaml.safe_load(cfg.read_text())
    data["task"]["labels"] = ["a", "b"]
    cfg.write_text(yaml.safe_dump(data))
    assert main(["validate", str(cfg)]) == 2
    assert "labels do not apply to extraction" in capsys.readouterr().err


def test_gate_works_on_extraction_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strategies = [{"name": "constrained", "type": "zero_shot", "model": "fake"}]
    with FakeOpenAI(responder=_responder) as server:
        cfg = _project(tmp_path, server.base_url, strategies)
        assert main(["run", str(cfg), "--out", str(tmp_path / "a"), "--no-cache"]) == 0
        assert main(["run", str(cfg), "--out", str(tmp_path / "b"), "--no-cache"]) == 0
    baseline = tmp_path / "baseline.json"
    assert main(["gate", str(tmp_path / "a"), "--baseline", str(baseline), "--update-baseline"]) == 0
    assert main(["gate", str(tmp_path / "b"), "--baseline", str(baseline)]) == 0
    assert "constrained" in (tmp_path / "b" / "gate.md").read_text()


def test_openai_fine_tuning_data_for_extraction_is_canonical_json(tmp_path: Path) -> None:
    strategies = [{"name": "ft", "type": "fine_tuned", "model": "fake",
                   "fine_tuned_model": {"name": "extract-ft", "train_if_missing": False}}]
    with FakeOpenAI(responder=_responder) as server:
        cfg = _project(tmp_path, server.base_url, strategies)
        data = yaml.safe_load(cfg.read_text())
        data["finetune"] = {"validation_fraction": 0, "poll_interval": 0.01}
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        assert main(["finetune", str(cfg), "--out", str(tmp_path / "ft"), "--yes"]) == 0
        assert server.job_creates == 1
        uploaded = next(iter(server.files.values())).decode()
    rows = [json.loads(line) for line in uploaded.splitlines()]
    assert len(rows) == len(TRAIN)
    for row in rows:
        answer = row["messages"][-1]["content"]
        assert list(json.loads(answer)) == ["name", "people"]
        assert "Labels" not in row["messages"][0]["content"]
