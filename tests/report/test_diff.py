"""`harness diff RUN_A RUN_B` and `harness report RUN --against OTHER` (issue 27, item 1): the
examples a change fixed and broke, which are the discordant pairs of the paired test; the test;
the prompt and config diff; diff.csv and diff.html."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main

LABELS = ["billing", "shipping", "returns", "account"]
WRONG = {"m1": {0, 1, 2, 3, 4, 5}, "m2": {4, 5, 6, 7, 8, 9, 10, 11, 12, 13}}


def _responder(body: dict[str, Any]) -> str:
    """Each model is wrong on its own messages (by number): m1 on 0-5, m2 on 4-13, so from m1
    to m2 messages 0-3 are fixed and 6-13 broken, per label."""
    text = last_user_content(body)
    label = text.splitlines()[0]
    i = int(re.search(r"message (\d+) about", text).group(1))  # type: ignore[union-attr]
    if i in WRONG[body["model"]]:
        label = "account" if label != "account" else "billing"
    return json.dumps({"label": label})


def _project(root: Path, base_url: str) -> Callable[[str, list[dict[str, Any]], str], Path]:
    rows = [{"text": f"{lab}\neval message {i} about {lab}", "category": lab}
            for i in range(20) for lab in LABELS]
    pd.DataFrame(rows).to_csv(root / "eval.csv", index=False)
    (root / "labels.json").write_text(json.dumps(LABELS))

    def make(name: str, strategies: list[dict[str, Any]], instructions: str) -> Path:
        cfg = {"name": "routing",
               "task": {"type": "classification", "instructions": instructions,
                        "labels": "labels.json"},
               "dataset": {"eval": "eval.csv", "input": "text", "target": "category"},
               "models": {m: {"provider": "openai", "model": m, "base_url": base_url,
                              "api_key_env": "TEST_API_KEY"} for m in WRONG},
               "strategies": strategies, "run": {"concurrency": 4, "max_attempts": 1}}
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        assert main(["run", str(path), "--out", str(root / name), "--no-cache"]) == 0
        return root / name

    return make


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diff")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=_responder) as server:
        mp.setenv("TEST_API_KEY", "x")
        mp.setenv("HARNESS_CACHE_DIR", str(root / "cache"))
        mp.setenv("HARNESS_HISTORY", str(root / "history.jsonl"))
        make = _project(root, server.base_url)
        zs = {"name": "zero-shot", "type": "zero_shot"}
        return {
            "a": make("a", [{**zs, "model": "m1"}], "Route the support message."),
            "b": make("b", [{**zs, "model": "m2"}], "Route the support message.\nBe brief."),
            # both models in one run: its comparisons.csv compares the same pair
            "both": make("both", [{**zs, "model": "m1"},
                                  {"name": "zs-m2", "type": "zero_shot", "model": "m2"}],
                         "Route the support message."),
        }


def test_fixed_and_broken_are_the_paired_tests_discordant_pairs(runs: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "diff.csv").open()))
    assert list(rows[0]) == ["arm", "example_id", "change", "expected", "output_a", "output_b",
                             "input"]
    fixed = sum(r["change"] == "fixed" for r in rows)
    broken = sum(r["change"] == "broken" for r in rows)
    assert (fixed, broken) == (4 * 4, 8 * 4)  # by construction: 0-3 fixed, 6-13 broken
    comparisons = pd.read_csv(runs["both"] / "comparisons.csv")
    row = comparisons[(comparisons["arm_a"] == "zs-m2") & (comparisons["arm_b"] == "zero-shot")]
    n = int(row["n"].iloc[0])
    assert round(float(row["discordance"].iloc[0]) * n) == fixed + broken
    assert float(row["delta"].iloc[0]) * n == pytest.approx(fixed - broken)
    one = next(r for r in rows if r["change"] == "broken")
    assert json.loads(one["output_a"])["label"] == one["expected"]
    assert json.loads(one["output_b"])["label"] != one["expected"]


def test_the_terminal_summary_names_the_test_models_and_changes(runs: dict[str, Path],
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fixed 16" in out and "broken 32" in out and "-20.0 points" in out
    assert "model m1 -> m2" in out and "prompt changed" in out
    assert "config strategies[zero-shot].model: \"m1\" -> \"m2\"" in out
    assert "config task.instructions: changed" in out
    page = (tmp_path / "diff.html").read_text()
    assert "<script" not in page and 'id="diff"' in page
    assert page.count('<tr class="fixed">') == 16 and page.count('<tr class="broken">') == 32
    assert '<span class="add">+Be brief.</span>' in page


def test_runs_with_different_eval_sets_pair_the_shared_ids(runs: dict[str, Path],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """A copy of run B limited to some of its examples: the diff pairs those and says how many
    of A's were not shared."""
    part = tmp_path / "part"
    part.mkdir()
    meta = json.loads((runs["b"] / "run.json").read_text())
    keep = set(meta["examples"][:30])
    meta["examples"] = meta["examples"][:30]
    (part / "run.json").write_text(json.dumps(meta))
    lines = [line for line in (runs["b"] / "results.jsonl").read_text().splitlines()
             if json.loads(line)["example_id"] in keep]
    (part / "results.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["diff", str(runs["a"]), str(part), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "30 examples in both runs; not shared: 50 only in A, 0 only in B" in out
    assert "n=30" in out


def test_report_against_adds_the_section_and_the_files(runs: dict[str, Path]) -> None:
    assert main(["report", str(runs["b"]), "--against", str(runs["a"])]) == 0
    page = (runs["b"] / "report.html").read_text()
    assert 'id="against"' in page and 'id="diff"' in page
    assert (runs["b"] / "diff.csv").is_file() and (runs["b"] / "diff.html").is_file()
    assert main(["report", str(runs["b"])]) == 0  # without it, no section
    assert 'id="against"' not in (runs["b"] / "report.html").read_text()


def test_bad_input_is_one_line(runs: dict[str, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs["a"]), str(tmp_path)]) == 2
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--arm", "nope"]) == 2
    assert main(["report", str(runs["b"]), "--against", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)
    assert "--arm nope: not an arm of both runs (both have: zero-shot)" in err[1]


def test_a_k_change_is_diffed_against_the_nearest_k(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """As the gate does: few-shot@k=2 in B is compared with few-shot@k=4 in A (same strategy,
    nearest k), not reported as one arm only in A and one only in B."""
    rows = [{"text": f"{lab}\ntrain message {i} about {lab}", "category": lab}
            for i in range(6) for lab in LABELS]
    runs = {}
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=_responder) as server:
        mp.setenv("TEST_API_KEY", "x")
        mp.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
        mp.setenv("HARNESS_HISTORY", str(tmp_path / "history.jsonl"))
        _project(tmp_path, server.base_url)  # the eval set and labels
        pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
        for k in (4, 2):
            cfg = {"name": "routing",
                   "task": {"type": "classification", "instructions": "Route it.",
                            "labels": "labels.json"},
                   "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text",
                               "target": "category"},
                   "models": {"m1": {"provider": "openai", "model": "m1",
                                     "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
                   "strategies": [{"name": "few-shot", "type": "few_shot", "model": "m1",
                                   "shots": [k]}],
                   "run": {"concurrency": 4, "max_attempts": 1}}
            path = tmp_path / f"k{k}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            runs[k] = tmp_path / f"k{k}"
            assert main(["run", str(path), "--out", str(runs[k]), "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["diff", str(runs[4]), str(runs[2]), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "few-shot@k=2 (A: few-shot@k=4)" in out and "n=80" in out
    assert "only in A" not in out and "only in B" not in out
