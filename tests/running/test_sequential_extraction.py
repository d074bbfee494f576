"""Sequential evaluation of an extraction task whose verdict is decided on field F1 under a
schema-compliance floor (issue 26, item 2): the looks score each answer's own field F1, the
floor is settled per arm like any other comparison, and the run stops once both are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main

FT = "ft:fake-model:extract"
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "people": {"type": ["integer", "null"]}},
    "required": ["name", "people"],
    "additionalProperties": False,
}
NAMES = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal"]


def _u(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16 ** 8


def _gold(i: int) -> dict[str, Any]:
    return {"name": NAMES[i % len(NAMES)], "people": 1 + i % 7}


def _responder(body: dict[str, Any], breaks: float) -> str:
    """The fine-tuned model answers in the schema and right 95% of the time; the base model
    breaks the schema on the share `breaks` of the messages (a string for `people`)."""
    text = last_user_content(body)
    i = int(text.split("#")[1])
    gold = _gold(i)
    if body["model"] == FT:
        return json.dumps(gold if _u(text) < 0.95 else {**gold, "people": 99})
    if _u("base" + text) < breaks:
        return json.dumps({"name": gold["name"], "people": str(gold["people"])})
    return json.dumps(gold if _u(text) < 0.7 else {"name": None, "people": gold["people"]})


def _project(tmp: Path, base_url: str) -> Path:
    with open(tmp / "eval.jsonl", "w") as f:
        for i in range(400):
            f.write(json.dumps({"text": f"Booking #{i}", "slots": _gold(i)}) + "\n")
    (tmp / "schema.json").write_text(json.dumps(SCHEMA))
    cfg = {
        "name": "extract-seq",
        "task": {"type": "extraction", "instructions": "Extract the booking.",
                 "output_schema": "schema.json"},
        "dataset": {"eval": "eval.jsonl", "input": "text", "target": "slots"},
        "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                            "api_key_env": "TEST_API_KEY"}},
        "strategies": [
            {"name": "zero-shot", "type": "zero_shot", "model": "fake",
             "structured_output": "none"},
            {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": FT},
        ],
        "decision": {"metric": "field_f1", "min_schema_compliance": 0.8},
        "run": {"concurrency": 4, "max_attempts": 1,
                "sequential": {"enabled": True, "look_every": 25, "min_examples": 50}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run(tmp_path: Path, breaks: float) -> tuple[Path, int]:
    with FakeOpenAI(responder=lambda body: _responder(body, breaks)) as server:
        cfg = _project(tmp_path, server.base_url)
        run = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(run), "--no-cache"]) == 0
        return run, len(server.requests)


def test_field_f1_and_the_floor_settle_a_sequential_extraction_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    run, requests = _run(tmp_path, breaks=0.02)
    assert requests < 600  # of 800 available
    summary = json.loads((run / "summary.json").read_text())
    seq = summary["sequential"]
    assert seq["settled"] is True and seq["family"] == 1 + 2
    floors = {c["first"]: c["state"] for c in seq["comparisons"] if c["kind"] == "compliance"}
    assert floors["ft"] == "above"
    fine = next(c for c in seq["comparisons"] if c["kind"] == "fine_tune")
    assert fine["state"] == "better"
    # the looks score each answer's own field F1: a right answer 1, one with `name` null 2/3
    # (one of two fields found, nothing wrong given), one breaking the schema 0, one with
    # `people` wrong 1/2. Expected: ft 0.95 + 0.05 / 2 = 0.975, base 0.98 (0.7 + 0.3 * 2/3)
    # = 0.882, a difference of 0.093 (on accuracy it would be 0.95 - 0.686 = 0.26)
    assert 0.04 < fine["estimate"] < 0.16
    assert summary["recommendation"]["verdict"] == "fine_tune"
    assert main(["report", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["sequential"] == seq


def test_a_prompt_far_below_the_floor_settles_for_format(tmp_path, monkeypatch):
    """A base model breaking the schema on half of its answers: the fine-tune settles above
    the floor and better than it after the first looks, "fine-tune for format"."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    run, requests = _run(tmp_path, breaks=0.5)
    summary = json.loads((run / "summary.json").read_text())
    seq = summary["sequential"]
    floors = {c["first"]: c["state"] for c in seq["comparisons"] if c["kind"] == "compliance"}
    assert floors["ft"] == "above" and floors["zero-shot"] != "above"
    assert seq["settled"] is True and requests < 300
    assert summary["recommendation"]["verdict"] == "fine_tune"
    assert "Fine-tune for format" in summary["recommendation"]["sentence"]
