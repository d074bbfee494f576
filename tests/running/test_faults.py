"""Fault injection end to end: the real `openai` client against the loopback fake server.

Every (arm, example) must land in results.csv exactly once whatever the transport does; fatal
answers (no quota, rejected key, a Retry-After beyond run.max_retry_after) stop the whole run
quickly with a clear message and partial reports marked incomplete.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fake_openai import ChatReply, FakeOpenAI, FaultPlan, default_responder, last_user_content

from harness.cli import main

KEY = ["strategy", "k", "draw", "example_id"]
ZERO_SHOT = [{"name": "zs", "type": "zero_shot", "model": "fake"},
             {"name": "zs-terse", "type": "zero_shot", "model": "fake",
              "prompts": {"system": "{instructions} One of: {labels}. Reply {output_format}"}}]
"""Two prompting arms: a fatal stop ends the run while both are half done."""


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), "--no-cache", *extra])


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def _expected_pairs(out: Path) -> set[tuple[str, int, int, str]]:
    """Every (strategy, k, draw, example id) the run's metadata promises."""
    meta = json.loads((out / "run.json").read_text())
    return {(a["strategy"], a["k"], a["draw"], str(e)) for a in meta["arms"] for e in meta["examples"]}


def _pairs(df: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    return [(s, int(k), int(d), str(e)) for s, k, d, e in df[KEY].itertuples(index=False)]


class AfterN:
    """A thread-safe responder: answer normally `n` times, then always `reply`."""

    def __init__(self, n: int, reply: ChatReply) -> None:
        self.n = n
        self.reply = reply
        self.lock = threading.Lock()
        self.seen = 0

    def __call__(self, body: dict) -> str | ChatReply:
        with self.lock:
            self.seen += 1
            if self.seen <= self.n:
                return default_responder(body)
        return self.reply


def _assert_stopped(rc: int, out: Path, err: str, *words: str) -> None:
    """Exit 1, one clear `error:` line naming the cause, partial reports marked incomplete."""
    assert rc == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in err
    data = _summary(out)
    assert data["meta"]["complete"] is False
    assert data["meta"]["status"] == "failed"
    assert "partial reports" in err


# --------------------------------------------------------------------------- 1,000+ requests


def test_thousand_requests_through_seeded_faults(make_config, tmp_path, monkeypatch, capsys):
    """252 examples x 4 arms through 429s, HTML 500/503s, timeouts, cut-off 200s and drops."""
    monkeypatch.setenv("TEST_API_KEY", "sk-fault")
    faults = FaultPlan(rate_limit=0.003, server_error=0.04, unavailable=0.04, slow=0.015,
                       malformed=0.04, drop=0.04, retry_after_s=0.02, slow_s=1.0)
    strategies = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
                  {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2, 4]}]
    with FakeOpenAI(faults=faults, seed=7, api_key="sk-fault") as server:
        cfg = make_config(server.base_url, n_eval=63, strategies=strategies,
                          run={"concurrency": 16, "timeout": 0.5, "max_attempts": 3,
                               "max_failure_rate": 0.05})
        out = tmp_path / "run"
        start = time.monotonic()
        rc = _run(cfg, out)
        elapsed = time.monotonic() - start
        attempts, fault_counts = server.attempts, dict(server.fault_counts)
        assert not server.handler_errors
    captured = capsys.readouterr()
    assert rc == 0, captured.err

    df = pd.read_csv(out / "results.csv")
    expected = _expected_pairs(out)
    assert len(expected) == 252 * 4
    pairs = _pairs(df)
    assert len(pairs) == len(set(pairs)) == len(expected)  # none duplicated
    assert set(pairs) == expected  # none lost

    kinds = df["error_kind"].dropna()
    assert kinds.str.startswith("retries_exhausted:").all(), kinds.value_counts()
    ok = df[df["error_kind"].isna()]
    assert ok["correct"].all() and ok["schema_valid"].all()
    failed = df[df["error_kind"].notna()]
    assert (failed["attempts"] == 3).all() and not failed["correct"].any()
    assert not failed["schema_valid"].any()

    counts = _summary(out)["meta"]["counts"]
    assert _summary(out)["meta"]["complete"] is True
    assert counts["requests"] == int(df["attempts"].sum()) >= 1000
    assert counts["requests"] == attempts  # every attempt the server saw, and no other
    assert counts["retries"] == counts["requests"] - len(df)
    # every injected fault was retried, except the last attempt of an example that gave up
    assert counts["retries"] == sum(fault_counts.values()) - len(failed)
    assert counts["failures"] == len(failed)
    assert f"retries {counts['retries']}" in captured.out
    summary = pd.read_csv(out / "summary.csv")
    # endpoint failures are coverage, not wrong answers of the model
    assert summary["endpoint_failures"].sum() == len(failed) and summary["errors"].sum() == 0
    assert (summary["answers"] == 252 * summary["draws"] - summary["endpoint_failures"]).all()
    assert set(fault_counts) == {"rate_limit", "server_error", "unavailable", "slow", "malformed",
                                 "drop"}
    print(f"\n[faults] {len(df)} examples, {counts['requests']} requests ({attempts} at the server), "
          f"{counts['retries']} retries, faults {fault_counts}, "
          f"exhausted {kinds.value_counts().to_dict()}, {elapsed:.1f} s")
    assert elapsed < 60


