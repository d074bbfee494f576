"""ModelSession: one `generate` per arm, one server / limiter / batch journal shared where the
endpoint is shared, and everything it started closed again (against the fake OpenAI server;
the local llama.cpp servers replaced by a stand-in)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fake_openai import FakeOpenAI, FaultPlan

import harness.model.session as session_module
from harness.config import ModelConfig, Price, RunConfig
from harness.errors import InputError
from harness.model.cache import open_cache
from harness.model.completion import Completion
from harness.model.limits import AdaptiveLimiter
from harness.model.session import ModelSession
from harness.strategies import Generate

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"label": {"type": "string"}},
                          "required": ["label"]}
PROMPT = [{"role": "user", "content": "billing\nwhere is my invoice?"}]


def model(name: str, base_url: str | None = None, *, provider: str = "openai",
          mode: str | None = None) -> ModelConfig:
    return ModelConfig(name=name, provider=provider, model=f"{name}-model", base_url=base_url,
                       api_key_env=None, token_param="max_tokens",
                       structured_output="json_schema", timeout=5.0, n_ctx=2048, price=None,
                       mode=mode)


class Meter:
    """Records what the session reports (model.session.Meter)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.hits = 0
        self.retries: list[str] = []
        self.settled: list[Completion] = []
        self.released = 0

    def cache_hit(self) -> None:
        self.hits += 1

    def retried(self, kind: str) -> None:
        self.retries.append(kind)

    def reserve(self, price: Price | None, messages: Sequence[dict[str, str]]) -> float:
        if self.refuse:
            raise RuntimeError("over the cap")
        return 1.0

    def release(self, held: float) -> None:
        self.released += 1

    def settle(self, held: float, price: Price | None, completion: Completion) -> None:
        self.settled.append(completion)


class FakeServers:
    """Stands in for LocalServers: records its arguments, start and stop."""

    made: ClassVar[list[FakeServers]] = []
    url: ClassVar[str] = ""

    def __init__(self, count: int | None, adapters: Mapping[str, Path] | None = None, *,
                 n_ctx: int = 4096) -> None:
        self.count, self.adapters, self.n_ctx = count, dict(adapters or {}), n_ctx
        self.started = self.stopped = 0
        FakeServers.made.append(self)

    @property
    def base_urls(self) -> list[str]:
        return [self.url]

    def start(self) -> FakeServers:
        self.started += 1
        return self

    def stop(self) -> None:
        self.stopped += 1


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeServers]:
    """Local servers replaced by FakeServers, the base GGUF by a small file."""
    FakeServers.made = []
    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"GGUF one")
    monkeypatch.setattr(session_module, "LocalServers", FakeServers)
    monkeypatch.setattr(session_module, "base_model_path", lambda: gguf)
    return FakeServers


def make(models: list[ModelConfig], tmp_path: Path, **kwargs: Any) -> ModelSession:
    kwargs.setdefault("meter", Meter())
    kwargs.setdefault("new_limiter", lambda: AdaptiveLimiter(2))
    return ModelSession({m.name: m for m in models}, kwargs.pop("run", RunConfig(concurrency=2)),
                        batch_journal=tmp_path / "batches.json", chars_per_token=4.0, **kwargs)


def test_one_generate_per_arm_and_one_limiter_per_endpoint(tmp_path: Path) -> None:
    made: list[AdaptiveLimiter] = []

    def new_limiter() -> AdaptiveLimiter:
        made.append(AdaptiveLimiter(2))
        return made[-1]

    async def scenario(one: str, two: str) -> tuple[list[Generate], Completion, ModelSession]:
        session = make([model("a", one), model("b", one), model("c", two)], tmp_path,
                       new_limiter=new_limiter)
        async with session:
            gens: list[Generate] = [
                session.generate("a", structured_output="json_schema", schema=SCHEMA),
                session.generate("a", structured_output="json_schema", schema=dict(SCHEMA)),
                session.generate("a", structured_output="json_object", schema=SCHEMA),
                session.generate("a", structured_output="json_schema", schema={"type": "object"}),
                session.generate("a", structured_output="json_schema", schema=SCHEMA,
                                 logprobs=True),
                session.generate("b", structured_output="json_schema", schema=SCHEMA),
            ]
            comp = await gens[0](PROMPT, model_id="a-model")
            assert not session.batched("a")
        return gens, comp, session

    with FakeOpenAI() as first, FakeOpenAI() as second:
        gens, comp, session = asyncio.run(scenario(first.base_url, second.base_url))
        bodies = list(first.requests)
    assert gens[0] is gens[1]  # the same arm's settings: the same generate
    assert len({id(g) for g in gens}) == 5
    assert len(made) == 2  # a and b share their endpoint's limiter; c has its own
    assert comp.content == '{"label": "billing"}' and comp.error_kind is None
    assert [b["model"] for b in bodies] == ["a-model"]
    assert bodies[0]["response_format"]["type"] == "json_schema"
    assert session.endpoints == {} and session.batchers == {}  # closed on exit


