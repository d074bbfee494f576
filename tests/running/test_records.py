"""Typed, versioned records: `Record` and `RunMeta` to and from their JSON form, old folders included."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from harness.config import DecisionConfig, GateConfig, ModelConfig, Price, RunConfig
from harness.config.recorded import RecordedConfig
from harness.model.registry import FineTune
from harness.running import FORMAT_VERSION, ArmMeta, DatasetMeta, Record, RunMeta
from harness.running.store import read_meta, read_records
from harness.tasks.classification import ClassificationTask

ROOT = Path(__file__).resolve().parents[2]
# the quickstart run as harness first committed it (format version 1: reports/example before
# scripts/refresh_examples.py made it again with format version 2)
EXAMPLE = ROOT / "tests" / "fixtures" / "runs" / "example-v1"
LABELS = ("billing", "shipping", "returns", "account")


def _record(**overrides: Any) -> Record:
    """An answered, correct record; `overrides` replace any field."""
    fields: dict[str, Any] = dict(
        arm="zero-shot|k=0|draw=0", strategy="zero-shot", type="zero_shot", model="fake",
        model_id="fake-model", k=0, draw=0, example_id="7", input="My card was charged twice",
        expected="billing", prediction="billing", correct=True, parse_ok=True, schema_valid=True,
        error_kind=None, error=None, output='{"label": "billing"}', finish_reason="stop",
        prompt_tokens=40, completion_tokens=6, cached_tokens=None, latency_ms=12.5, attempts=1,
        cached=False, prompt_sha256="53f851889caa5ea3",
    )
    fields.update(overrides)
    return Record(**fields)


# --------------------------------------------------------------------------- Record


def test_record_round_trips_through_its_json_form() -> None:
    rec = _record()
    d = rec.to_dict()
    assert d["format_version"] == FORMAT_VERSION == 2
    assert Record.from_dict(json.loads(json.dumps(d))) == rec
    assert rec.key == ("zero-shot|k=0|draw=0", "7")


def test_calls_are_written_only_when_there_were_several() -> None:
    single = _record()
    assert "calls" not in single.to_dict()
    calls = ({"model_id": "fake-model", "content": '{"label": "billing"}', "attempts": 1},
             {"model_id": "judge", "content": '{"label": "billing"}', "attempts": 2})
    multi = _record(calls=calls, attempts=3)
    d = json.loads(json.dumps(multi.to_dict()))
    assert d["calls"] == [dict(c) for c in calls]
    back = Record.from_dict(d)
    assert back == multi and isinstance(back.calls, tuple)


def test_a_version_1_record_reads_as_version_1() -> None:
    """Folders written before records carried a version: no format_version, output present."""
    d = _record().to_dict()
    del d["format_version"]
    d["example_id"] = 7  # version 1 could hold numeric ids
    rec = Record.from_dict(d)
    assert rec.format_version == 1
    assert rec.example_id == "7" and rec.output == '{"label": "billing"}' and rec.calls == ()
    assert dataclasses.replace(rec, format_version=FORMAT_VERSION) == _record()
    assert Record.from_dict({**d, "output": None}).output == ""


def test_the_committed_version_1_results_read_as_records() -> None:
    records = read_records(EXAMPLE)
    lines = (EXAMPLE / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(records) == len(lines) > 0
    assert {r.format_version for r in records} == {1}
    first = json.loads(lines[0])
    assert records[0].to_dict() == {**first, "format_version": 1}


def test_rescored_rederives_the_answer_from_the_output() -> None:
    task = ClassificationTask(LABELS)
    # stored with a stale verdict (as an old scoring bug might have left it)
    stale = _record(output='{"label": "shipping"}', prediction="billing", correct=True)
    again = stale.rescored(task)
    assert (again.prediction, again.correct, again.parse_ok, again.schema_valid) == \
        ("shipping", False, True, True)
    assert again.error_kind is None and again.output == stale.output
    assert dataclasses.replace(again, prediction="billing", correct=True) == stale  # nothing else

    fixed = _record(output='{"label": "billing"}', prediction=None, correct=False, parse_ok=False,
                    schema_valid=False, error_kind="invalid_json", error="stale").rescored(task)
    assert (fixed.prediction, fixed.correct, fixed.parse_ok, fixed.schema_valid) == \
        ("billing", True, True, True)
    assert fixed.error_kind is None and fixed.error is None

    bad = _record(output="not json", prediction="billing", correct=True).rescored(task)
    assert bad.prediction is None and bad.correct is False and bad.error_kind == "invalid_json"


@pytest.mark.parametrize("kind", ["context_length", "retries_exhausted:http_500", "model_unavailable",
                                  "timeout", "refusal"])
def test_rescored_leaves_request_failures_unchanged(kind: str) -> None:
    failed = _record(output="", prediction=None, correct=False, parse_ok=False, schema_valid=False,
                     error_kind=kind, error="the request failed", finish_reason=None)
    assert failed.request_failed
    assert failed.rescored(ClassificationTask(LABELS)) is failed


# --------------------------------------------------------------------------- RunMeta


def test_the_committed_version_1_run_json_gives_typed_fields() -> None:
    raw = json.loads((EXAMPLE / "run.json").read_text(encoding="utf-8"))
    assert "format_version" not in raw and "task_type" not in raw
    meta = RunMeta.from_dict(raw)
    assert meta == read_meta(EXAMPLE)
    assert meta.format_version == 1 and meta.task_type == "classification"
    assert meta.name == raw["name"] and meta.status == "complete"
    assert meta.config_sha256 == raw["config"]["sha256"] and meta.config_raw == raw["config"]["raw"]
    assert isinstance(meta.config, RecordedConfig) and meta.config.name == raw["config"]["raw"]["name"]
    entry = meta.fine_tunes["fine-tuned"]
    assert isinstance(entry, FineTune)
    assert entry.model_id == raw["fine_tunes"]["fine-tuned"]["model_id"]

    assert isinstance(meta.dataset, DatasetMeta)
    assert (meta.dataset.n_eval, meta.dataset.train_pool, meta.dataset.limit) == (48, 150, None)
    assert meta.dataset.sha256 == raw["dataset"]["sha256"]
    assert meta.examples == tuple(str(e) for e in raw["examples"]) and len(meta.examples) == 48
    assert meta.labels == tuple(raw["labels"])

    assert all(isinstance(a, ArmMeta) for a in meta.arms)
    assert [a.key for a in meta.arms] == [a["key"] for a in raw["arms"]]
    zero = meta.arm("zero-shot|k=0|draw=0")
    assert zero.k == 0 and zero.shots == () and zero.provider == "local" and zero.unavailable is None
    assert all(isinstance(a.shots, tuple) and len(a.shots) == a.k for a in meta.arms)
    assert meta.expected_records == len(meta.arms) * 48 == len(read_records(EXAMPLE))

    assert isinstance(meta.decision, DecisionConfig) and meta.decision.min_gain == 0.02
    assert meta.decision.bootstrap == 2000
    assert isinstance(meta.run, RunConfig) and meta.run.max_tokens == 32
    assert isinstance(meta.gate, GateConfig) and meta.gate.min_accuracy is None
    model = meta.models["local"]
    assert isinstance(model, ModelConfig)
    assert (model.provider, model.model, model.n_ctx) == ("local", "smollm2-135m-instruct", 4096)
    assert model.price is None  # the example has no price block


def test_run_meta_round_trips_through_its_json_form() -> None:
    meta = read_meta(EXAMPLE)
    d = json.loads(json.dumps(meta.to_dict()))
    assert RunMeta.from_dict(d) == meta
    assert d["format_version"] == 1  # a version-1 folder keeps saying so
    new = dataclasses.replace(meta, format_version=FORMAT_VERSION, models={
        "api": dataclasses.replace(meta.models["local"], name="api", provider="openai",
                                   price=Price(0.15, 0.075, 0.6, 3.0))})
    d = json.loads(json.dumps(new.to_dict()))
    assert d["format_version"] == 2 and d["task_type"] == "classification"
    assert d["models"]["api"]["price"] == {"input_per_m": 0.15, "cached_input_per_m": 0.075,
                                           "output_per_m": 0.6, "training_per_m": 3.0,
                                           "batch_share": 0.5}
    assert RunMeta.from_dict(d) == new


@pytest.mark.parametrize(("old", "price"), [
    ({"input": 0.15, "cached_input": 0.075, "output": 0.6, "training": 3.0}, Price(0.15, 0.075, 0.6, 3.0)),
    ({"input": 2.5, "output": 10.0}, Price(2.5, 2.5, 10.0, None)),  # no cached price: the input one
    ({"input": 1.0, "cached_input": None, "output": 4.0, "training": None}, Price(1.0, 1.0, 4.0, None)),
])
def test_version_1_price_keys_map_to_price(old: dict[str, Any], price: Price) -> None:
    raw = json.loads((EXAMPLE / "run.json").read_text(encoding="utf-8"))
    raw["models"]["local"]["price"] = old
    assert RunMeta.from_dict(raw).models["local"].price == price


def test_run_json_names_the_commit_of_the_code_that_made_it(make_config, tmp_path, monkeypatch):
    """In a git work tree (this checkout, CI's clone) run.json's versions name harness's own
    commit, "-dirty" when the tree has uncommitted changes (issue 28: example folders name the
    commit that made them)."""
    import json
    import re
    import subprocess

    from fake_openai import FakeOpenAI

    from harness.cli import main
    from harness.running.plan import source_commit

    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=False).stdout.strip()
    if not head:
        pytest.skip("not a git work tree")
    commit = source_commit()
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)
    assert commit.removesuffix("-dirty") == head
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"}])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["versions"]["harness_commit"] == commit
