"""Issue 27, item 3: history by model and branch. Each entry records its model id and the git
branch and commit of the run; `harness history` shows one trajectory per arm and model, its
versions numbered by first appearance, a plateau judged per model, and `--branch` filters.
Lines written before (no `version`) still read."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from fake_openai import FakeOpenAI
from run_helpers import FIXTURE_RUNS

from harness.analysis import analyse
from harness.analysis.history import (
    HISTORY_FORMAT,
    append_history,
    on_branch,
    read_history,
    read_history_checked,
    trajectory,
)
from harness.analysis.history_git import GitState, git_state
from harness.cli import main
from harness.errors import InputError
from harness.running.store import read_meta, read_records

ORIGINAL, PR = "0riginal", "pr-prompt"
Cap: TypeAlias = pytest.CaptureFixture[str]
MP: TypeAlias = pytest.MonkeyPatch


def _line(sha: str, acc: float, stamp: str, *, model: str | None = "gpt-4o-mini",
          branch: str | None = "main", commit: str | None = "a" * 40, arm: str = "zs",
          run: str = "/runs/x") -> dict[str, Any]:
    return {
        "version": 2, "config": "test", "run_dir": f"{run}-{stamp}", "started_at": stamp,
        "arm": arm, "strategy": arm, "k": 0, "type": "zero_shot", "prompt_sha256": sha,
        "model_id": model, "branch": branch, "commit": commit, "n": 100, "accuracy": acc,
        "ci_low": round(acc - 0.09, 3), "ci_high": round(acc + 0.09, 3), "timestamp": stamp}


def _write(path: Path, recs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture
def cfg(make_config: Any) -> Path:
    return Path(make_config(strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}]))


def _history(cfg: Path, path: Path, capsys: pytest.CaptureFixture[str], *extra: str
             ) -> list[str]:
    capsys.readouterr()
    assert main(["history", str(cfg), "--history", str(path), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_same_prompt_on_two_models_is_two_trajectories(cfg: Path, tmp_path: Path, capsys: Cap) -> None:
    path = _write(tmp_path / "h.jsonl", [
        _line(ORIGINAL, 0.60, "2026-01-01T00:00:00+00:00", model="small-model"),
        _line(ORIGINAL, 0.85, "2026-01-02T00:00:00+00:00", model="big-model")])
    small, big = trajectory(read_history(path, "test"))
    assert (small.model_id, [v["accuracy"] for v in small.versions]) == ("small-model", [0.60])
    assert (big.model_id, [v["accuracy"] for v in big.versions]) == ("big-model", [0.85])
    out = _history(cfg, path, capsys)
    assert out[0] == "zs on small-model:" and "acc 0.600" in out[1]
    assert out[3] == "zs on big-model:" and "acc 0.850" in out[4]
    assert out[1].lstrip().startswith("v1") and out[4].lstrip().startswith("v1")


def test_versions_are_numbered_by_first_appearance_per_model(cfg: Path, tmp_path: Path, capsys: Cap) -> None:
    """The original prompt ran first, a PR's prompt next, then the original again (on main):
    the original is v1 (with its latest result), the PR's v2. Timestamps decide, not the
    order of the lines (a file merged from two machines)."""
    path = _write(tmp_path / "h.jsonl", [
        _line(PR, 0.70, "2026-01-02T00:00:00+00:00", branch="pr-1", commit="b" * 40),
        _line(ORIGINAL, 0.60, "2026-01-01T00:00:00+00:00"),
        _line(ORIGINAL, 0.62, "2026-01-03T00:00:00+00:00"),
        _line(PR, 0.50, "2026-01-01T12:00:00+00:00", model="other-model")])
    mini, other = trajectory(read_history(path, "test"))
    assert [(v["prompt_sha256"], v["accuracy"]) for v in mini.versions] == [(ORIGINAL, 0.62),
                                                                            (PR, 0.70)]
    assert [v["prompt_sha256"] for v in other.versions] == [PR]  # this model's own v1
    out = _history(cfg, path, capsys)
    assert out[1].startswith(f"  v1 prompt {ORIGINAL}  acc 0.620 ")
    assert out[1].endswith(f"  main@{'a' * 7}")
    assert out[2].startswith(f"  v2 prompt {PR}  acc 0.700 ") and out[2].endswith("pr-1@bbbbbbb")


def test_the_plateau_is_judged_per_model(tmp_path: Path) -> None:
    stamps = [f"2026-01-0{i}T00:00:00+00:00" for i in range(1, 7)]
    recs = [_line("a", 0.80, stamps[0], model="m1"), _line("a", 0.30, stamps[1], model="m2"),
            _line("b", 0.79, stamps[2], model="m1"), _line("b", 0.50, stamps[3], model="m2"),
            _line("c", 0.81, stamps[4], model="m1"), _line("c", 0.31, stamps[5], model="m2")]
    m1, m2 = trajectory(recs, window=3)
    assert (m1.model_id, m1.plateaued) == ("m1", True)
    assert (m2.model_id, m2.plateaued) == ("m2", False)  # 0.30, 0.31 lie outside 0.50's interval
    assert [v["accuracy"] for v in m2.versions] == [0.30, 0.50, 0.31]


def test_branch_filters_and_an_unknown_branch_names_the_known_ones(cfg: Path, tmp_path: Path,
                                                                   capsys: Cap) -> None:
    path = _write(tmp_path / "h.jsonl", [
        _line(ORIGINAL, 0.60, "2026-01-01T00:00:00+00:00"),
        _line(PR, 0.70, "2026-01-02T00:00:00+00:00", branch="pr-1"),
        _line(PR, 0.72, "2026-01-03T00:00:00+00:00", branch=None, commit=None)])
    out = _history(cfg, path, capsys, "--branch", "pr-1")
    assert out[0] == "zs on gpt-4o-mini:" and len([o for o in out if o.startswith("  v")]) == 1
    assert out[1].startswith(f"  v1 prompt {PR}  acc 0.700 ") and out[1].endswith("pr-1@aaaaaaa")
    all_of_them = _history(cfg, path, capsys)
    assert [o.split()[2] for o in all_of_them if o.startswith("  v")] == [ORIGINAL, PR]
    assert all_of_them[2].endswith("n=100  2026-01-03T00:00:00+00:00")  # no branch, no commit
    capsys.readouterr()
    assert main(["history", str(cfg), "--history", str(path), "--branch", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --branch nope: no history entry was run on that branch; the "
                   "branches recorded: main, pr-1"]
    with pytest.raises(InputError, match="none records a branch"):
        on_branch([_line("a", 0.5, "t", branch=None)], "main")


def test_lines_without_a_version_still_read(cfg: Path, tmp_path: Path, capsys: Cap) -> None:
    """Version 1 lines: the model id was its `model` field (when there), no branch, no commit;
    they join the same model's new lines."""
    old = {"config": "test", "run_dir": "/old", "started_at": "2025-12-01T00:00:00+00:00",
           "arm": "zs", "prompt_sha256": ORIGINAL, "n": 50, "accuracy": 0.5, "ci_low": 0.4,
           "ci_high": 0.6, "timestamp": "2025-12-01T00:00:00+00:00"}
    path = _write(tmp_path / "h.jsonl", [
        old, {**old, "run_dir": "/old2", "model": "gpt-4o-mini", "prompt_sha256": "older"},
        _line(PR, 0.70, "2026-01-02T00:00:00+00:00")])
    records, warnings = read_history_checked(path, "test")
    assert warnings == []
    assert [(r["version"], r["model_id"], r["branch"], r["commit"]) for r in records] == [
        (1, None, None, None), (1, "gpt-4o-mini", None, None),
        (2, "gpt-4o-mini", "main", "a" * 40)]
    out = _history(cfg, path, capsys)
    assert out[0] == "zs on a model not recorded:"
    assert out[3] == "zs on gpt-4o-mini:"
    assert [o.split()[:3] for o in out[4:6]] == [["v1", "prompt", "older"], ["v2", "prompt", PR]]