# --------------------------------------------------------------------------- fatal answers


@pytest.mark.parametrize(("reply", "words"), [
    (ChatReply.insufficient_quota(), ("quota", "stopping the run")),
    (ChatReply.unauthorized(), ("HTTP 401", "stopping the run")),
    (ChatReply.error(403, "Project does not have access", type_="permission_error"),
     ("HTTP 403", "stopping the run")),
])
def test_fatal_answer_stops_the_run_at_once(make_config, tmp_path, monkeypatch, capsys, reply, words):
    """No quota / a revoked key / forbidden: few requests sent, exit 1, incomplete reports."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=AfterN(6, reply)) as server:
        cfg = make_config(server.base_url, n_eval=25, run={"concurrency": 4}, strategies=ZERO_SHOT)
        out = tmp_path / "run"
        rc = _run(cfg, out)
        sent = server.attempts
    _assert_stopped(rc, out, capsys.readouterr().err, *words)
    assert sent <= 6 + 8  # the 6 good answers plus at most what was in flight; no retries
    done = pd.read_csv(out / "results.csv")
    assert len(done) <= 6 and done["error_kind"].isna().all()  # the fatal one is not recorded
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_rejected_key_at_start_is_bad_input_like_an_unreachable_endpoint(
        make_config, tmp_path, monkeypatch, capsys):
    """A key the endpoint rejects at the first probe: no chat request at all, and, like an
    unreachable endpoint, exit 2 with one line and nothing left behind (no empty reports)."""
    monkeypatch.setenv("TEST_API_KEY", "sk-wrong-key-123456")
    with FakeOpenAI(api_key="sk-right") as server:
        cfg = make_config(server.base_url, n_eval=5, strategies=ZERO_SHOT)
        out = tmp_path / "run"
        rc = _run(cfg, out)
        assert server.attempts == 0
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "rejected the API key" in lines[0] and "TEST_API_KEY" in lines[0]
    assert "sk-wrong-key-123456" not in err and "Traceback" not in err


def test_retry_after_beyond_max_retry_after_stops(make_config, tmp_path, monkeypatch, capsys):
    """A 429 asking for 30 s when run.max_retry_after is 2 s: stop at once, say why."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(faults=FaultPlan(rate_limit=1.0, retry_after_s=30)) as server:
        cfg = make_config(server.base_url, n_eval=10, run={"concurrency": 2, "max_retry_after": 2},
                          strategies=ZERO_SHOT)
        out = tmp_path / "run"
        start = time.monotonic()
        rc = _run(cfg, out)
        elapsed = time.monotonic() - start
        sent = server.attempts
    _assert_stopped(rc, out, capsys.readouterr().err, "30 s", "run.max_retry_after")
    assert sent <= 4 and elapsed < 10


# --------------------------------------------------------------------------- per-example errors


