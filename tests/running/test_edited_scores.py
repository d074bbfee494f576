"""Issue 23, C7: a `correct` in results.jsonl that its own record contradicts (a hand edit, or a
file scored by other code) is refused by every command that reads the scores, naming the file
and line and `--rescore`; `harness report RUN --rescore` rebuilds such a file. Through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content
from run_helpers import FIXTURE_RUNS, read_jsonl

from harness.cli import main
from harness.errors import InputError
from harness.running.store import read_columns

SCHEMA = {"type": "object",
          "properties": {"name": {"type": ["string", "null"]}, "people": {"type": ["integer", "null"]}},
          "required": ["name", "people"], "additionalProperties": False}


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _accuracy(run: Path) -> float:
    return float(json.loads((run / "summary.json").read_text())["arms"][0]["accuracy"])


def _rewrite(run: Path, number: int, **changes: Any) -> None:
    """Change fields of line `number` (1-based) of the run's results.jsonl."""
    path = run / "results.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[number - 1] = json.dumps({**json.loads(lines[number - 1]), **changes}) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _spam_run(tmp: Path) -> Path:
    """A run of a spam/ham classifier whose model always answers ham: 3 of 6 right."""
    (tmp / "eval.csv").write_text("text,category\n" + "".join(
        f"message {i},{'spam' if i % 2 else 'ham'}\n" for i in range(6)))
    (tmp / "train.csv").write_text("text,category\ntrain 1,spam\ntrain 2,ham\n")
    with FakeOpenAI(responder=lambda _body: '{"label": "ham"}') as server:
        cfg = {"name": "spam",
               "task": {"type": "classification", "instructions": "Spam or not?",
                        "labels": ["spam", "ham"]},
               "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text",
                           "target": "category"},
               "models": {"fake": {"provider": "openai", "model": "fake-model",
                                   "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
               "strategies": [{"name": "zs", "type": "zero_shot", "model": "fake"}],
               "run": {"concurrency": 2, "max_attempts": 1}}
        (tmp / "spam.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        assert main(["run", str(tmp / "spam.yaml"), "--out", str(tmp / "run"), "--no-cache"]) == 0
    return tmp / "run"


def test_correct_set_by_hand_is_refused_naming_the_line_and_rescore_rebuilds(tmp_path, capsys):
    run = _spam_run(tmp_path)
    assert _accuracy(run) == pytest.approx(0.5)
    records = read_jsonl(run / "results.jsonl")
    number = next(i for i, r in enumerate(records, start=1) if r["expected"] == "spam")
    assert records[number - 1]["prediction"] == "ham" and records[number - 1]["correct"] is False
    _rewrite(run, number, correct=True)
    edited = (run / "results.jsonl").read_text(encoding="utf-8")
    capsys.readouterr()
    for argv in (["report", str(run)], ["gate", str(run), "--baseline", str(run)]):
        assert main(argv) == 2, argv
        line = _error_line(capsys.readouterr().err)
        assert (f"results.jsonl line {number}: correct is true but prediction 'ham' does not "
                "match expected 'spam'") in line, line
        assert f"harness report {run} --rescore" in line, line
    assert _accuracy(run) == pytest.approx(0.5)  # nothing rebuilt from the edited file

    assert main(["report", str(run), "--rescore"]) == 0  # re-scoring reads past the check
    assert _accuracy(run) == pytest.approx(0.5)
    assert read_jsonl(run / "results.jsonl")[number - 1]["correct"] is False
    assert (run / "results.before-rescore.jsonl").read_text(encoding="utf-8") == edited
    assert main(["report", str(run)]) == 0


def test_a_failure_marked_correct_and_a_right_answer_marked_wrong_are_refused(tmp_path, capsys):
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "run")
    original = (run / "results.jsonl").read_text(encoding="utf-8")
    records = read_jsonl(run / "results.jsonl")
    failed = next(i for i, r in enumerate(records, start=1) if r["error_kind"] == "schema")
    right = next(i for i, r in enumerate(records, start=1) if r["correct"])
    cases = [
        (failed, {"correct": True}, "correct is true but the record is a failure "
                                    "(error_kind 'schema')"),
        (failed, {"correct": True, "error_kind": None, "error": None},
         "correct is true but the answer is not schema-valid"),
        (right, {"correct": False}, f"correct is false but prediction "
                                    f"{records[right - 1]['prediction']!r} matches expected"),
    ]
    for number, changes, words in cases:
        (run / "results.jsonl").write_text(original, encoding="utf-8")
        _rewrite(run, number, **changes)
        capsys.readouterr()
        assert main(["report", str(run)]) == 2, words
        line = _error_line(capsys.readouterr().err)
        assert f"results.jsonl line {number}: {words}" in line, line
        assert "--rescore" in line
        assert main(["report", str(run), "--rescore"]) == 0, words
        assert main(["report", str(run)]) == 0, words
    # the last write of an (arm, example) is the record: an edited line written again is fine
    (run / "results.jsonl").write_text(original, encoding="utf-8")
    _rewrite(run, right, correct=False)
    with open(run / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(original.splitlines(keepends=True)[right - 1])
    assert main(["report", str(run)]) == 0


def _extraction_run(tmp: Path) -> Path:
    gold = [("Table for 4 under Ann", {"name": "Ann", "people": 4}),
            ("Just me, Bob", {"name": "Bob", "people": 1}),
            ("Two for Cy", {"name": "Cy", "people": 2})]
    answers = {"Table for 4 under Ann": '{"name": "ann.", "people": 4}',  # normalized: right
               "Just me, Bob": '{"name": "Bob", "people": 2}',  # people wrong
               "Two for Cy": '{"name": "Cy", "people": 2.0}'}  # a number: right
    for name in ("eval", "train"):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps({"text": t, "slots": g}) + "\n"
                                                   for t, g in gold))
    (tmp / "schema.json").write_text(json.dumps(SCHEMA))
    with FakeOpenAI(responder=lambda body: answers[last_user_content(body)]) as server:
        cfg = {"name": "extract",
               "task": {"type": "extraction", "instructions": "Extract the booking.",
                        "output_schema": "schema.json", "match": {"people": "number"}},
               "dataset": {"eval": "eval.jsonl", "train": "train.jsonl", "input": "text",
                           "target": "slots"},
               "models": {"fake": {"provider": "openai", "model": "fake-model",
                                   "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
               "strategies": [{"name": "zs", "type": "zero_shot", "model": "fake",
                               "structured_output": "none"}],
               "run": {"concurrency": 2, "max_attempts": 1}}
        (tmp / "extract.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        assert main(["run", str(tmp / "extract.yaml"), "--out", str(tmp / "run"),
                     "--no-cache"]) == 0
    return tmp / "run"


def test_extraction_scores_are_checked_by_the_tasks_own_field_rules(tmp_path, capsys):
    run = _extraction_run(tmp_path)
    def scores() -> dict[str, bool]:
        return {r["input"]: r["correct"] for r in read_jsonl(run / "results.jsonl")}

    # normalized text and the number rule make two right; Bob's people are wrong
    assert scores() == {"Table for 4 under Ann": True, "Just me, Bob": False, "Two for Cy": True}
    read_columns(run)  # as the run scored them: nothing to refuse
    records = read_jsonl(run / "results.jsonl")
    number = next(i for i, r in enumerate(records, start=1) if not r["correct"])
    _rewrite(run, number, correct=True)
    with pytest.raises(InputError, match=rf"line {number}: correct is true but prediction "
                                         r'\{"name": "Bob", "people": 2\} does not match'):
        read_columns(run)
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    assert f"results.jsonl line {number}: correct is true" in _error_line(capsys.readouterr().err)
    assert main(["report", str(run), "--rescore"]) == 0
    assert scores() == {"Table for 4 under Ann": True, "Just me, Bob": False, "Two for Cy": True}
