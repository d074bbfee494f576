"""Durable, resumable runs: kill -9 or Ctrl-C a real `python -m harness run`, then resume.

The fake server runs in the test process, so it sees every request of the subprocess. Eval
inputs are unique, and an arm's requests differ by their number of few-shot turns, so each chat
request body identifies exactly one (arm, example) pair.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main
from harness.running import Record
from harness.running.store import META, RESULTS, ResultStore, read_records

ROOT = Path(__file__).resolve().parents[2]
SWEEP = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
         {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2]}]
VOLATILE_RESULTS = ["latency_ms", "cached", "attempts"]
VOLATILE_SUMMARY = ["latency_p50_ms", "latency_p95_ms", "cache_hits"]

Pair = tuple[str, str]  # (arm key, example id)


def _start(config: Path, out: Path) -> subprocess.Popen[bytes]:
    """`python -m harness run CONFIG --out DIR --no-cache` in a child process."""
    with open(out.parent / f"{out.name}.stderr", "wb") as err:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "harness", "run", str(config), "--out", str(out), "--no-cache"],
            cwd=out.parent, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _complete_lines(out: Path) -> int:
    path = out / RESULTS
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def _wait_for_lines(proc: subprocess.Popen[bytes], out: Path, n: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while _complete_lines(out) < n:
        assert proc.poll() is None, f"the run ended early with exit code {proc.returncode}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def _recorded(out: Path) -> set[Pair]:
    return {r.key for r in read_records(out)}


def _record(arm: str, example_id: str, correct: bool) -> Record:
    """A minimal answered record of (arm, example)."""
    label = "billing" if correct else "shipping"
    return Record(arm=arm, strategy=arm, type="zero_shot", model="fake", model_id="fake-model", k=0,
                  draw=0, example_id=example_id, input=f"text {example_id}", expected="billing",
                  prediction=label, correct=correct, parse_ok=True, schema_valid=True,
                  error_kind=None, error=None, output=f'{{"label": "{label}"}}', finish_reason="stop",
                  prompt_tokens=10, completion_tokens=5, cached_tokens=None, latency_ms=1.0,
                  attempts=1, cached=False, prompt_sha256="abc")


def _sweep_arm(body: dict[str, Any]) -> str:
    """SWEEP's arm of a request: k is the number of few-shot turns."""
    k = (len(body["messages"]) - 2) // 2
    return "zero-shot|k=0|draw=0" if k == 0 else f"few-shot|k={k}|draw=0"


def _identify(bodies: Iterable[dict[str, Any]], arm_of: Callable[[dict[str, Any]], str],
              out: Path) -> list[Pair]:
    """The (arm, example) pair of each request body (inputs are unique per example)."""
    example = {r.input: r.example_id for r in read_records(out)}
    return [(arm_of(b), example[last_user_content(b)]) for b in bodies]


def _all_pairs(out: Path) -> set[Pair]:
    meta = json.loads((out / "run.json").read_text())
    return {(a["key"], str(e)) for a in meta["arms"] for e in meta["examples"]}


def _assert_each_pair_once(out: Path) -> None:
    df = pd.read_csv(out / "results.csv")
    pairs = [(f"{s}|k={k}|draw={d}", str(e))
             for s, k, d, e in df[["strategy", "k", "draw", "example_id"]].itertuples(index=False)]
    assert len(pairs) == len(set(pairs)) == len(_all_pairs(out))
    assert set(pairs) == _all_pairs(out)


def _assert_same_reports(run: Path, reference: Path) -> None:
    a = pd.read_csv(run / "results.csv").drop(columns=VOLATILE_RESULTS)
    b = pd.read_csv(reference / "results.csv").drop(columns=VOLATILE_RESULTS)
    pd.testing.assert_frame_equal(a, b)
    a = pd.read_csv(run / "summary.csv").drop(columns=VOLATILE_SUMMARY)
    b = pd.read_csv(reference / "summary.csv").drop(columns=VOLATILE_SUMMARY)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(run / "comparisons.csv"),
                                  pd.read_csv(reference / "comparisons.csv"))
    ra, rb = (json.loads((d / "summary.json").read_text())["recommendation"] for d in (run, reference))
    assert ra == rb


