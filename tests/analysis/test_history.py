"""Prompt-version history and its plateau flag."""

from __future__ import annotations

from harness.cli import main
from harness.analysis.history import trajectory


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
    assert main(["history", str(cfg), "--window", "2"]) == 0
    out = capsys.readouterr().out
    assert "v1 prompt" in out and "v2 prompt" in out and "PLATEAU" in out
