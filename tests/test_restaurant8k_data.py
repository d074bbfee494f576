"""The committed Restaurant-8k files (datasets/restaurant8k/) and the converter that writes them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

FOLDER = Path(__file__).resolve().parent.parent / "datasets" / "restaurant8k"
SOURCE = Path("/work/shared/datasets/restaurant8k")
SLOTS = ["people", "date", "time", "first_name", "last_name"]
COUNTS = {"test": 3731, "train": 8198, "quickstart_test": 60, "quickstart_train": 200}


def _rows(name: str) -> list[dict[str, Any]]:
    lines = (FOLDER / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _pattern(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(s for s in SLOTS if row["slots"][s] is not None)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restaurant8k_build", FOLDER / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_keys_and_ids(name: str) -> None:
    rows = _rows(name)
    assert len(rows) == COUNTS[name]
    for row in rows:
        assert list(row) == ["id", "text", "requested", "slots"]
        assert isinstance(row["text"], str) and row["text"].strip()
        assert isinstance(row["requested"], str)
        assert list(row["slots"]) == SLOTS
    assert len({r["id"] for r in rows}) == len(rows)
    if not name.startswith("quickstart"):
        assert [r["id"] for r in rows] == [f"{name}-{i}" for i in range(len(rows))]


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_slots_valid_against_schema_and_spans_in_text(name: str) -> None:
    schema = json.loads((FOLDER / "schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for row in _rows(name):
        errors = [e.message for e in validator.iter_errors(row["slots"])]
        assert not errors, (row["id"], errors)
        for value in row["slots"].values():
            assert value is None or (value and value in row["text"]), row["id"]


def test_schema_shape() -> None:
    schema = json.loads((FOLDER / "schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == SLOTS
    assert schema["properties"] == {s: {"type": ["string", "null"]} for s in SLOTS}
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({"people": "2"})  # missing keys
    assert not validator.is_valid({**dict.fromkeys(SLOTS), "cuisine": None})
    assert not validator.is_valid({**dict.fromkeys(SLOTS), "people": 2})


def test_requested_is_canonical() -> None:
    for name in ("test", "train"):
        for row in _rows(name):
            names = row["requested"].split(",") if row["requested"] else []
            assert names == [s for s in SLOTS if s in names], row["id"]


def test_quickstart_rows_come_from_their_full_files() -> None:
    for split in ("test", "train"):
        full = {r["id"]: r for r in _rows(split)}
        for row in _rows(f"quickstart_{split}"):
            assert full[row["id"]] == row


def test_quickstart_files_share_no_text_and_repeat_none() -> None:
    test = [_norm(r["text"]) for r in _rows("quickstart_test")]
    train = [_norm(r["text"]) for r in _rows("quickstart_train")]
    assert len(set(test)) == len(test) and len(set(train)) == len(train)
    assert not set(test) & set(train)


@pytest.mark.parametrize("split", ["test", "train"])
def test_quickstart_is_stratified_on_slot_pattern(split: str) -> None:
    full = Counter(_pattern(r) for r in _rows(split))
    quick = Counter(_pattern(r) for r in _rows(f"quickstart_{split}"))
    n_full, n_quick = sum(full.values()), sum(quick.values())
    assert () in quick  # the all-null pattern
    for pattern, count in full.items():
        if count >= 0.05 * n_full:
            assert pattern in quick, pattern
            # proportional allocation (over distinct texts): share within 2 points of the full file's
            assert abs(quick[pattern] / n_quick - count / n_full) <= 0.02, pattern
    assert set(quick) <= set(full)


@pytest.mark.skipif(not SOURCE.is_dir(), reason="Restaurant-8k source files not on this machine")
def test_build_reproduces_committed_files(tmp_path: Path) -> None:
    _build_module().build(SOURCE, tmp_path)
    for name in [*(f"{n}.jsonl" for n in COUNTS), "schema.json"]:
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), name


def _write_source(folder: Path, test: list[Any]) -> None:
    folder.mkdir()
    (folder / "test.json").write_text(json.dumps(test), encoding="utf-8")
    train = [{"userInput": {"text": f"for {i} people"}} for i in range(256)]
    for i in range(9):
        (folder / f"train_{i}.json").write_text(json.dumps(train[: len(train) >> i]), encoding="utf-8")


def test_build_handles_other_shapes(tmp_path: Path) -> None:
    test = [
        {"userInput": {"text": "4 people at 7pm"}, "context": {"requestedSlots": ["time", "people", "time"]},
         "labels": [{"slot": "people", "valueSpan": {"endIndex": 8}},
                    {"slot": "time", "valueSpan": {"startIndex": 12, "endIndex": 15}},
                    {"slot": "people", "valueSpan": {"startIndex": 0, "endIndex": 1}},
                    {"slot": "cuisine", "valueSpan": {"startIndex": 0, "endIndex": 1}}]},
    ] + [{"userInput": {"text": f"hello {i}"}} for i in range(60)]
    _write_source(tmp_path / "src", test)
    stats = _build_module().build(tmp_path / "src", tmp_path / "out")
    first = json.loads((tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["requested"] == "people,time"
    assert first["slots"] == {"people": "4 people", "date": None, "time": "7pm",
                              "first_name": None, "last_name": None}
    assert stats.other_slots == {"cuisine": 1}
    assert stats.duplicate_slot_examples == {"test": 1}
    assert stats.repeated_requests == {"test": 1}


def test_build_stops_on_label_without_span(tmp_path: Path) -> None:
    _write_source(tmp_path / "src", [{"userInput": {"text": "hi"}, "labels": [{"slot": "people"}]}])
    with pytest.raises(SystemExit, match=r"test\.json\[0\] labels\[0\].*no valueSpan"):
        _build_module().build(tmp_path / "src", tmp_path / "out")


def test_build_stops_when_train_subsets_are_not_prefixes(tmp_path: Path) -> None:
    _write_source(tmp_path / "src", [{"userInput": {"text": "hi"}}])
    (tmp_path / "src" / "train_8.json").write_text(json.dumps([{"userInput": {"text": "new"}}]))
    with pytest.raises(SystemExit, match=r"train_8\.json: is not a prefix"):
        _build_module().build(tmp_path / "src", tmp_path / "out")
