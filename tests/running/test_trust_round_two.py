"""Issue 23 (trust, round two), through the CLI: the spend cap, the history file checked before
the first request, messages that say what happened after a 404, `~` in paths, and one rate
limiter per endpoint."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import ChatReply, FakeOpenAI, FaultPlan, default_responder

from harness.cli import main

ZS = [{"name": "zs", "type": "zero_shot", "model": "fake"}]
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")


def _models(server: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"models": {"fake": {"provider": "openai", "model": "fake-model",
                                "base_url": server.base_url, "api_key_env": "TEST_API_KEY",
                                **extra}}}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# --------------------------------------------------------------------------- A3: the spend cap


@pytest.mark.parametrize("how", ["config", "flag"])
def test_the_spend_cap_stops_the_run_keeps_records_and_exits_1(make_config, tmp_path, capsys, how):
    with FakeOpenAI() as server:
        run = {"concurrency": 1, **({"max_cost_usd": 0.001} if how == "config" else {})}
        cfg = make_config(server.base_url, n_eval=5, strategies=ZS, run=run,
                          extra=_models(server, price=PRICE))
        flags = ["--max-cost", "0.001"] if how == "flag" else []
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--no-cache", *flags]) == 1
        sent = len(server.requests)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(last) == 1 and "spend cap" in last[0] and "$0.001" in last[0] and "spent" in last[0]
    assert 0 < sent < 20  # stopped early, before the cap: 20 examples in all
    assert _lines(out / "results.jsonl") == sent  # every paid answer is kept
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and "spend cap" in meta["message"]
    assert 0 < meta["counts"]["spent_usd"] <= 0.001
    assert (out / "summary.json").exists()  # partial reports
    assert json.loads((out / "summary.json").read_text())["recommendation"] is None


def test_a_resume_with_a_higher_cap_finishes_without_paying_twice(make_config, tmp_path):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZS, run={"concurrency": 1},
                          extra=_models(server, price=PRICE))
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--max-cost", "0.0003"]) == 1
        first = len(server.requests)
        assert main(["run", str(cfg), "--out", str(out), "--max-cost", "1"]) == 0
        assert len(server.requests) == 8  # each example asked once in all
    assert 0 < first < 8


def test_a_cap_with_an_unknown_price_is_refused_before_any_request(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZS)  # fake-model: no price
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--max-cost", "5"]) == 2
        assert not server.requests
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: run.max_cost_usd") and "models.fake.price" in err[-1]
    assert not (tmp_path / "run").exists()


def test_max_cost_must_be_positive(make_config, capsys):
    assert main(["run", str(make_config()), "--max-cost", "0"]) == 2
    assert "--max-cost" in capsys.readouterr().err


# ------------------------------------------------------- C6: the history file, checked first


def test_an_unwritable_history_is_refused_before_the_first_request(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZS)
        code = main(["run", str(cfg), "--out", str(tmp_path / "run"), "--history",
                     "/proc/hist.jsonl"])
        assert code == 2 and not server.requests
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --history: /proc/hist.jsonl")
    assert not (tmp_path / "run").exists()


def test_a_history_problem_after_a_complete_run_is_a_warning(make_config, tmp_path, capsys,
                                                             monkeypatch):
    import harness.analysis.history as history

    def broken(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(history, "append_history", broken)
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZS)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "warning: history file" in err and "No space left" in err


# ------------------------------------------------- D11, D12: what happened after a 404


def test_an_arm_404d_midway_says_how_far_it_got(make_config, tmp_path, capsys):
    calls = {"n": 0}
    lock = threading.Lock()

    def responder(body: dict) -> str | ChatReply:
        if body["model"].startswith("ft:"):
            with lock:
                calls["n"] += 1
                if calls["n"] > 3:  # the model went away after three answers
                    return ChatReply.model_not_found(body["model"])
        return default_responder(body)

    strategies = [*ZS, {"name": "ft", "type": "fine_tuned", "model": "fake",
                        "fine_tuned_model": "ft:fake-model:org:x:1"}]
    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=5, strategies=strategies, run={"concurrency": 1})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 1
    captured = capsys.readouterr()
    assert "evaluated on 3 of 20 examples, then the endpoint does not know model" in captured.err
    assert "was not evaluated" not in captured.err
    assert "100%), 16 not requested: model unavailable" in captured.err  # progress says it
    counts = json.loads((tmp_path / "run" / "run.json").read_text())["counts"]
    assert counts["not_requested"] == 16
    assert counts["endpoint_failures"] == 1  # the 404 itself (asked twice), not 17


def test_a_model_that_never_existed_is_not_counted_as_endpoint_failures(make_config, tmp_path,
                                                                        capsys):
    strategies = [*ZS, {"name": "ft", "type": "fine_tuned", "model": "fake",
                        "fine_tuned_model": "never-trained"}]
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=strategies)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--allow-missing"]) == 0
        assert all(b["model"] == "fake-model" for b in server.requests)
    out = capsys.readouterr().out
    assert "endpoint failures 0," in out and "not requested 8 (model unavailable)" in out
    assert "verdict: withheld" not in out


# ------------------------------------------------------------------------- D13: ~ in paths


def test_tilde_in_out_is_the_home_folder(make_config, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=1, strategies=ZS)
        assert main(["run", str(cfg), "--out", "~/x", "--history", "~/h.jsonl"]) == 0
    assert (home / "x" / "results.jsonl").exists() and (home / "h.jsonl").exists()
    assert not (tmp_path / "~").exists()
    assert f"reports: {home / 'x'}/" in capsys.readouterr().out


# ------------------------------------------------------------- E16: one limiter per endpoint


class _InFlight:
    """A responder that records the most requests it served at once among its first 16."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.now = 0
        self.served = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        with self.lock:
            self.now += 1
            self.served += 1
            if self.served <= 16:
                self.peak = max(self.peak, self.now)
        time.sleep(self.latency)
        with self.lock:
            self.now -= 1
        return default_responder(body)


def test_a_429_storm_on_one_endpoint_does_not_slow_another(make_config, tmp_path):
    calm = _InFlight(0.03)
    with FakeOpenAI(faults=FaultPlan(rate_limit=0.3), seed=1) as stormy, \
            FakeOpenAI(responder=calm) as other:
        models = {"a": {"provider": "openai", "model": "fake-model", "base_url": stormy.base_url,
                        "api_key_env": "TEST_API_KEY"},
                  "b": {"provider": "openai", "model": "fake-model", "base_url": other.base_url,
                        "api_key_env": "TEST_API_KEY"}}
        strategies = [{"name": "on-a", "type": "zero_shot", "model": "a"},  # a is asked first
                      {"name": "on-b", "type": "zero_shot", "model": "b"}]
        cfg = make_config(n_eval=10, strategies=strategies, extra={"models": models},
                          run={"concurrency": 8, "max_attempts": 20})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        assert stormy.fault_counts["rate_limit"] >= 5
    # a shared limiter, halved by a's 429s, would start b at half its concurrency or less
    assert calm.peak == 8
