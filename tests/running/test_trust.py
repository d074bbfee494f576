"""Issue 10, part A and B: never lose a user's files, never pay twice, and never score the
endpoint's failures as the model's wrong answers. Each test goes through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_openai import ChatReply, FakeOpenAI, FaultPlan, default_responder, last_user_content

from harness.cli import main
from harness.running.lock import RunLock

ZERO_SHOT = [{"name": "zs", "type": "zero_shot", "model": "fake"}]


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), "--no-cache", *extra])


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------- A1 / A2: the folder


def test_a_folder_of_someone_elses_files_is_refused(make_config, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my,own\n1,2\n")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert _run(cfg, out) == 2
        assert server.attempts == 0
    (line,) = _error_lines(capsys.readouterr().err)
    assert "not empty" in line and "results.csv" in line
    assert (out / "results.csv").read_text() == "my,own\n1,2\n"
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]


def test_an_empty_folder_is_fine(make_config, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with FakeOpenAI() as server:
        assert _run(make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT), out) == 0


def test_a_second_run_into_a_locked_folder_stops_and_names_the_holder(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZERO_SHOT)
        with RunLock(out):  # another run holds the folder (flock is per open file)
            assert _run(cfg, out) == 2
            assert server.attempts == 0
        (line,) = _error_lines(capsys.readouterr().err)
        assert "in use by another harness run" in line and f"pid {os.getpid()}" in line
        assert not (out / "results.jsonl").exists()
        assert _run(cfg, out) == 0  # released: the folder can be used again
        assert server.attempts == 8


def test_two_concurrent_processes_never_request_the_same_example_twice(make_config, tmp_path):
    with FakeOpenAI(latency_s=0.05) as server:
        cfg = make_config(server.base_url, n_eval=10, strategies=ZERO_SHOT, run={"concurrency": 2})
        out = tmp_path / "run"
        cmd = [sys.executable, "-m", "harness", "run", str(cfg), "--out", str(out), "--no-cache"]
        env = {**os.environ, "TEST_API_KEY": "x"}
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        codes = sorted(p.returncode for p in procs)
        per_input = server.count_by_user_content()
    assert codes == [0, 2], results
    assert any("in use by another harness run" in err for _, err in results)
    assert set(per_input.values()) == {1} and len(per_input) == 40


# --------------------------------------------------------------------------- A4: what must match


def test_resume_allows_edits_that_do_not_change_answers(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZERO_SHOT)
        assert _run(cfg, out) == 0
        sent = server.attempts
        data = yaml.safe_load(cfg.read_text())
        data["run"]["concurrency"] = 1  # lowered after 429s
        data["decision"] = {"min_gain": 0.05}
        cfg.write_text("# a comment\n" + yaml.safe_dump(data, sort_keys=False))
        assert _run(cfg, out, "--resume") == 0
        assert server.attempts == sent
    assert json.loads((out / "run.json").read_text())["decision"]["min_gain"] == 0.05


def test_resume_refuses_what_changes_answers_and_names_it(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZERO_SHOT)
        assert _run(cfg, out) == 0
        data = yaml.safe_load(cfg.read_text())
        data["run"]["temperature"] = 0.7
        data["task"]["instructions"] = "Something else."
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        capsys.readouterr()
        assert _run(cfg, out, "--resume") == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "run.temperature" in line and "task" in line and "concurrency" not in line


# --------------------------------------------------------------------------- A5: failures again


def test_resume_requests_endpoint_failures_again_unless_kept(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    broken = {"on": True}

    def responder(body: dict) -> str | ChatReply:
        if broken["on"] and "message 1 " in last_user_content(body):
            return ChatReply.error(503, "overloaded")
        return default_responder(body)

    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=ZERO_SHOT,
                          run={"max_attempts": 1, "max_failure_rate": 0.5})
        assert _run(cfg, out) == 0
        assert _summary(out)["arms"][0]["endpoint_failures"] == 4
        sent = server.attempts
        assert _run(cfg, out, "--resume", "--keep-failures") == 0
        assert server.attempts == sent  # kept as they are
        broken["on"] = False
        assert _run(cfg, out, "--resume") == 0
        assert server.attempts == sent + 4  # only the four that failed
    arm = _summary(out)["arms"][0]
    assert arm["endpoint_failures"] == 0 and arm["answers"] == 12 and arm["accuracy"] == 1.0
    assert "re-requested 4 that the endpoint failed on before" in capsys.readouterr().out


# --------------------------------------------------------------------------- A7: SIGTERM


def test_sigterm_stops_like_ctrl_c(make_config, tmp_path):
    with FakeOpenAI(latency_s=0.2) as server:
        cfg = make_config(server.base_url, n_eval=25, strategies=ZERO_SHOT, run={"concurrency": 2})
        out = tmp_path / "run"
        cmd = [sys.executable, "-m", "harness", "run", str(cfg), "--out", str(out), "--no-cache"]
        proc = subprocess.Popen(cmd, env={**os.environ, "TEST_API_KEY": "x"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.attempts < 6:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM" in err and "--resume" in err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and "SIGTERM" in meta["message"]
    summary = _summary(out)
    assert summary["meta"]["complete"] is False and summary["recommendation"] is None
    assert (out / "report.html").exists()


# --------------------------------------------------------------------------- A9: one clean line


def test_unwritable_out_and_cache_are_one_line(make_config, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert _run(cfg, blocker / "run") == 2
        (line,) = _error_lines(capsys.readouterr().err)
        assert "--out" in line
        monkeypatch.setenv("HARNESS_CACHE_DIR", str(blocker / "cache"))
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
        (line,) = _error_lines(capsys.readouterr().err)
        assert "response cache" in line and "--no-cache" in line
        assert server.attempts == 0


def test_a_wrong_line_in_results_is_named_not_dropped(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert _run(cfg, out) == 0
        lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
        for bad in ('{"not": "a record"}\n', '[1, 2]\n', '{"arm": "zs", broken\n'):
            (out / "results.jsonl").write_text(lines[0] + bad + "".join(lines[1:]))
            capsys.readouterr()
            for argv in (["report", str(out)], ["gate", str(out), "--baseline", str(out)],
                         ["run", str(cfg), "--out", str(out), "--no-cache"]):
                assert main(argv) == 2, argv
                (line,) = _error_lines(capsys.readouterr().err)
                assert "results.jsonl line 2" in line, line


def test_output_piped_into_head_ends_quietly(make_config, tmp_path):
    cfg = make_config(n_eval=30)
    proc = subprocess.run(f"{sys.executable} -m harness validate {cfg} | head -c 5",
                          shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- A10: stale answers


def test_a_swapped_model_behind_the_same_url_gets_fresh_answers(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert main(["run", str(cfg), "--out", str(tmp_path / "a")]) == 0
        sent = server.attempts
        assert main(["run", str(cfg), "--out", str(tmp_path / "b")]) == 0
        assert server.attempts == sent  # same model: served from the cache
        swapped = [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "someone-else"}]
        server._models = lambda: swapped  # type: ignore[method-assign]
        assert main(["run", str(cfg), "--out", str(tmp_path / "c")]) == 0
        assert server.attempts == 2 * sent  # the endpoint reports another model: no stale answers
    assert not pd.read_csv(tmp_path / "c" / "results.csv")["cached"].any()


def test_cache_ttl_and_cache_clear(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT, run={"cache_ttl": 0.5})
        assert main(["run", str(cfg), "--out", str(tmp_path / "a")]) == 0
        sent = server.attempts
        time.sleep(1.0)
        assert main(["run", str(cfg), "--out", str(tmp_path / "b")]) == 0
        assert server.attempts == 2 * sent  # older than run.cache_ttl: asked again
        capsys.readouterr()
        assert main(["cache", "info"]) == 0
        assert "fake-model" in capsys.readouterr().out
        assert main(["cache", "clear"]) == 0
        assert f"removed {sent}" in capsys.readouterr().out
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert main(["run", str(cfg), "--out", str(tmp_path / "c")]) == 0
        assert server.attempts == 3 * sent


# --------------------------------------------------------------------------- B11: failure accounting


def _flaky_run(make_config, tmp_path: Path, rate: float, max_failure_rate: float) -> tuple[int, Path]:
    """Zero-shot on 25 x 4 inputs; the model answers 'billing' for everything, so accuracy is
    exactly the share of billing examples among the answered ones; `rate` of the requests fail."""

    def responder(body: dict) -> str:
        return json.dumps({"label": "billing"})

    faults = FaultPlan(server_error=rate)
    with FakeOpenAI(responder=responder, faults=faults, seed=3) as server:
        cfg = make_config(server.base_url, n_eval=25, strategies=ZERO_SHOT,
                          run={"max_attempts": 1, "max_failure_rate": max_failure_rate})
        out = tmp_path / f"run-{max_failure_rate}"
        return _run(cfg, out), out


def test_endpoint_failures_are_coverage_not_wrong_answers(make_config, tmp_path, capsys):
    rc, out = _flaky_run(make_config, tmp_path, rate=0.2, max_failure_rate=0.5)
    assert rc == 0
    df = pd.read_csv(out / "results.csv")
    answered = df[~df["endpoint_failed"]]
    assert 5 <= df["endpoint_failed"].sum() <= 40
    arm = _summary(out)["arms"][0]
    assert arm["endpoint_failures"] == df["endpoint_failed"].sum()
    assert arm["answers"] == len(answered) and arm["n"] == len(answered)
    assert arm["coverage"] == pytest.approx(len(answered) / 100)
    # accuracy and compliance over the answered examples only: the failures are not wrong answers
    assert arm["accuracy"] == pytest.approx((answered["expected"] == "billing").mean())
    assert arm["schema_compliance"] == 1.0


def test_too_many_endpoint_failures_make_the_run_incomplete(make_config, tmp_path, capsys):
    rc, out = _flaky_run(make_config, tmp_path, rate=0.2, max_failure_rate=0.01)
    assert rc == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert "run.max_failure_rate" in line and "--resume" in line
    summary = _summary(out)
    assert summary["meta"]["status"] == "incomplete" and summary["recommendation"] is None
    assert any("max_failure_rate" in r for r in summary["recommendation_withheld"])


# --------------------------------------------------------------------------- B12: nothing worked


def test_a_missing_fine_tuned_model_stops_its_arm_at_the_first_404(make_config, tmp_path, capsys):
    def responder(body: dict) -> str | ChatReply:
        if body["model"] == "ft:gpt-4o-mini:org:gone:123":
            return ChatReply.model_not_found(body["model"])
        return default_responder(body)

    strategies = [*ZERO_SHOT, {"name": "ft", "type": "fine_tuned", "model": "fake",
                               "fine_tuned_model": "ft:gpt-4o-mini:org:gone:123"}]
    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=5, strategies=strategies, run={"concurrency": 1})
        out = tmp_path / "run"
        assert _run(cfg, out) == 1
        ft_requests = sum(1 for b in server.requests if b.get("model", "").startswith("ft:"))
        err = capsys.readouterr().err
        assert ft_requests == 2  # a 404 is asked once more, then the arm stops: not twenty
        assert "warning: arm ft" in err and "--allow-missing" in err
        summary = _summary(out)
        assert summary["recommendation"] is None
        assert any("unavailable" in r for r in summary["recommendation_withheld"])
        out2 = tmp_path / "run2"
        assert _run(cfg, out2, "--allow-missing") == 0
    # accepted: a verdict over the arms that were evaluated, naming the missing one
    accepted = _summary(out2)
    assert accepted["recommendation"] is not None and not accepted["recommendation_withheld"]
    assert any("--allow-missing" in r and "ft" in r and "not evaluated" in r
               for r in accepted["recommendation"]["reasons"])


def test_no_verdict_when_nothing_scores_above_chance(make_config, tmp_path, capsys):
    def responder(body: dict) -> str:
        return json.dumps({"label": "nonsense"})  # a mis-specified task: every answer wrong

    strategies = [*ZERO_SHOT, {"name": "fs", "type": "few_shot", "model": "fake", "shots": [1, 2]}]
    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=strategies)
        assert _run(cfg, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "verdict: withheld" in out and "chance" in out
    summary = _summary(tmp_path / "run")
    assert summary["recommendation"] is None
    assert any("chance" in r for r in summary["recommendation_withheld"])


def test_seed_is_sent_only_when_set(make_config, tmp_path):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT, run={"seed": 7})
        assert _run(cfg, tmp_path / "run") == 0
        assert all(b.get("seed") == 7 for b in server.requests if "messages" in b)


# --------------------------------------------------------------------------- A8: teammates can read


def test_report_files_honour_the_umask(make_config, tmp_path):
    old = os.umask(0o022)
    try:
        with FakeOpenAI() as server:
            cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
            assert _run(cfg, tmp_path / "run") == 0
    finally:
        os.umask(old)
    for name in ("run.json", "results.jsonl", "summary.json", "summary.csv", "results.csv",
                 "report.html", "comparisons.csv"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


# --------------------------------------------------------------------------- found in the trial


def test_corrupt_run_files_are_named_not_trusted(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZERO_SHOT)
        assert _run(cfg, out) == 0
    meta_text = (out / "run.json").read_text()
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    cases = [
        ({**first, "k": "two"}, "field 'k'"),
        ({**first, "correct": "yes"}, "field 'correct'"),
        ({**first, "latency_ms": "fast"}, "field 'latency_ms'"),
        ({**first, "format_version": 99}, "format_version 99"),
        ({**first, "arm": "ghost|k=0|draw=0"}, "ghost"),
    ]
    for record, words in cases:
        (out / "results.jsonl").write_text(json.dumps(record) + "\n" + "".join(lines[1:]))
        capsys.readouterr()
        assert main(["report", str(out)]) == 2, words
        (line,) = _error_lines(capsys.readouterr().err)
        assert words in line, line
    (out / "results.jsonl").write_text("".join(lines))
    (out / "run.json").write_text("[]")
    assert main(["report", str(out)]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "run.json" in line
    (out / "run.json").write_text(meta_text)
    assert main(["report", str(out)]) == 0


def test_a_negative_age_clears_nothing(capsys):
    assert main(["cache", "clear", "--older-than", "-5"]) == 2
    assert "--older-than" in capsys.readouterr().err


def test_an_unusable_cache_leaves_no_folder_behind(make_config, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(blocker / "cache"))
    cfg = make_config(n_eval=1, strategies=ZERO_SHOT)
    out = tmp_path / "new" / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()


def test_no_verdict_when_compliance_collapses_everywhere(make_config, tmp_path, capsys):
    def responder(body: dict) -> str:
        return json.dumps({"category": "billing"})  # a schema the task does not use

    strategies = [*ZERO_SHOT, {"name": "fs", "type": "few_shot", "model": "fake", "shots": [1, 2]}]
    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=strategies)
        assert _run(cfg, tmp_path / "run") == 0
    reasons = _summary(tmp_path / "run")["recommendation_withheld"]
    assert any("compliance has collapsed" in r for r in reasons), reasons