def test_answers_are_cached_and_every_request_is_metered(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.model.endpoint.RetryPolicy.wait", lambda _self, _state: 0.0)
    cache = open_cache(tmp_path / "cache.sqlite")
    meter = Meter()

    async def scenario(url: str) -> list[Completion]:
        async with make([model("a", url)], tmp_path, meter=meter, cache=cache) as session:
            generate = session.generate("a", structured_output="json_schema", schema=SCHEMA)
            return [await generate(PROMPT, model_id="a-model") for _ in range(2)]

    try:
        with FakeOpenAI(faults=FaultPlan(fail_first_n=1)) as server:
            first, second = asyncio.run(scenario(server.base_url))
            attempts = server.attempts
    finally:
        cache.close()
    assert first.attempts == 2 and len(meter.retries) == 1  # one 500, tried again
    assert second.cached and meter.hits == 1 and attempts == 2
    assert meter.settled == [first] and meter.released == 0


def test_a_refused_request_is_not_sent(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        async with make([model("a", url)], tmp_path, meter=Meter(refuse=True)) as session:
            await session.generate("a", structured_output="none", schema=SCHEMA)(
                PROMPT, model_id="a-model")

    with FakeOpenAI() as server:
        with pytest.raises(RuntimeError, match="over the cap"):
            asyncio.run(scenario(server.base_url))
        assert server.attempts == 0


def test_local_models_share_one_server_which_is_stopped(tmp_path: Path,
                                                        servers: type[FakeServers]) -> None:
    cache = open_cache(tmp_path / "cache.sqlite")
    adapter = tmp_path / "ft.gguf"
    adapter.write_bytes(b"adapter")
    local = [model("base", provider="local"),
             dataclasses.replace(model("big", provider="local"), n_ctx=8192, servers=2)]

    async def scenario() -> Completion:
        async with make(local, tmp_path, cache=cache, adapters={"ft": adapter}) as session:
            await session.warm_up("base", "ft")
            return await session.generate("base", structured_output="json_schema",
                                          schema=SCHEMA)(PROMPT, model_id="ft")

    try:
        with FakeOpenAI() as server:
            servers.url = server.base_url
            first = asyncio.run(scenario())
            assert [b["model"] for b in server.requests] == ["ft", "ft"]  # warm-up, answer
            again = asyncio.run(scenario())  # same GGUF files: served from the cache
            (tmp_path / "base.gguf").write_bytes(b"GGUF two")
            other = asyncio.run(scenario())  # another base model: asked again
            sent = len(server.requests)
    finally:
        cache.close()
    assert len(servers.made) == 3  # one per session, shared by both local models
    server_args = servers.made[0]
    assert (server_args.count, server_args.n_ctx, server_args.adapters) == (2, 8192,
                                                                             {"ft": adapter})
    assert all(s.started == 1 and s.stopped == 1 for s in servers.made)
    # a warm-up per session, and an answer where the cache had none
    assert not first.cached and again.cached and not other.cached and sent == 5


def test_a_failed_probe_stops_the_server_it_started(tmp_path: Path,
                                                    servers: type[FakeServers]) -> None:
    servers.url = "http://127.0.0.1:9/v1"  # nothing listens there
    session = make([model("base", provider="local")], tmp_path)
    with pytest.raises(InputError, match="cannot reach"):
        asyncio.run(session.open())
    assert servers.made[0].stopped == 1 and session.server is None and session.endpoints == {}


def test_given_urls_for_every_local_model_start_no_server(tmp_path: Path,
                                                          servers: type[FakeServers]) -> None:
    async def scenario(url: str) -> None:
        async with make([model("base", provider="local")], tmp_path,
                        base_urls={"base": url}) as session:
            await session.warm_up("base", "base-model")  # not a server of ours: no warm-up

    with FakeOpenAI() as server:
        asyncio.run(scenario(server.base_url))
        assert server.requests == []
    assert servers.made == []


def test_batch_models_share_one_journal(tmp_path: Path) -> None:
    async def scenario(url: str) -> list[bool]:
        models = [model("a", url, mode="batch"), model("b", url, mode="batch"), model("c", url)]
        async with make(models, tmp_path) as session:
            assert session.batchers["a"].journal is session.batchers["b"].journal
            assert session.batchers["a"].journal.path == tmp_path / "batches.json"
            return [session.batched(m) for m in "abc"]

    with FakeOpenAI() as server:
        assert asyncio.run(scenario(server.base_url)) == [True, True, False]
    assert not (tmp_path / "batches.json").exists()  # written only once a batch is submitted