def test_client_errors_are_not_retried(make_config, tmp_path, monkeypatch):
    """400 / 422 are answers about the request: one attempt, recorded as data. A prompt beyond
    the context counts against the model; the others are endpoint failures, which leave the
    run incomplete (exit 1) when they exceed run.max_failure_rate. (A 404 for the model stops
    the arm: tests/running/test_trust.py.)"""
    monkeypatch.setenv("TEST_API_KEY", "x")
    replies = {
        "message 0 ": ChatReply.context_length_exceeded(),
        "message 1 ": ChatReply.error(400, "Invalid value for 'temperature'."),
        "message 3 ": ChatReply.error(422, "Unprocessable entity"),
    }

    def responder(body: dict) -> str | ChatReply:
        text = last_user_content(body)
        return next((r for tag, r in replies.items() if tag in text), default_responder(body))

    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=5,
                          strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}])
        out = tmp_path / "run"
        assert _run(cfg, out) == 1
        per_input = server.count_by_user_content()
    assert set(per_input.values()) == {1}
    df = pd.read_csv(out / "results.csv")
    assert (df["attempts"] == 1).all()
    kinds = df["error_kind"].fillna("ok").value_counts().to_dict()
    assert kinds == {"context_length": 4, "bad_request": 4, "unprocessable": 4, "ok": 8}
    assert not df[df["error_kind"].notna()]["correct"].any()
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["errors"] == 4 and row["endpoint_failures"] == 8 and row["answers"] == 12
    assert row["accuracy"] == pytest.approx(8 / 12)  # the context-length failures count as wrong
    assert _summary(out)["recommendation"] is None


def test_attempts_are_capped_per_example(make_config, tmp_path, monkeypatch):
    """A request that always fails with 500 is tried run.max_attempts times, then recorded."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(faults=FaultPlan(fail_first_n=100)) as server:
        cfg = make_config(server.base_url, n_eval=1, run={"max_attempts": 2},
                          strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}])
        out = tmp_path / "run"
        assert _run(cfg, out) == 1  # every answer failed at the endpoint: incomplete
        assert set(server.count_by_user_content().values()) == {2}
    df = pd.read_csv(out / "results.csv")
    assert (df["attempts"] == 2).all()
    assert (df["error_kind"] == "retries_exhausted:http_500").all()
    assert df["error"].str.startswith("HTTP 500").all() and not df["error"].str.contains("<html").any()


def _first_attempt_rate_limited(headers: dict[str, str]) -> Callable[[dict], str | ChatReply]:
    """429 with `headers` on the first attempt of each input, a normal answer afterwards."""
    seen: set[str] = set()
    lock = threading.Lock()

    def responder(body: dict) -> str | ChatReply:
        text = last_user_content(body)
        with lock:
            first = text not in seen
            seen.add(text)
        if first:
            return ChatReply.error(429, "Rate limit reached", type_="requests",
                                   code="rate_limit_exceeded", headers=headers)
        return default_responder(body)

    return responder


@pytest.mark.parametrize(("headers", "hinted"), [
    ({"retry-after-ms": "1300", "Retry-After": "2"}, 1.3),  # the ms header wins
    ({"Retry-After": "2"}, 2.0),
])
def test_retry_waits_as_long_as_retry_after_says(make_config, tmp_path, monkeypatch, headers, hinted):
    """The wait before the retry is the server's hint, not the (shorter) backoff."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=_first_attempt_rate_limited(headers)) as server:
        cfg = make_config(server.base_url, n_eval=1, run={"concurrency": 1},
                          strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}],
                          extra={"dataset": {"eval": "eval.csv", "input": "text",
                                             "target": "category", "limit": 1}})
        out = tmp_path / "run"
        start = time.monotonic()
        assert _run(cfg, out) == 0
        elapsed = time.monotonic() - start
        assert server.attempts == 2
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 1 and df["attempts"].tolist() == [2] and df["error_kind"].isna().all()
    assert hinted <= elapsed < hinted + 5


def test_partial_reports_with_an_empty_sweep(make_config, tmp_path, monkeypatch, capsys):
    """A fatal stop before any few-shot arm finished still writes partial reports, exit 1.

    (Regression: the learning curve had no complete row and the report crashed.)
    """
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=AfterN(3, ChatReply.insufficient_quota())) as server:
        cfg = make_config(server.base_url, n_eval=5, run={"concurrency": 1})
        out = tmp_path / "run"
        rc = _run(cfg, out)
    _assert_stopped(rc, out, capsys.readouterr().err, "quota")
