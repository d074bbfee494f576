"""Replicated endpoints: least-outstanding routing, taking a dead replica out and back in, and
the serving replica recorded per example (unit tests on the pool, loopback tests end to end)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI

from harness.cli import main
from harness.config import ModelConfig, RunConfig
from harness.model.completion import ChatRequest
from harness.model.endpoint import Endpoint
from harness.model.replicas import Pool, Replica


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(n: int = 3, clock: Clock | None = None) -> Pool[None]:
    return Pool([Replica(f"http://r{i}", None) for i in range(n)], max_failures=3,
                base_cooldown=2.0, max_cooldown=8.0, clock=clock or Clock())


def test_routes_to_the_fewest_outstanding_and_rotates_on_ties() -> None:
    p = pool()
    assert [p.pick().url for _ in range(6)] == ["http://r0", "http://r1", "http://r2"] * 2
    p.replicas[0].outstanding = 2
    p.replicas[1].outstanding = 1
    assert p.pick().url == "http://r2"
    p.replicas[2].outstanding = 5
    assert p.pick().url == "http://r1"


def test_use_counts_outstanding_requests_until_the_block_ends() -> None:
    p = pool(2)
    with p.use() as a, p.use() as b:
        assert a is not b and a.outstanding == b.outstanding == 1
        with p.use() as c:
            assert c.outstanding == 2
    assert [r.outstanding for r in p.replicas] == [0, 0]


def test_consecutive_connection_failures_take_a_replica_out_with_growing_cooldowns() -> None:
    clock = Clock()
    p = pool(2, clock)
    dead = p.replicas[0]
    for _ in range(2):
        p.connection_failed(dead)
    assert p.healthy() == ["http://r0", "http://r1"]  # two in a row: still in service
    p.connection_failed(dead)
    assert p.healthy() == ["http://r1"]
    assert all(p.pick().url == "http://r1" for _ in range(5))
    clock.now += 2.01  # cooldown over: probed again by the next pick that prefers it
    assert "http://r0" in p.healthy()
    p.connection_failed(dead)  # still dead: out again at once, for twice as long
    assert dead.cooldown == 4.0 and p.healthy() == ["http://r1"]
    clock.now += 4.01
    p.connection_failed(dead)
    clock.now += 8.01
    p.connection_failed(dead)
    assert dead.cooldown == 8.0  # capped
    clock.now += 8.01
    p.succeeded(dead)  # answered: fully back
    assert dead.consecutive_failures == 0 and dead.cooldown == 0.0
    assert p.healthy() == ["http://r0", "http://r1"]


def test_a_success_between_failures_resets_the_count() -> None:
    p = pool(2)
    r = p.replicas[0]
    for _ in range(10):
        p.connection_failed(r)
        p.connection_failed(r)
        p.succeeded(r)
    assert p.healthy() == ["http://r0", "http://r1"] and r.failures == 20


def test_with_every_replica_out_the_one_back_soonest_is_tried() -> None:
    clock = Clock()
    p = pool(2, clock)
    for _ in range(3):
        p.connection_failed(p.replicas[1])
    clock.now += 1
    for _ in range(3):
        p.connection_failed(p.replicas[0])
    assert p.healthy() == []
    assert p.pick().url == "http://r1"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens here


def _model(urls: list[str]) -> ModelConfig:
    return ModelConfig(name="fake", provider="openai", model="fake-model", base_url=urls[0],
                       base_urls=tuple(urls), api_key_env=None, token_param="max_tokens",
                       structured_output="none", timeout=10.0, n_ctx=4096, price=None)


async def _send(ep: Endpoint, n: int, concurrency: int) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await ep.complete(ChatRequest(
                model="fake-model", messages=({"role": "user", "content": f"q{i}"},),
                temperature=0.0, max_tokens=8))

    try:
        await ep.probe()
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await ep.aclose()


def test_two_loopback_replicas_share_the_load_and_each_answer_names_its_replica() -> None:
    with FakeOpenAI(latency_s=0.05) as a, FakeOpenAI(latency_s=0.05) as b:
        ep = Endpoint(_model([a.base_url, b.base_url]), run=RunConfig())
        got = asyncio.run(_send(ep, 40, 8))
    assert all(c.error_kind is None for c in got)
    served = Counter(c.replica for c in got)
    assert served == {a.base_url: a.attempts, b.base_url: b.attempts}
    assert 15 <= served[a.base_url] <= 25  # least outstanding over equal replicas: about half


def test_a_dead_replica_is_taken_out_and_every_example_is_still_answered() -> None:
    dead = _closed_port_url()
    with FakeOpenAI() as live:
        ep = Endpoint(_model([dead, live.base_url]), run=RunConfig(max_attempts=4))
        got = asyncio.run(_send(ep, 30, 4))
        assert ep.pool.healthy() == [live.base_url]  # out since the probe found it dead
    assert all(c.error_kind is None and c.replica == live.base_url for c in got)
    assert live.attempts == 30


def test_a_replica_dying_mid_run_costs_retries_not_examples() -> None:
    with FakeOpenAI() as a:
        b = FakeOpenAI()
        b.__enter__()
        ep = Endpoint(_model([a.base_url, b.base_url]), run=RunConfig(max_attempts=6))

        async def scenario() -> list[Any]:
            await ep.probe()
            first = await asyncio.gather(*(ep.complete(ChatRequest(
                model="fake-model", messages=({"role": "user", "content": f"a{i}"},),
                temperature=0.0, max_tokens=8)) for i in range(10)))
            b.__exit__(None, None, None)  # replica b goes away
            second = await asyncio.gather(*(ep.complete(ChatRequest(
                model="fake-model", messages=({"role": "user", "content": f"b{i}"},),
                temperature=0.0, max_tokens=8)) for i in range(20)))
            await ep.aclose()
            return [*first, *second]

        got = asyncio.run(scenario())
    assert all(c.error_kind is None for c in got)
    assert {c.replica for c in got[10:]} == {a.base_url}
    assert ep.pool.replicas[1].failures >= 3 and ep.pool.healthy() == [a.base_url]


def test_no_replica_reachable_is_one_clear_error() -> None:
    ep = Endpoint(_model([_closed_port_url(), _closed_port_url()]), run=RunConfig())
    with pytest.raises(Exception, match=r"models.fake: cannot reach .* \(nor any of its 1 other"):
        asyncio.run(ep.probe())


def _config(tmp: Path, base_url: Any) -> Path:
    rows = [{"text": f"message {i}", "label": "a" if i % 2 else "b"} for i in range(12)]
    (tmp / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"name": "rep",
           "task": {"type": "classification", "instructions": "Label it.", "labels": ["a", "b"]},
           "dataset": {"eval": "eval.jsonl", "input": "text", "target": "label"},
           "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                               "api_key_env": None}},
           "strategies": [{"name": "zero-shot", "type": "zero_shot", "model": "fake"}],
           "run": {"concurrency": 4}}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _answer(body: dict[str, Any]) -> str:
    return json.dumps({"label": "a"})


def test_a_run_with_a_base_url_list_records_the_replica_and_resumes_with_another_list(
        tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer, latency_s=0.02) as a, \
            FakeOpenAI(responder=_answer, latency_s=0.02) as b:
        cfg = _config(tmp_path, [a.base_url, b.base_url])
        assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-cache"]) == 0
        records = [json.loads(line) for line in (tmp_path / "out/results.jsonl").open()]
        assert Counter(r["replica"] for r in records) == {a.base_url: a.attempts,
                                                          b.base_url: b.attempts}
        header = (tmp_path / "out/results.csv").read_text().splitlines()[0].split(",")
        assert "replica" in header
        # a third replica joins (same first URL): the folder may be resumed, nothing re-asked
        with FakeOpenAI(responder=_answer) as c:
            cfg = _config(tmp_path, [a.base_url, c.base_url])
            asked = a.attempts + b.attempts
            assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--resume",
                         "--no-cache"]) == 0
            assert a.attempts + b.attempts + c.attempts == asked


def test_a_single_base_url_leaves_records_as_they_were(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as a:
        cfg = _config(tmp_path, a.base_url)
        assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--no-cache"]) == 0
    records = [json.loads(line) for line in (tmp_path / "out/results.jsonl").open()]
    assert records and all("replica" not in r for r in records)


def test_the_faster_replica_gets_more_of_the_work() -> None:
    with FakeOpenAI(latency_s=0.2) as slow, FakeOpenAI(latency_s=0.02) as fast:
        ep = Endpoint(_model([slow.base_url, fast.base_url]), run=RunConfig())
        got = asyncio.run(_send(ep, 60, 4))
    served = Counter(c.replica for c in got)
    assert served[fast.base_url] > 3 * served[slow.base_url]
