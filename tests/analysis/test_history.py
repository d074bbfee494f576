"""Prompt-version history and its plateau flag."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from run_helpers import FIXTURE_RUNS

from harness.analysis import analyse
from harness.analysis.history import HISTORY, append_history, history_path, read_history, trajectory
from harness.cli import main
from harness.running.store import read_meta, read_records


def _rec(sha, acc, lo, hi, arm="zero-shot"):
    return {
        "arm": arm,
        "prompt_sha256": sha,
        "accuracy": acc,
        "ci_low": lo,
        "ci_high": hi,
        "n": 100,
        "timestamp": "t",
    }


def test_plateau_when_last_versions_sit_inside_best_interval():
    recs = [
        _rec("a", 0.50, 0.40, 0.60),
        _rec("b", 0.70, 0.61, 0.78),
        _rec("c", 0.68, 0.58, 0.77),
        _rec("d", 0.66, 0.56, 0.75),
    ]
    (arm,) = trajectory(recs, window=3)
    assert arm.plateaued and [v["prompt_sha256"] for v in arm.versions] == ["a", "b", "c", "d"]


def test_no_plateau_while_a_recent_version_is_outside():
    recs = [_rec("a", 0.50, 0.40, 0.60), _rec("b", 0.70, 0.61, 0.78), _rec("c", 0.55, 0.45, 0.65)]
    (arm,) = trajectory(recs, window=3)
    assert not arm.plateaued


def test_too_few_versions_and_rerun_of_same_prompt():
    recs = [_rec("a", 0.5, 0.4, 0.6), _rec("a", 0.52, 0.42, 0.62), _rec("b", 0.6, 0.5, 0.7)]
    (arm,) = trajectory(recs, window=3)
    assert not arm.plateaued and len(arm.versions) == 2 and arm.versions[0]["accuracy"] == 0.52


def _zero_shot_config(make_config: Any, base_url: str, instructions: str = "Route it.",
                      system: str | None = None) -> Path:
    task: dict[str, Any] = {"type": "classification", "instructions": instructions,
                            "labels": "labels.json"}
    if system is not None:
        task["prompts"] = {"system": system}
    return make_config(base_url, n_eval=3, strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}],
                       extra={"task": task})


def test_history_command_across_runs(make_config, tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("TEST_API_KEY", "k")
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        for i, system in enumerate(
            [
                "{instructions} {labels} {output_format}",
                "Task: {instructions}\nLabels: {labels}\n{output_format}",
            ]
        ):
            cfg = _zero_shot_config(make_config, server.base_url, "Route it.", system)
            assert main(["run", str(cfg), "--out", str(tmp_path / "reports" / f"r{i}")]) == 0
    capsys.readouterr()
    history = read_history(tmp_path / "reports" / HISTORY, "test")
    assert [(h["arm"], h["n"], h["accuracy"]) for h in history] == [("zs", 12, 1.0), ("zs", 12, 1.0)]
    assert history[0]["prompt_sha256"] != history[1]["prompt_sha256"]
    assert [h["run_dir"] for h in history] == [str((tmp_path / "reports" / f"r{i}").resolve())
                                               for i in range(2)]
    assert main(["history", str(cfg), "--window", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "zs on fake-model:"
    for i, h in enumerate(history, start=1):
        assert out[i].startswith(f"  v{i} prompt {h['prompt_sha256']}  acc 1.000 [")
        assert out[i].endswith(f"n=12  {h['timestamp']}")
    assert out[3].startswith("  PLATEAU: the last 2 versions (1.000, 1.000) all lie inside")
    assert len(out) == 4


def test_instruction_text_alone_makes_a_new_prompt_version(make_config, tmp_path, monkeypatch, capsys):
    """Three runs whose only change is the instruction text filled into the same template were
    one prompt version (the hash covered the template); now each is its own, and the same text
    again is the same version."""
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("TEST_API_KEY", "k")
    monkeypatch.setenv("HARNESS_HISTORY", str(tmp_path / "history.jsonl"))
    texts = ["Route it.", "Route the support message.", "Pick the team.", "Route it."]
    with FakeOpenAI() as server:
        for i, text in enumerate(texts):
            cfg = _zero_shot_config(make_config, server.base_url, text)
            assert main(["run", str(cfg), "--out", str(tmp_path / f"r{i}")]) == 0
    capsys.readouterr()
    history = read_history(tmp_path / "history.jsonl", "test")
    shas = [h["prompt_sha256"] for h in history]
    assert len(shas) == 4 and len(set(shas[:3])) == 3 and shas[3] == shas[0]
    assert main(["history", str(cfg), "--window", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    # numbered by first use: the text run again is still v1 (its latest result)
    assert [line.split()[2] for line in out[1:4]] == [shas[0], shas[1], shas[2]]
    assert out[4].startswith("  PLATEAU: the last 3 versions")


def test_history_is_found_from_anywhere(make_config, tmp_path, monkeypatch, capsys):
    """A run with --out in another folder writes to the one history file of the working folder
    (or $HARNESS_HISTORY); another working folder reads it with --history or $HARNESS_HISTORY."""
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("TEST_API_KEY", "k")
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    project, elsewhere, other_cwd = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "other"
    for d in (project, elsewhere, other_cwd):
        d.mkdir()
    monkeypatch.chdir(project)
    with FakeOpenAI() as server:
        cfg = _zero_shot_config(make_config, server.base_url)
        assert main(["run", str(cfg), "--out", str(elsewhere / "run")]) == 0
        assert not (elsewhere / HISTORY).exists()
        expected = project / "reports" / HISTORY
        assert [h["run_dir"] for h in read_history(expected, "test")] == [str((elsewhere / "run").resolve())]
        custom = tmp_path / "shared" / "h.jsonl"
        monkeypatch.setenv("HARNESS_HISTORY", str(custom))
        assert main(["run", str(cfg), "--out", str(elsewhere / "run2")]) == 0
        assert len(read_history(custom, "test")) == 1 and len(read_history(expected, "test")) == 1
    monkeypatch.delenv("HARNESS_HISTORY")
    monkeypatch.chdir(other_cwd)
    capsys.readouterr()
    assert main(["history", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no history for 'test' in reports/history.jsonl")
    assert "--history FILE" in err[0] and "$HARNESS_HISTORY" in err[0]
    assert main(["history", str(cfg), "--history", str(expected)]) == 0
    assert capsys.readouterr().out.startswith("zs on fake-model:\n  v1 prompt ")
    monkeypatch.setenv("HARNESS_HISTORY", str(custom))
    assert main(["history", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith("zs on fake-model:\n  v1 prompt ")


def test_running_a_finished_folder_again_appends_nothing(make_config, tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("TEST_API_KEY", "k")
    history = tmp_path / "h.jsonl"
    monkeypatch.setenv("HARNESS_HISTORY", str(history))
    with FakeOpenAI() as server:
        cfg = _zero_shot_config(make_config, server.base_url)
        for _ in range(3):
            assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert len(read_history(history, "test")) == 1


def test_history_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    assert history_path() == Path("reports") / "history.jsonl"
    monkeypatch.setenv("HARNESS_HISTORY", str(tmp_path / "env.jsonl"))
    assert history_path() == tmp_path / "env.jsonl"
    assert history_path(tmp_path / "cli.jsonl") == tmp_path / "cli.jsonl"
    assert history_path(str(tmp_path / "cli.jsonl")) == tmp_path / "cli.jsonl"


def test_append_history_writes_one_record_per_arm_of_a_committed_run(tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "reports" / "run")
    meta = read_meta(run)
    a = analyse(read_records(run), meta)
    path = tmp_path / "history" / HISTORY
    assert append_history(path, run, a.summary, meta) is True
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(h["arm"], h["k"], h["n"]) for h in lines] == [
        ("zero-shot", 0, 13), ("few-shot@k=1", 1, 13), ("few-shot@k=2", 2, 13),
        ("few-shot@k=4", 4, 13), ("fine-tuned", 0, 13)]  # n: examples answered
    assert [h["accuracy"] for h in lines] == pytest.approx([10 / 13, 11 / 13, 11 / 13, 11 / 13, 12 / 13])
    assert {h["config"] for h in lines} == {"routing"}
    assert {h["timestamp"] for h in lines} == {meta.finished_at}
    assert {h["started_at"] for h in lines} == {meta.started_at}
    assert {h["dataset_sha256"] for h in lines} == {meta.dataset.sha256}
    assert [h["prompt_sha256"] for h in lines] == [
        next(x.prompt_sha256 for x in meta.arms if (x.strategy, x.k) == (h["strategy"], h["k"]))
        for h in lines]
    assert read_history(path, "routing") == lines and read_history(path, "other") == []


def test_appending_the_same_run_again_is_a_no_op(tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "run")
    meta = read_meta(run)
    summary = analyse(read_records(run), meta).summary
    path = tmp_path / HISTORY
    other = json.dumps({"config": "routing", "run_dir": "/elsewhere", "arm": "zero-shot",
                        "prompt_sha256": "x", "n": 3, "accuracy": 0.5, "ci_low": 0.1,
                        "ci_high": 0.9, "timestamp": "t"}) + "\n"
    path.write_text(other + '{"cut sho')
    warnings: list[str] = []
    assert append_history(path, run, summary, meta, log=warnings.append) is True
    text = path.read_text()
    # existing lines kept; a line cut short by a crash is dropped (kept, it would make the
    # file unreadable), with a warning
    assert text.startswith(other) and "cut sho" not in text
    assert len(warnings) == 1 and "cut short by a crash" in warnings[0]
    assert append_history(path, run, summary, meta) is False
    finished_again = replace(meta, finished_at="2027-01-01T00:00:00+00:00")  # a resumed re-run
    assert append_history(path, run, summary, finished_again) is False
    assert append_history(path, shutil.copytree(run, tmp_path / "copy"), summary, meta) is True
    assert append_history(path, run, summary, replace(meta, started_at="2027-01-02T00:00:00+00:00"))
    assert len(read_history(path, "routing")) == 1 + 3 * len(summary)
    # a line written before history records carried started_at still counts as that run
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text(json.dumps({"config": "routing", "run_dir": str(run.resolve()), "arm": "zero-shot",
                                  "prompt_sha256": "x", "accuracy": 0.5}) + "\n")
    assert append_history(legacy, run, summary, meta) is False


def test_a_folder_as_history_file_is_an_input_error(tmp_path: Path) -> None:
    from harness.errors import InputError

    with pytest.raises(InputError, match="is a folder"):
        read_history(tmp_path, "x")
