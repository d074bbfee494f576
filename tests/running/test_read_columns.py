"""`read_columns`: the records of a run as columns, exactly what read_records reads, refusing
exactly what it refuses (with its message)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from run_helpers import FIXTURE_RUNS

from harness.errors import InputError
from harness.running.store import RECORD_FIELDS, read_columns, read_records, record_columns

ROOT = Path(__file__).resolve().parents[2]


def _line(**overrides: Any) -> str:
    rec: dict[str, Any] = {
        "arm": "zero-shot|k=0|draw=0", "strategy": "zero-shot", "type": "zero_shot",
        "model": "fake", "model_id": "fake-model", "k": 0, "draw": 0, "example_id": "1",
        "input": "hi", "expected": "billing", "prediction": "billing", "correct": True,
        "parse_ok": True, "schema_valid": True, "error_kind": None, "error": None,
        "output": '{"label": "billing"}', "finish_reason": "stop", "prompt_tokens": 5,
        "completion_tokens": 2, "cached_tokens": 0, "latency_ms": 3.5, "attempts": 1,
        "cached": False, "prompt_sha256": "abc", "format_version": 2}
    rec.update(overrides)
    for key in [k for k, v in overrides.items() if v is ...]:
        del rec[key]
    return json.dumps(rec) + "\n"


def _run(tmp_path: Path, *lines: str) -> Path:
    (tmp_path / "results.jsonl").write_text("".join(lines), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("name", ["complete", "interrupted", "version1"])
def test_columns_are_the_records_of_every_fixture(name: str) -> None:
    cols = read_columns(FIXTURE_RUNS / name)
    assert list(cols) == list(RECORD_FIELDS)
    assert cols == record_columns(read_records(FIXTURE_RUNS / name))


def test_the_example_report_reads_the_same_both_ways() -> None:
    example = ROOT / "reports" / "example"
    assert read_columns(example) == record_columns(read_records(example))


def test_last_write_wins_in_the_place_of_the_first(tmp_path: Path) -> None:
    run = _run(tmp_path, _line(example_id="1", prediction="x"), _line(example_id=2),
               _line(example_id="1", prediction="y"), "\n", _line(example_id="3")[:-1])
    cols = read_columns(run)
    assert cols["example_id"] == ["1", "2"]  # ids as text; the cut-off last line ignored
    assert cols["prediction"] == ["y", "billing"]
    assert cols == record_columns(read_records(run))


def test_defaults_of_old_records_are_filled_as_from_dict_fills_them(tmp_path: Path) -> None:
    run = _run(tmp_path, _line(format_version=..., output=None), _line(example_id="2", output=...),
               _line(example_id="3", lenient=True, calls=[{"n": 1}, {"n": 2}]))
    cols = read_columns(run)
    assert cols["format_version"] == [1, 2, 2]
    assert cols["output"] == ["", "", '{"label": "billing"}']
    assert cols["lenient"] == [False, False, True]
    assert cols["calls"] == [(), (), ({"n": 1}, {"n": 2})]
    assert cols == record_columns(read_records(run))


@pytest.mark.parametrize("bad", [
    "not json\n", "[1, 2]\n", _line(k="0"), _line(correct=1), _line(k=True),
    _line(format_version=3), _line(format_version=None), _line(strategy=...), _line(arm=[1]),
    _line(calls=5), "   \n",
])
def test_a_bad_line_is_refused_with_read_records_own_message(tmp_path: Path, bad: str) -> None:
    run = _run(tmp_path, _line(), bad, _line(example_id="9"))
    try:
        expected: Any = record_columns(read_records(run))
    except InputError as exc:
        with pytest.raises(InputError) as got:
            read_columns(run)
        assert str(got.value) == str(exc) and "line 2" in str(exc)
    else:  # read_records accepts it (a blank line, calls of any truthy iterable): so do columns
        assert read_columns(run) == expected


def test_a_bad_line_a_later_line_overwrites_is_still_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, _line(k="zero"), _line(k=0))
    with pytest.raises(InputError, match="line 1"):
        read_columns(run)


def test_no_results_file_is_no_columns(tmp_path: Path) -> None:
    assert read_columns(tmp_path) == {name: [] for name in RECORD_FIELDS}
    shutil.copy(FIXTURE_RUNS / "complete" / "run.json", tmp_path / "run.json")
    (tmp_path / "results.jsonl").write_text("")
    assert read_columns(tmp_path) == {name: [] for name in RECORD_FIELDS}