def _reference(config: Path, out: Path) -> None:
    """The same config run uninterrupted (a latency-free server gives the same answers)."""
    text = config.read_text()
    with FakeOpenAI() as quick:
        port = text.split("http://127.0.0.1:")[1].split("/")[0]
        ref_cfg = config.with_name("reference.yaml")
        ref_cfg.write_text(text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{quick.port}"))
        assert main(["run", str(ref_cfg), "--out", str(out), "--no-cache"]) == 0


def test_kill_9_then_resume_sends_only_missing_work(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(latency_s=0.05) as server:
        cfg = make_config(server.base_url, n_eval=10, strategies=SWEEP, run={"concurrency": 2})
        out = tmp_path / "run"
        proc = _start(cfg, out)
        try:
            _wait_for_lines(proc, out, 36)  # 30% of 40 examples x 3 arms
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        before_kill = list(server.requests)
        recorded = _recorded(out)
        assert 36 <= len(recorded) < 120

        assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-cache"]) == 0
        resumed = list(server.requests)[len(before_kill):]

    lost = set(_identify(before_kill, _sweep_arm, out)) - recorded
    assert len(lost) <= 2  # at most the requests in flight (concurrency 2) were lost
    sent_again = _identify(resumed, _sweep_arm, out)
    assert not set(sent_again) & recorded  # (a) nothing durably recorded is requested again
    assert sorted(sent_again) == sorted(_all_pairs(out) - recorded)  # only the missing work, once
    _assert_each_pair_once(out)  # (b)
    data = json.loads((out / "summary.json").read_text())
    assert data["meta"]["complete"] is True and data["meta"]["counts"]["skipped_done"] == len(recorded)

    _reference(cfg, tmp_path / "reference")
    _assert_same_reports(out, tmp_path / "reference")  # (c)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(latency_s=0.05) as server:
        cfg = make_config(server.base_url, n_eval=10, strategies=SWEEP, run={"concurrency": 2})
        out = tmp_path / "run"
        proc = _start(cfg, out)
        try:
            _wait_for_lines(proc, out, 36)  # 30% of 40 examples x 3 arms
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        err = (tmp_path / "run.stderr").read_text()
        assert rc == 130, err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"--out {out} --resume" in lines[0] and "harness run" in lines[0]
        assert "partial reports (marked incomplete)" in err
        data = json.loads((out / "summary.json").read_text())
        assert data["meta"]["complete"] is False and data["meta"]["status"] == "interrupted"
        recorded = _recorded(out)
        assert 36 <= len(recorded) < 120
        partial = pd.read_csv(out / "results.csv")
        assert len(partial) == len(recorded)
        n_before = len(server.requests)

        assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-cache"]) == 0
        resumed = list(server.requests)[n_before:]

    sent_again = _identify(resumed, _sweep_arm, out)
    assert not set(sent_again) & recorded
    assert sorted(sent_again) == sorted(_all_pairs(out) - recorded)
    _assert_each_pair_once(out)
    data = json.loads((out / "summary.json").read_text())
    assert data["meta"]["complete"] is True and data["meta"]["status"] == "complete"


def test_a_torn_last_line_is_redone_not_corrupting(tmp_path):
    """A kill in the middle of a write leaves half a line: it is ignored, then cut off."""
    run = tmp_path / "run"
    store = ResultStore(run)
    store.append(_record("a", "1", True))
    store.close()
    with open(run / RESULTS, "a", encoding="utf-8") as f:
        f.write('{"arm": "a", "example_id": "2", "corr')
    assert _recorded(run) == {("a", "1")}
    store = ResultStore(run)
    store.append(_record("a", "2", False))
    store.close()
    lines = (run / RESULTS).read_text().splitlines()
    assert [json.loads(x)["example_id"] for x in lines] == ["1", "2"]
    assert read_records(run) == [_record("a", "1", True), _record("a", "2", False)]


def test_resume_needs_a_run_in_out(make_config, tmp_path, monkeypatch, capsys):
    """`--resume` into a folder without run.json: exit 2, one error line naming it, nothing written."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    monkeypatch.chdir(tmp_path)  # where a default reports/ folder would appear
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=SWEEP[:1])
        missing = tmp_path / "no-such-run"
        empty = tmp_path / "empty"
        empty.mkdir()
        stray = tmp_path / "stray"  # records but no run.json: still not a run
        stray.mkdir()
        (stray / RESULTS).write_text("")
        for out in (missing, empty, stray):
            before = sorted(p.name for p in tmp_path.rglob("*"))
            assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-cache"]) == 2
            err = capsys.readouterr().err
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: --resume: "), err
            assert str(out) in lines[0] and META in lines[0] and "Traceback" not in err
            assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
        assert not missing.exists() and list(empty.iterdir()) == []
        assert main(["run", str(cfg), "--resume", "--no-cache"]) == 2  # no --out at all
        assert "--out" in capsys.readouterr().err
        assert server.attempts == 0 and not (tmp_path / "reports").exists()


def test_resume_requests_only_what_is_missing(make_config, tmp_path, monkeypatch):
    """A run with some records lost: `--resume` asks the model for exactly those, once."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=SWEEP)
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--no-cache"]) == 0
        assert server.attempts == 36  # 12 examples x 3 arms
        lines = (out / RESULTS).read_text(encoding="utf-8").splitlines(keepends=True)
        kept, dropped = lines[::2], lines[1::2]
        (out / RESULTS).write_text("".join(kept), encoding="utf-8")
        lost = {Record.from_dict(json.loads(line)).key for line in dropped}
        n_before = len(server.requests)

        assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-cache"]) == 0
        resumed = list(server.requests)[n_before:]
    assert server.attempts == 36 + len(dropped)
    assert sorted(_identify(resumed, _sweep_arm, out)) == sorted(lost)
    _assert_each_pair_once(out)
    data = json.loads((out / "summary.json").read_text())
    assert data["meta"]["complete"] is True and data["meta"]["counts"]["skipped_done"] == len(kept)