def test_a_line_of_a_newer_format_is_read_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.jsonl", [{**_line("a", 0.5, "t"), "version": HISTORY_FORMAT + 1}])
    records, warnings = read_history_checked(path, "test")
    assert len(records) == 1 and len(warnings) == 1 and "newer harness" in warnings[0]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"):
        monkeypatch.delenv(name, raising=False)
    # git must not find a work tree above tmp_path (wherever the tests run)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def test_git_state_in_and_outside_a_work_tree(tmp_path: Path, monkeypatch: MP, no_ci: None) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir()
    outside.mkdir()
    assert git_state(outside) == GitState(None, None)
    _git(repo, "init", "-q", "-b", "feature/x")
    assert git_state(repo) == GitState("feature/x", None)  # no commit yet
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "sub").mkdir()
    assert git_state(repo / "sub") == GitState("feature/x", head)
    _git(repo, "checkout", "-q", "--detach")
    assert git_state(repo) == GitState(None, head)
    monkeypatch.setenv("GITHUB_REF_NAME", "pr-branch")
    assert git_state(repo) == GitState("pr-branch", head)  # a CI checkout: what CI names
    monkeypatch.setenv("PATH", str(outside))  # no git at all: nothing, and no failure
    assert git_state(repo) == GitState(None, None)


def test_append_history_records_model_branch_and_commit(tmp_path: Path, monkeypatch: MP, no_ci: None) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "run")
    meta = read_meta(run)
    summary = analyse(read_records(run), meta).summary
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    monkeypatch.chdir(repo)
    assert append_history(tmp_path / "in.jsonl", run, summary, meta)
    lines = [json.loads(x) for x in (tmp_path / "in.jsonl").read_text().splitlines()]
    assert {(h["version"], h["branch"], h["commit"]) for h in lines} == {
        (HISTORY_FORMAT, "main", _git(repo, "rev-parse", "HEAD"))}
    assert [h["model_id"] for h in lines] == [str(m) for m in summary["model_id"]]
    monkeypatch.chdir(tmp_path)
    assert append_history(tmp_path / "out.jsonl", run, summary, meta)
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {(h["branch"], h["commit"]) for h in lines} == {(None, None)}
    assert append_history(tmp_path / "given.jsonl", run, summary, meta, git=GitState("b", "c"))
    assert json.loads((tmp_path / "given.jsonl").read_text().splitlines()[0])["branch"] == "b"


def test_harness_run_in_a_work_tree_records_its_branch(make_config: Any, tmp_path: Path,
                                                       monkeypatch: MP, capsys: Cap, no_ci: None) -> None:
    monkeypatch.setenv("TEST_API_KEY", "k")
    history = tmp_path / "h.jsonl"
    monkeypatch.setenv("HARNESS_HISTORY", str(history))
    _git(tmp_path, "init", "-q", "-b", "prompt-tweak")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "one")
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2,
                          strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    (rec,) = read_history(history, "test")
    assert (rec["model_id"], rec["branch"]) == ("fake-model", "prompt-tweak")
    out = _history(cfg, history, capsys, "--branch", "prompt-tweak")
    assert out[0] == "zs on fake-model:" and out[1].endswith(f"prompt-tweak@{rec['commit'][:7]}")
