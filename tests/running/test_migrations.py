"""running.migrations: older run folders brought to the current layout on read, current folders
round-tripping, and the typed config RunMeta keeps agreeing with the raw config it stores."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from run_helpers import FIXTURE_RUNS

from harness.config import Price
from harness.config.cascade import CascadeConfig
from harness.config.recorded import RecordedConfig, RecordedStrategy, recorded_config
from harness.errors import InputError
from harness.model.registry import FineTune
from harness.running.migrations import (
    FORMAT_VERSION,
    RECORD_DEFAULTS,
    migrate_meta,
    migrate_price,
    migrate_record,
)
from harness.running.records import Record, RunMeta, fine_tune_from
from harness.running.store import (
    read_columns,
    read_meta,
    read_records,
    record_columns,
    write_meta,
)
from harness.running.verify import meta_task

V1 = FIXTURE_RUNS / "version1"
COMPLETE = FIXTURE_RUNS / "complete"


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _lines(run: Path) -> list[dict[str, Any]]:
    text = (run / "results.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True)
            if line.endswith("\n") and line.strip()]


def _entry(**overrides: Any) -> FineTune:
    fields: dict[str, Any] = dict(
        name="router", model_id="ft:fake-model:acme:router:1", provider="openai",
        base_model="fake-model", data_sha256="ab" * 32, hyperparameters={"epochs": 3},
        trained_tokens=12_000, training_cost_usd=None, created_at="2026-01-01T00:00:00+00:00",
        key="cd" * 32, extra={"steps": 4}, rule=2, recipe="ef" * 32)
    fields.update(overrides)
    return FineTune(**fields)


# --------------------------------------------------------------------------- version 1


def test_version_1_run_json_gains_only_what_version_1_lacked() -> None:
    raw = _json(V1 / "run.json")
    assert "format_version" not in raw and "task_type" not in raw
    migrated = migrate_meta(raw)
    assert migrated == {**raw, "format_version": 1, "task_type": "classification"}
    assert "format_version" not in raw  # the input is left as it was
    assert RunMeta.from_dict(raw) == RunMeta.from_dict(migrated) == read_meta(V1)


def test_version_1_run_json_reads_as_before() -> None:
    raw = _json(V1 / "run.json")
    meta = read_meta(V1)
    assert meta.format_version == 1 and meta.task_type == "classification"
    assert meta.config_raw == raw["config"]["raw"]
    assert meta.models["local"].price is None and meta.models["local"].n_ctx == 4096
    d = meta.to_dict()
    assert d["format_version"] == 1  # a rewritten version-1 run.json still says so
    # the fine-tune entry: the registry's type, every stored field kept, the fields the
    # registry added since (rule, recipe) at the registry's defaults
    entry = meta.fine_tunes["fine-tuned"]
    assert isinstance(entry, FineTune)
    stored = raw["fine_tunes"]["fine-tuned"]
    assert d["fine_tunes"]["fine-tuned"] == {**stored, "rule": 1, "recipe": ""}
    assert (entry.model_id, entry.trained_tokens, entry.training_cost_usd, entry.key) == (
        "local-ft:quickstart", 8621, 0.0, stored["key"])
    assert RunMeta.from_dict(json.loads(json.dumps(d))) == meta


@pytest.mark.parametrize(("old", "new"), [
    ({"input": 0.15, "cached_input": 0.075, "output": 0.6, "training": 3.0},
     Price(0.15, 0.075, 0.6, 3.0)),
    ({"input": 2.5, "output": 10.0}, Price(2.5, 2.5, 10.0, None)),  # no cached: the input price
    ({"input": 1.0, "cached_input": None, "output": 4.0, "training": None},
     Price(1.0, 1.0, 4.0, None)),
])
def test_version_1_prices_migrate_to_the_current_keys(old: dict[str, Any], new: Price) -> None:
    raw = _json(V1 / "run.json")
    raw["models"]["local"]["price"] = old
    migrated = migrate_meta(raw)
    assert migrated["models"]["local"]["price"] == migrate_price(old)
    assert set(migrate_price(old)) == {"input_per_m", "cached_input_per_m", "output_per_m",
                                       "training_per_m"}
    assert RunMeta.from_dict(raw).models["local"].price == new
    assert raw["models"]["local"]["price"] == old  # the input is left as it was


def test_a_current_price_is_no_version_1_price() -> None:
    current = {"input_per_m": 1.0, "cached_input_per_m": 0.5, "output_per_m": 2.0,
               "training_per_m": None, "batch_share": 0.5}
    assert migrate_price(current) == current
    raw = _json(COMPLETE / "run.json")
    raw["models"]["fake"]["price"] = current
    assert migrate_meta(raw) == raw  # a version-2 run.json is already current
    assert RunMeta.from_dict(raw).models["fake"].price == Price(1.0, 0.5, 2.0, None, 0.5)


def test_version_1_records_read_as_before() -> None:
    lines = _lines(V1)
    assert lines and all("format_version" not in line for line in lines)
    for line in lines:
        assert migrate_record(line) == {**line, "format_version": 1}
        assert Record.from_dict(line).to_dict() == {**line, "format_version": 1}
    records = read_records(V1)
    assert {r.format_version for r in records} == {1}
    assert read_columns(V1) == record_columns(records)  # the column reader fills the same
    assert RECORD_DEFAULTS == {"format_version": 1}


@pytest.mark.parametrize(("version", "words"), [
    (FORMAT_VERSION + 1, "newer than this harness reads"),
    (0, "not a version"),
    ("2", "not int"),
    (True, "not int"),
    (None, "not int"),
])
def test_an_unreadable_version_is_refused(tmp_path: Path, version: Any, words: str) -> None:
    line = {**_lines(COMPLETE)[0], "format_version": version}
    with pytest.raises(ValueError, match=words):
        migrate_record(line)
    raw = {**_json(COMPLETE / "run.json"), "format_version": version}
    with pytest.raises(ValueError, match=words):
        migrate_meta(raw)
    run = shutil.copytree(COMPLETE, tmp_path / "run")
    (run / "run.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(InputError, match="unreadable run metadata"):
        read_meta(run)
    (run / "results.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        read_records(run)


# --------------------------------------------------------------------------- current folders


def test_a_current_folder_round_trips(tmp_path: Path) -> None:
    meta = read_meta(COMPLETE)
    raw = dict(meta.config_raw)
    raw["strategies"] = [*raw["strategies"], {"name": "route", "type": "cascade",
                                              "primary": "zero-shot", "fallback": "fine-tuned",
                                              "thresholds": [0.9, 0.5]}]
    meta = dataclasses.replace(meta, config_raw=raw, fine_tunes={"fine-tuned": _entry()},
                               clusters=tuple("ab"[i % 2] for i in range(len(meta.examples))))
    write_meta(tmp_path, meta)
    stored = _json(tmp_path / "run.json")
    # the same JSON layout as before: the raw config under config.raw, entries as mappings
    assert set(stored) == set(_json(COMPLETE / "run.json")) | {"clusters"}
    assert stored["format_version"] == FORMAT_VERSION
    assert stored["config"]["raw"] == raw
    assert stored["fine_tunes"] == {"fine-tuned": dataclasses.asdict(_entry())}
    back = read_meta(tmp_path)
    assert back == meta
    assert back.fine_tunes == {"fine-tuned": _entry()}
    assert back.config.cascades == (CascadeConfig("route", "zero-shot", "fine-tuned", (0.5, 0.9)),)
    shutil.copy(COMPLETE / "results.jsonl", tmp_path / "results.jsonl")
    records = read_records(tmp_path)
    assert records == read_records(COMPLETE)
    assert [r.to_dict() for r in records] == [Record.from_dict(r.to_dict()).to_dict()
                                              for r in records]


def test_a_partial_fine_tune_mapping_reads_as_an_entry() -> None:
    meta = dataclasses.replace(read_meta(COMPLETE),
                               fine_tunes={"fine-tuned": {"training_cost_usd": 0.5}})
    entry = meta.fine_tunes["fine-tuned"]
    assert isinstance(entry, FineTune)
    assert (entry.training_cost_usd, entry.trained_tokens, entry.model_id) == (0.5, None, "")
    assert fine_tune_from(entry) is entry
    assert fine_tune_from({**dataclasses.asdict(_entry()), "future": 1}) == _entry()


# --------------------------------------------------------------------------- typed config


@pytest.mark.parametrize("run", [COMPLETE, FIXTURE_RUNS / "interrupted", V1])
def test_the_typed_config_is_what_config_raw_says(run: Path) -> None:
    meta = read_meta(run)
    raw = meta.config_raw
    assert meta.config == recorded_config(raw)
    assert meta.config.name == raw["name"] and meta.config.task_type == raw["task"]["type"]
    assert meta.config.cluster == raw["dataset"].get("cluster")
    assert dict(meta.config.match) == (raw["task"].get("match") or {})
    strategies = [s for s in raw["strategies"] if s["type"] != "cascade"]
    assert [(s.name, s.type, s.model) for s in meta.config.strategies] == [
        (s["name"], s["type"], s["model"]) for s in strategies]
    for s in strategies:
        ft = s.get("fine_tuned_model")
        name = ft.get("name") if isinstance(ft, dict) else ft
        cost = ft.get("training_cost_usd") if isinstance(ft, dict) else None
        typed = meta.config.strategy(s["name"])
        assert typed is not None and typed.fine_tuned_model == name
        assert meta.config.training_cost_usd(s["name"]) == cost
    assert meta.config.cascades == ()


def test_every_typed_value_follows_the_raw_config() -> None:
    raw: dict[str, Any] = {
        "name": "claims",
        "task": {"type": "extraction", "instructions": "x", "output_schema": "schema.json",
                 "match": {"amount": "number", "tags": "set"}},
        "dataset": {"eval": "eval.csv", "input": "text", "target_fields": {"amount": "a"},
                    "cluster": "customer"},
        "models": {"m": {"provider": "openai", "model": "gpt"}},
        "strategies": [
            {"name": "zs", "type": "zero_shot", "model": "m", "confidence": "logprob"},
            {"name": "ft", "type": "fine_tuned", "model": "m",
             "fine_tuned_model": {"name": "claims-ft", "train_if_missing": True,
                                  "training_cost_usd": 12}},
            {"name": "ft-raw", "type": "fine_tuned", "model": "m",
             "fine_tuned_model": "ft:gpt:acme:claims:1"},
            {"name": "route", "type": "cascade", "primary": "zs", "fallback": "ft"},
        ],
    }
    got = recorded_config(raw)  # (schema.json is never read: no file is touched)
    assert got == RecordedConfig(
        name="claims", task_type="extraction", match={"amount": "number", "tags": "set"},
        cluster="customer",
        strategies=(RecordedStrategy("zs", "zero_shot", "m"),
                    RecordedStrategy("ft", "fine_tuned", "m", "claims-ft", True, 12.0),
                    RecordedStrategy("ft-raw", "fine_tuned", "m", "ft:gpt:acme:claims:1")),
        cascades=(CascadeConfig("route", "zs", "ft", None),))
    assert got.training_cost_usd("ft") == 12.0 and got.training_cost_usd("nope") is None
    assert got.strategy("route") is None  # a cascade is no strategy with a model


def test_the_typed_config_is_rebuilt_with_config_raw() -> None:
    meta = read_meta(COMPLETE)
    raw = {**meta.config_raw, "dataset": {**meta.config_raw["dataset"], "cluster": "thread"},
           "task": {**meta.config_raw["task"], "match": {"label": "normalized"}}}
    changed = dataclasses.replace(meta, config_raw=raw)
    assert (changed.config.cluster, dict(changed.config.match)) == ("thread", {"label": "normalized"})
    assert meta.config.cluster is None and dict(meta.config.match) == {}
    with pytest.raises(ValueError, match="init=False"):  # derived only, never given
        dataclasses.replace(meta, config=changed.config)
    assert meta_task(meta).name == "classification"


@pytest.mark.parametrize("broken", [
    {"task": "classification", "dataset": [], "strategies": {"x": 1}},
    {"strategies": ["zero-shot", {"name": "ft", "type": "fine_tuned", "model": "m",
                                  "fine_tuned_model": ["not", "a", "mapping"]}]},
    {},
])
def test_a_misshapen_raw_config_reads_as_absent_values(broken: dict[str, Any]) -> None:
    got = recorded_config(broken)
    assert got.cluster is None and dict(got.match) == {} and got.cascades == ()
    assert all(s.training_cost_usd is None for s in got.strategies)
