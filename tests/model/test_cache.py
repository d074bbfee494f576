"""The SQLite response cache: what its key covers, what it never stores, and how runs use it.

Draws at temperature 0: a repeat of the very same prompt shares one entry (and one request).
Few-shot draws normally differ in their messages anyway, so sharing only ever merges requests
whose answer is meant to be the same; at temperature > 0 each draw is a real, separate sample.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_csv
from fake_openai import FakeOpenAI, FaultPlan

from harness.cli import main
from harness.model.cache import ResponseCache, cache_key
from harness.model.endpoint import ChatRequest, Completion

BASE = ChatRequest(
    model="gpt-4o-mini",
    messages=({"role": "system", "content": "Route it."}, {"role": "user", "content": "my card"}),
    temperature=0.0, max_tokens=16, seed=0,
    response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {}}},
)
URL = "https://api.example.com/v1"
ONE_SHOT_DRAWS = [{"name": "fs", "type": "few_shot", "model": "fake", "shots": [1], "draws": 3}]


def _key(**changes: object) -> str:
    return cache_key(URL, dataclasses.replace(BASE, **changes))


@pytest.mark.parametrize("changes", [
    {"model": "gpt-4o"},
    {"messages": ({"role": "user", "content": "my card"},)},
    {"messages": ({"role": "system", "content": "Route it!"}, {"role": "user", "content": "my card"})},
    {"temperature": 0.7},
    {"max_tokens": 17},
    {"token_param": "max_completion_tokens"},
    {"seed": 1},
    {"seed": None},
    {"response_format": {"type": "json_object"}},
    {"response_format": None},
], ids=lambda c: ",".join(c))
def test_key_covers_everything_that_shapes_the_answer(changes):
    assert _key(**changes) != _key()


def test_key_covers_the_endpoint_but_not_a_trailing_slash():
    assert cache_key("https://other.example.com/v1", BASE) != _key()
    assert cache_key(URL + "/", BASE) == _key()


def test_draws_are_separate_samples_only_above_temperature_zero():
    hot = [cache_key(URL, dataclasses.replace(BASE, temperature=0.7, sample=i)) for i in range(3)]
    cold = [cache_key(URL, dataclasses.replace(BASE, sample=i)) for i in range(3)]
    assert len(set(hot)) == 3 and len(set(cold)) == 1


def test_failures_are_not_cached_and_hits_are_marked(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("bad", "m", Completion(error_kind="retries_exhausted:http_500", error="HTTP 500"))
    assert cache.get("bad") is None
    cache.put("good", "m", Completion(content='{"label": "x"}', prompt_tokens=10, completion_tokens=3,
                                      latency_ms=123.0, attempts=2))
    hit = cache.get("good")
    cache.close()
    assert hit is not None and hit.content == '{"label": "x"}' and hit.prompt_tokens == 10
    assert hit.cached and hit.attempts == 0 and hit.latency_ms == 0.0


# --------------------------------------------------------------------------- runs


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), *extra])


def _cache_files() -> list[Path]:
    """The cache database and its WAL/shm side files in this test's HARNESS_CACHE_DIR."""
    return sorted(Path(os.environ["HARNESS_CACHE_DIR"]).glob("responses.sqlite*"))


