"""The model side of one run: every endpoint a run talks to, and the `generate` each arm calls.

A `ModelSession` starts the local llama.cpp servers when a local model needs them (and stops
them again), hashes the GGUF and LoRA adapter files that scope the response cache, opens one
`Endpoint` per model with one `AdaptiveLimiter` per endpoint (base URL and key variable: a 429
storm on one provider must not slow another, nor its headers teach another's rate), wires a
`BatchQueue` for each model in batch mode, and hands out one `SessionGenerate` per (model,
structured-output mode, answer schema, log-probabilities): the `strategies.Generate` a strategy
calls. What the run counts and caps around each request (retries, cache hits, spend) it leaves
to a `Meter` the caller supplies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import openai

from harness.config import ModelConfig, Price, RunConfig, batch_mode
from harness.files import file_sha256
from harness.model.batch import BatchJournal, BatchQueue, BatchSettings
from harness.model.cache import ResponseCache, cache_key
from harness.model.completion import ChatRequest, Completion
from harness.model.endpoint import Endpoint, error_kind, response_format_for, retry_after_seconds
from harness.model.limits import AdaptiveLimiter
from harness.model.local_server import LocalServers, base_model_path
from harness.model.pricing import billed_price

__all__ = ["Meter", "ModelSession", "SessionGenerate"]

Messages = Sequence[dict[str, str]]  # a prompt: role/content messages (strategies.prompts.Message)


class Meter(Protocol):
    """What the caller counts and caps around each request (the runner: its counts and the
    spend cap)."""

    def cache_hit(self) -> None:
        """An answer came from the response cache; nothing was sent."""
        ...

    def retried(self, kind: str) -> None:
        """An attempt failed with error `kind` and is tried again."""
        ...

    def reserve(self, price: Price | None, messages: Messages) -> float:
        """Before a request is sent: hold what it may cost and return that hold; raise to keep
        it from starting."""
        ...

    def release(self, held: float) -> None:
        """A reserved request was never answered (cancelled, or it raised)."""
        ...

    def settle(self, held: float, price: Price | None, completion: Completion) -> None:
        """A reserved request came back, answered or failed."""
        ...


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per arm setting
class SessionGenerate:
    """The `generate` (strategies.Generate) of one model, structured-output mode, answer schema
    and log-probability setting: the response cache, then the limiter and the endpoint (online)
    or the batch queue (batch mode)."""

    session: ModelSession
    model: str  # the config's model name
    response_format: Mapping[str, Any] | None
    logprobs: bool = False

    async def __call__(self, messages: Messages, *, model_id: str, sample: int = 0,
                       temperature: float | None = None) -> Completion:
        """One answer to `messages` from `model_id` (see strategies.Generate)."""
        run = self.session.run
        request = ChatRequest(
            model=model_id, messages=tuple(messages),
            temperature=run.temperature if temperature is None else temperature,
            max_tokens=run.max_tokens, token_param=self.session.models[self.model].token_param,
            seed=run.seed, response_format=self.response_format, sample=sample,
            logprobs=self.logprobs,
        )
        return await self.session.complete(self.model, request, messages)


class ModelSession:
    """The endpoints of one run's models (see the module docstring); use it as an async context
    manager (`open` on entry, `aclose` on exit).

    `models` maps each config model name to be requested to its config. `base_urls` overrides a
    model's URL (one URL or a list of replicas; a local model given one starts no server).
    `batch_journal` is the run folder's journal of Batch API batches, opened only when a model
    is in batch mode. `new_limiter` makes the limiter of each distinct endpoint (its concurrency
    and rates are the caller's to set); `chars_per_token` turns a prompt's length into the tokens
    the limiter paces.
    """

    def __init__(self, models: Mapping[str, ModelConfig], run: RunConfig, *, meter: Meter,
                 new_limiter: Callable[[], AdaptiveLimiter], batch_journal: Path,
                 chars_per_token: float, cache: ResponseCache | None = None,
                 adapters: Mapping[str, Path] | None = None,
                 base_urls: Mapping[str, str | list[str]] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.models = dict(models)
        self.run = run
        self.meter = meter
        self.cache = cache
        self.adapters = dict(adapters or {})
        self.base_urls = dict(base_urls or {})
        self.batch_journal = batch_journal
        self.chars_per_token = chars_per_token
        self.new_limiter = new_limiter
        self.log = log or (lambda _m: None)
        self.server: LocalServers | None = None  # the local servers this session started
        self.endpoints: dict[str, Endpoint] = {}  # model -> its endpoint
        self.limiters: dict[tuple[str, str | None], AdaptiveLimiter] = {}  # (URL, key variable)
        self.batchers: dict[str, BatchQueue] = {}  # models in batch mode
        self._limiter_of: dict[str, AdaptiveLimiter] = {}  # model -> its endpoint's limiter
        self._scope: dict[str, str] = {}  # model -> response-cache scope
        self._adapter_sha: dict[str, str] = {}  # local adapter alias -> its GGUF's SHA-256
        self._gguf_sha: str | None = None
        self._generators: dict[tuple[str, str, str, bool], SessionGenerate] = {}
        self._prices: dict[tuple[str, str], Price | None] = {}

    async def __aenter__(self) -> ModelSession:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def open(self) -> ModelSession:
        """Start what is needed and probe every endpoint (InputError when one cannot be
        reached or rejects its key); on a failure, close what was started."""
        try:
            self._start()
            await asyncio.gather(*(ep.probe() for ep in self.endpoints.values()))
        except BaseException:
            await self.aclose()
            raise
        return self

    def _start(self) -> None:
        """Local servers (when a local model has no URL given), endpoints, limiters, batchers."""
        local = [m for m, mc in self.models.items() if mc.provider == "local"]
        if local and not all(m in self.base_urls for m in local):
            n_ctx = max(self.models[m].n_ctx for m in local)
            count = max((self.models[m].servers or 0 for m in local), default=0) or None
            # started in the event loop's thread, the one that lives as long as the run: see
            # local_server._die_with_parent (PDEATHSIG)
            self.server = LocalServers(count, self.adapters, n_ctx=n_ctx).start()
        self._adapter_sha = {alias: file_sha256(path) for alias, path in self.adapters.items()}
        journal: BatchJournal | None = None  # one per run folder
        for m, mc in self.models.items():
            url = self.base_urls.get(m) or (self.server.base_urls
                                            if mc.provider == "local" and self.server else None)
            limiter = self._limiter(url, mc)
            self._limiter_of[m] = limiter
            ep = self.endpoints[m] = Endpoint(
                mc, base_url=url, run=self.run, on_retry=self._on_retry(limiter),
                on_headers=limiter.on_headers, before_retry=limiter.pace)
            self._scope[m] = (f"llama.cpp:{self._base_gguf_sha()}"
                              if mc.provider == "local" and m not in self.base_urls
                              else ep.base_url)
            if batch_mode(mc, self.run):
                journal = journal or BatchJournal(self.batch_journal)
                self.batchers[m] = BatchQueue(
                    ep.pool.replicas[0].client, m, journal,
                    BatchSettings(poll_seconds=self.run.batch_poll_seconds,
                                  max_attempts=self.run.max_attempts), self.log)

    def _base_gguf_sha(self) -> str:
        """The local base model's GGUF hash (hashed once per session)."""
        if self._gguf_sha is None:
            self._gguf_sha = file_sha256(base_model_path())
        return self._gguf_sha

    def _limiter(self, url: str | list[str] | None, mc: ModelConfig) -> AdaptiveLimiter:
        """The limiter of the endpoint at `url` (else the model's own URLs) with its key."""
        where = (str(url or mc.base_urls or mc.base_url or mc.provider), mc.api_key_env)
        if where not in self.limiters:
            self.limiters[where] = self.new_limiter()
        return self.limiters[where]

    def _on_retry(self, limiter: AdaptiveLimiter) -> Callable[[BaseException | None], None]:
        """The endpoint's callback on each retried attempt: count it, and slow down on a 429."""
        def on_retry(exc: BaseException | None) -> None:
            self.meter.retried(error_kind(exc) if exc is not None else "unknown")
            if isinstance(exc, openai.RateLimitError):
                limiter.on_rate_limited(retry_after_seconds(exc))
        return on_retry

    def generate(self, model: str, *, structured_output: str, schema: Mapping[str, Any],
                 logprobs: bool = False) -> SessionGenerate:
        """The `generate` for requests to `model` in `structured_output` mode against the answer
        `schema` (and whether token log-probabilities are asked for); the same object for the
        same arguments."""
        key = (model, structured_output, json.dumps(schema, sort_keys=True, default=str),
               logprobs)
        if key not in self._generators:
            self._generators[key] = SessionGenerate(
                self, model, response_format_for(self.models[model], schema, structured_output),
                logprobs)
        return self._generators[key]

    def batched(self, model: str) -> bool:
        """Whether `model`'s requests go through the Batch API."""
        return model in self.batchers

    async def warm_up(self, model: str, model_id: str) -> None:
        """Have the local servers this session started load `model_id` before timed requests
        (llama.cpp holds one model or adapter at a time); nothing for any other model."""
        if self.server is not None and self.models[model].provider == "local":
            await self.endpoints[model].warm_up(model_id)

    async def complete(self, model: str, request: ChatRequest, messages: Messages) -> Completion:
        """One request to `model`: from the response cache, else sent (and then cached)."""
        endpoint = self.endpoints[model]
        key = cache_key(self._scope[model] + self._adapter_sha.get(request.model, "")
                        + endpoint.model_fingerprint(request.model), request)
        comp = self.cache.get(key) if self.cache else None
        if comp is not None:
            self.meter.cache_hit()
            return comp
        if (model, request.model) not in self._prices:
            self._prices[(model, request.model)] = billed_price(
                self.models[model], request.model, self.run)
        price = self._prices[(model, request.model)]
        held = self.meter.reserve(price, messages)  # may refuse: the request does not start
        try:
            comp = await self._send(model, request, key, messages)
        except BaseException:
            self.meter.release(held)
            raise
        self.meter.settle(held, price, comp)
        if self.cache is not None:
            self.cache.put(key, request.model, comp)
        return comp

    async def _send(self, model: str, request: ChatRequest, key: str,
                    messages: Messages) -> Completion:
        """Through the batch queue, or the limiter and the endpoint."""
        batcher = self.batchers.get(model)
        if batcher is not None:
            return await batcher.complete(request, key)
        limiter = self._limiter_of[model]
        tokens = sum(len(m["content"]) for m in messages) / self.chars_per_token + self.run.max_tokens
        await limiter.acquire(tokens)
        ok = False
        try:
            comp = await self.endpoints[model].complete(request)
            ok = comp.error_kind is None
        finally:
            await limiter.release(ok=ok)
        return comp

    async def aclose(self) -> None:
        """Stop the batch queues, close the endpoints' connections and stop the local servers
        this session started (each once)."""
        batchers, self.batchers = list(self.batchers.values()), {}
        endpoints, self.endpoints = list(self.endpoints.values()), {}
        server, self.server = self.server, None
        try:
            for batcher in batchers:
                await batcher.aclose()
            for ep in endpoints:
                with contextlib.suppress(Exception):
                    await ep.aclose()
        finally:
            if server is not None:
                server.stop()
