"""Prompt-version history and its plateau flag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from run_helpers import FIXTURE_RUNS

from harness.analysis import analyse
from harness.analysis.history import HISTORY, append_history, read_history, trajectory
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


def test_history_command_across_runs(make_config, tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("TEST_API_KEY", "k")
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        for i, system in enumerate(
            [
                "{instructions} {labels} {output_format}",
                "Task: {instructions}\nLabels: {labels}\n{output_format}",
            ]
        ):
            cfg = make_config(
                server.base_url,
                n_eval=3,
                strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}],
                extra={
                    "task": {
                        "type": "classification",
                        "instructions": "Route it.",
                        "labels": "labels.json",
                        "prompts": {"system": system},
                    }
                },
            )
            assert main(["run", str(cfg), "--out", str(tmp_path / "reports" / f"r{i}")]) == 0
    capsys.readouterr()
    history = read_history(tmp_path / "reports" / HISTORY, "test")
    assert [(h["arm"], h["n"], h["accuracy"]) for h in history] == [("zs", 12, 1.0), ("zs", 12, 1.0)]
    assert history[0]["prompt_sha256"] != history[1]["prompt_sha256"]
    assert [h["run_dir"] for h in history] == [str((tmp_path / "reports" / f"r{i}").resolve())
                                               for i in range(2)]
    assert main(["history", str(cfg), "--window", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "zs:"
    for i, h in enumerate(history, start=1):
        assert out[i].startswith(f"  v{i} prompt {h['prompt_sha256']}  acc 1.000 [")
        assert out[i].endswith(f"n=12  {h['timestamp']}")
    assert out[3].startswith("  PLATEAU: the last 2 versions (1.000, 1.000) all lie inside")
    assert len(out) == 4


def test_append_history_writes_one_record_per_arm_of_a_committed_run(tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "reports" / "run")
    meta = read_meta(run)
    a = analyse(read_records(run), meta)
    path = append_history(run, a.summary, meta)
    assert path == tmp_path / "reports" / HISTORY
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(h["arm"], h["k"], h["n"]) for h in lines] == [
        ("zero-shot", 0, 13), ("few-shot@k=1", 1, 26), ("few-shot@k=2", 2, 26),
        ("few-shot@k=4", 4, 26), ("fine-tuned", 0, 13)]
    assert [h["accuracy"] for h in lines] == pytest.approx([10 / 13, 11 / 13, 11 / 13, 11 / 13, 12 / 13])
    assert {h["config"] for h in lines} == {"routing"}
    assert {h["timestamp"] for h in lines} == {meta.finished_at}
    assert {h["dataset_sha256"] for h in lines} == {meta.dataset.sha256}
    assert [h["prompt_sha256"] for h in lines] == [
        next(x.prompt_sha256 for x in meta.arms if (x.strategy, x.k) == (h["strategy"], h["k"]))
        for h in lines]
    assert read_history(path, "routing") == lines and read_history(path, "other") == []