def _entries() -> int:
    """Rows in the response cache."""
    db = sqlite3.connect(Path(os.environ["HARNESS_CACHE_DIR"]) / "responses.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])
    finally:
        db.close()


def _single_shot_pool(cfg: Path) -> None:
    """A training pool of one example: every few-shot draw then sends the very same prompt."""
    write_csv(cfg.parent / "train.csv", [{"text": "billing\nthe only training message",
                                          "category": "billing"}])


def test_api_key_is_never_stored(make_config, tmp_path, monkeypatch):
    secret = "sk-live-DO-NOT-STORE-0123456789"
    monkeypatch.setenv("TEST_API_KEY", secret)
    with FakeOpenAI(api_key=secret) as server:
        cfg = make_config(server.base_url, n_eval=3)
        assert _run(cfg, tmp_path / "run") == 0
    files = _cache_files()
    assert files and _entries() == 12 * 5
    for path in files:  # the database and its write-ahead log
        data = path.read_bytes()
        assert secret.encode() not in data and b"DO-NOT-STORE" not in data


def test_draws_at_temperature_above_zero_are_real_samples(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ONE_SHOT_DRAWS,
                          run={"temperature": 0.7, "concurrency": 1})
        _single_shot_pool(cfg)
        assert _run(cfg, tmp_path / "run") == 0
        per_input = server.count_by_user_content()
        bodies = list(server.requests)
    # 8 inputs x 3 draws: the draws send identical messages, yet each one is its own request
    assert len(bodies) == 24 and set(per_input.values()) == {3}
    assert all(b["temperature"] == 0.7 for b in bodies)
    assert _entries() == 24
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert not df["cached"].any()


def test_draws_at_temperature_zero_share_one_request(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ONE_SHOT_DRAWS,
                          run={"temperature": 0, "concurrency": 1})
        _single_shot_pool(cfg)
        assert _run(cfg, tmp_path / "run") == 0
        per_input = server.count_by_user_content()
    assert sum(per_input.values()) == 8 and set(per_input.values()) == {1}
    assert _entries() == 8
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(df) == 24
    assert df.groupby("draw")["cached"].all().to_dict() == {0: False, 1: True, 2: True}
    assert (df.groupby("example_id")["prediction"].nunique() == 1).all()


def test_second_identical_run_is_served_from_cache_at_no_cost(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=3)
        text = cfg.read_text().replace("api_key_env: TEST_API_KEY",
                                       "api_key_env: TEST_API_KEY\n    price: {input: 1.0, output: 4.0}")
        cfg.write_text(text)
        assert _run(cfg, tmp_path / "first") == 0
        sent = server.attempts
        monkeypatch.setenv("TEST_API_KEY", "a-different-key")  # the key is not part of the cache key
        assert _run(cfg, tmp_path / "second") == 0
        assert server.attempts == sent == 12 * 5
    first = pd.read_csv(tmp_path / "first" / "results.csv")
    second = pd.read_csv(tmp_path / "second" / "results.csv")
    assert not first["cached"].any() and (first["cost_usd"] > 0).all()
    assert second["cached"].all() and (second["cost_usd"] == 0).all()
    assert (second["attempts"] == 0).all()
    assert second["prediction"].tolist() == first["prediction"].tolist()
    summary = pd.read_csv(tmp_path / "second" / "summary.csv")
    assert (summary["cache_hits"] == summary["answers"]).all() and (summary["run_cost_usd"] == 0).all()


def test_two_models_never_share_an_entry(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server, FakeOpenAI() as other:
        models = {
            "fake": {"provider": "openai", "model": "fake-model", "base_url": server.base_url,
                     "api_key_env": "TEST_API_KEY"},
            "bigger": {"provider": "openai", "model": "fake-model-xl", "base_url": server.base_url,
                       "api_key_env": "TEST_API_KEY"},
            "elsewhere": {"provider": "openai", "model": "fake-model", "base_url": other.base_url,
                          "api_key_env": "TEST_API_KEY"},
        }
        strategies = [{"name": n, "type": "zero_shot", "model": n} for n in models]
        cfg = make_config(server.base_url, n_eval=2, strategies=strategies, extra={"models": models})
        assert _run(cfg, tmp_path / "run") == 0
        by_model = pd.Series([b["model"] for b in server.requests]).value_counts().to_dict()
        assert by_model == {"fake-model": 8, "fake-model-xl": 8}
        assert other.attempts == 8
    assert _entries() == 24
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert not df["cached"].any()


def test_no_cache_sends_everything(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2)
        assert _run(cfg, tmp_path / "warm") == 0  # fills the cache
        assert server.attempts == 40
        assert _run(cfg, tmp_path / "a", "--no-cache") == 0
        assert _run(cfg, tmp_path / "b", "--no-cache") == 0
        assert server.attempts == 120
    for name in ("a", "b"):
        df = pd.read_csv(tmp_path / name / "results.csv")
        assert not df["cached"].any() and (df["attempts"] == 1).all()
    assert _entries() == 40


def test_failed_requests_are_asked_again(make_config, tmp_path, monkeypatch):
    """A transient failure must not be frozen into the cache."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(faults=FaultPlan(fail_first_n=2)) as server:
        cfg = make_config(server.base_url, n_eval=1, run={"max_attempts": 2},
                          strategies=[{"name": "zs", "type": "zero_shot", "model": "fake"}])
        assert _run(cfg, tmp_path / "first") == 1  # every answer failed: incomplete
        assert _run(cfg, tmp_path / "second") == 0
        assert server.attempts == 4 * 2 + 4
    first = pd.read_csv(tmp_path / "first" / "results.csv")
    second = pd.read_csv(tmp_path / "second" / "results.csv")
    assert (first["error_kind"] == "retries_exhausted:http_500").all()
    assert second["error_kind"].isna().all() and not second["cached"].any()


def test_entries_are_written_in_batches_and_none_is_lost_on_close(tmp_path):
    from harness.model.cache import ResponseCache

    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, batch=3, flush_every=3600)
    comp = Completion(content='{"label": "x"}', finish_reason="stop")
    cache.put("k1", "m", comp)
    cache.put("k2", "m", comp)
    other = sqlite3.connect(str(path))
    assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0  # pending
    assert cache.get("k1") is not None and cache.get("k1").cached  # pending entries are served
    cache.put("k3", "m", comp)  # the third fills the batch: one transaction
    assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3
    cache.put("k4", "m", comp)
    cache.close()  # what is pending is written on close (the runner closes it however it ends)
    assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 4
    other.close()
