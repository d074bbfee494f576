"""One model interface for every backend: the `openai` client against /v1/chat/completions.

The provider (this module) decides which errors are retryable; one generic tenacity loop retries
them. The SDK's own retries are off so attempts do not multiply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from harness.config import ModelConfig, RunConfig
from harness.errors import FatalAPIError, InputError
from harness.model.completion import ChatRequest, Completion, token_logprobs
from harness.model.faults import (
    NON_RETRYABLE_STATUS,
    InvalidResponse,
    check_completion,
    error_kind,
    is_fatal,
    is_retryable,
    retry_after_seconds,
    short_message,
)
from harness.model.replicas import Pool, Replica
from harness.model.transport import ChatPost

__all__ = ["NON_RETRYABLE_STATUS", "Endpoint", "InvalidResponse", "RetryAfterTooLong",
           "RetryPolicy", "api_key", "check_completion", "completion_from", "error_kind",
           "is_fatal", "is_retryable", "response_format_for", "retry_after_seconds",
           "short_message"]

def response_format_for(model: ModelConfig, schema: Mapping[str, Any],
                        mode: str | None = None) -> dict[str, Any] | None:
    """Structured output in the backend's own dialect (`mode` overrides the model's; "none"
    sends no response_format, so the answer is whatever text the model writes)."""
    mode = mode or model.structured_output
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(schema), "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    return None


class RetryAfterTooLong(FatalAPIError):
    """The endpoint asked us to wait longer than the configured maximum."""


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, capped per example."""

    max_attempts: int = 6
    max_wait: float = 300.0  # total seconds of waiting per example
    max_retry_after: float = 600.0
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, state: RetryCallState) -> float:
        """Seconds to sleep before the next attempt: jittered backoff, or at least Retry-After.

        Raises RetryAfterTooLong when the server asks for more than `max_retry_after` seconds.
        """
        hinted = self._hint(state)
        if hinted is not None and hinted > self.max_retry_after:
            raise RetryAfterTooLong(
                f"the endpoint asked to wait {hinted:.0f} s (Retry-After), more than "
                f"run.max_retry_after = {self.max_retry_after:.0f} s; try again later or raise it"
            )
        backoff = min(self.cap, self.base * 2 ** (state.attempt_number - 1))
        delay = backoff * (0.5 + self.rng.random() / 2)
        if hinted is not None:
            delay = max(hinted, delay * 0.25)
        return float(delay)

    def stop(self, state: RetryCallState) -> bool:
        """Stop after max_attempts, or when the next backoff would exceed the per-example budget.

        A wait the server asked for (Retry-After, at most `max_retry_after`) is always honoured:
        giving up on it would only turn every later example into the same failure.
        """
        if stop_after_attempt(self.max_attempts)(state):
            return True
        upcoming = getattr(state, "upcoming_sleep", 0.0) or 0.0  # tenacity >= 8.3 waits first
        if self._hint(state) is not None:
            return False
        return (state.idle_for or 0.0) + upcoming > self.max_wait

    @staticmethod
    def _hint(state: RetryCallState) -> float | None:
        exc = state.outcome.exception() if state.outcome is not None else None
        return retry_after_seconds(exc) if exc is not None else None


# Fields of a /models entry that describe the model itself; `created` and permission lists are
# left out because some servers (vLLM) fill them in fresh on every call.
_STABLE = ("id", "owned_by", "root", "parent", "max_model_len", "meta", "details", "size",
           "digest", "path")


class Endpoint:
    """An OpenAI-compatible endpoint for one configured model. No network in the constructor.

    With several base URLs (`models.NAME.base_url` as a list, or `base_url=[...]`), every attempt
    goes to one replica of a `Pool`; the first URL names the endpoint (the response-cache scope,
    messages), since replicas serve the same model.
    """

    def __init__(self, model: ModelConfig, *, base_url: str | Sequence[str] | None = None,
                 run: RunConfig, on_retry: Any = None,
                 on_headers: Callable[[int, Mapping[str, str]], None] | None = None,
                 before_retry: Callable[[], Awaitable[None]] | None = None) -> None:
        self.config = model
        urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
        urls = urls or list(model.base_urls) or [
            model.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"]
        self.base_url = urls[0]
        key = "local" if model.provider == "local" else api_key(model)
        # Response headers (x-ratelimit-*, of successes and errors alike) come from an HTTP
        # event hook: `with_raw_response` would add the SDK's per-call wrapping to every request.
        hooks: dict[str, Any] = {}
        if on_headers is not None:
            async def headers_hook(response: Any) -> None:
                on_headers(response.status_code, response.headers)

            hooks = {"event_hooks": {"response": [headers_hook]}}

        def client(url: str) -> openai.AsyncOpenAI:
            return openai.AsyncOpenAI(
                api_key=key or "unused", base_url=url, max_retries=0, timeout=model.timeout,
                http_client=openai.DefaultAsyncHttpxClient(**hooks) if hooks else None)

        self.pool: Pool[openai.AsyncOpenAI] = Pool([Replica(u, client(u)) for u in urls])
        self.replicated = len(urls) > 1
        self.policy = RetryPolicy(run.max_attempts, run.max_wait, run.max_retry_after)
        self.on_retry = on_retry  # callback(exc) on every retried attempt (rate limiting, counts)
        self.before_retry = before_retry  # awaited before every retry (request pacing)
        self.listed: dict[str, dict[str, Any]] = {}  # model id -> stable /models fields
        self._fingerprints: dict[str, str] = {}
        self._posts: dict[str, ChatPost] = {}  # replica URL -> its chat POST

    async def probe(self) -> None:
        """One request at start: is anything listening, and is the key accepted? Also notes
        what the endpoint says about its models (see `model_fingerprint`).

        Both failures are bad input found before any answer was requested: InputError, so the
        run leaves nothing behind, whether the endpoint is unreachable or rejects the key. Of
        several replicas, one that cannot be reached is taken out of service (and tried again
        later); only when none can be reached is that an error.
        """
        name = f"models.{self.config.name}"
        pages = await asyncio.gather(*(self._list_models(r) for r in self.pool.replicas))
        unreachable = [(r, e) for r, e in zip(self.pool.replicas, pages, strict=True)
                       if isinstance(e, openai.APIConnectionError)]
        for replica, exc in zip(self.pool.replicas, pages, strict=True):
            if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
                raise InputError(f"{name}: {replica.url} rejected the API key from "
                                 f"${self.config.api_key_env} ({short_message(exc)})")
        if len(unreachable) == len(self.pool.replicas):
            replica, exc = unreachable[0]
            more = f" (nor any of its {len(unreachable) - 1} other replicas)" \
                if len(unreachable) > 1 else ""
            raise InputError(f"{name}: cannot reach {replica.url}{more} ({short_message(exc)})")
        for replica, _ in unreachable:
            self.pool.take_out(replica)
        for page in pages:
            if isinstance(page, BaseException) or page is None:
                continue
            with contextlib.suppress(Exception):  # a listing is a bonus, never a reason to fail
                for entry in getattr(page, "data", None) or []:
                    d = entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)
                    self.listed[str(d.get("id"))] = {k: d[k] for k in sorted(d) if k in _STABLE}
            break

    @staticmethod
    async def _list_models(replica: Replica[openai.AsyncOpenAI]) -> Any:
        """GET /models on one replica: the page, None (no /models there), or the exception."""
        try:
            return await replica.client.with_options(timeout=10.0).models.list()
        except (openai.APIConnectionError, openai.AuthenticationError,
                openai.PermissionDeniedError) as exc:
            return exc
        except openai.APIStatusError:
            return None  # reachable; some servers have no /models

    def _post(self, replica: Replica[openai.AsyncOpenAI]) -> ChatPost:
        post = self._posts.get(replica.url)
        if post is None:
            post = self._posts[replica.url] = ChatPost(replica.client)
        return post

    def model_fingerprint(self, model_id: str) -> str:
        """The stable part of the endpoint's /models entry for `model_id` ("" when unlisted).

        It is part of the response-cache scope, so a server that reports a different model
        under the same name (another owner, root, size or metadata) gets fresh answers.
        """
        if model_id not in self._fingerprints:
            entry = self.listed.get(model_id)
            self._fingerprints[model_id] = json.dumps(entry, sort_keys=True, default=str) \
                if entry else ""
        return self._fingerprints[model_id]

    async def complete(self, request: ChatRequest) -> Completion:
        """Send one chat request with retries; a per-example failure comes back as data."""
        attempts = 0
        start = time.perf_counter()
        # The body goes to the SDK's own HTTP client as it is (transport.ChatPost): no
        # type-driven transform of the parameters, no per-call request options on the way out,
        # no pydantic model on the way back; the JSON is parsed once, into a Completion
        # (completion_from). Errors, status codes and headers are the SDK's as before.
        body = request.params()

        replica: Replica[openai.AsyncOpenAI] | None = None

        def served() -> str | None:  # the replica of the last attempt, when there are several
            return replica.url if self.replicated and replica is not None else None

        def before_sleep(state: RetryCallState) -> None:
            if self.on_retry is not None and state.outcome is not None:
                self.on_retry(state.outcome.exception())

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_retryable),
                wait=self.policy.wait,
                stop=self.policy.stop,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    if attempts and self.before_retry is not None:
                        await self.before_retry()
                    attempts += 1
                    start = time.perf_counter()
                    with self.pool.use() as replica:
                        try:
                            answer = await self._post(replica)(body)
                        except openai.APIConnectionError:
                            self.pool.connection_failed(replica)
                            raise
                        except (openai.APIStatusError, ValueError):
                            self.pool.succeeded(replica)
                            raise
                        self.pool.succeeded(replica)
                    response = check_completion(answer)
        except RetryAfterTooLong as exc:
            raise RetryAfterTooLong(f"models.{self.config.name}: {exc}") from None
        except openai.APIError as exc:
            if is_fatal(exc):
                raise FatalAPIError(
                    f"models.{self.config.name}: {short_message(exc)} — stopping the run"
                ) from None
            kind = error_kind(exc)
            if is_retryable(exc):
                kind = f"retries_exhausted:{kind}"
            return Completion(attempts=attempts, error_kind=kind, error=short_message(exc),
                              latency_ms=(time.perf_counter() - start) * 1000,
                              replica=served())
        except ValueError as exc:  # json.JSONDecodeError, InvalidResponse
            kind = "retries_exhausted:invalid_response" if is_retryable(exc) else "invalid_response"
            return Completion(attempts=attempts, error_kind=kind, error=short_message(exc),
                              latency_ms=(time.perf_counter() - start) * 1000,
                              replica=served())
        latency = (time.perf_counter() - start) * 1000
        return completion_from(response, latency, attempts, served())

    async def warm_up(self, model_id: str) -> None:
        """One tiny request per replica so that each server loads `model_id` before timed
        requests arrive."""
        async def one(client: openai.AsyncOpenAI) -> None:
            with contextlib.suppress(openai.APIError):
                await client.chat.completions.create(
                    model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=1)

        await asyncio.gather(*(one(r.client) for r in self.pool.replicas))

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        for replica in self.pool.replicas:
            await replica.client.close()


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def completion_from(response: Any, latency_ms: float, attempts: int,
                    replica: str | None = None) -> Completion:
    """A chat-completion response (its parsed JSON, or an SDK object) as a Completion."""
    choices = _get(response, "choices") or []
    if not choices:
        return Completion(latency_ms=latency_ms, attempts=attempts, error_kind="no_choices",
                          error="the response had no choices", replica=replica)
    choice = choices[0]
    message = _get(choice, "message")
    usage = _get(response, "usage")
    details = _get(usage, "prompt_tokens_details") if usage else None
    return Completion(
        content=_text(_get(message, "content")) if message else None,
        finish_reason=_text(_get(choice, "finish_reason")),
        refusal=_text(_get(message, "refusal")) if message else None,
        prompt_tokens=_count(_get(usage, "prompt_tokens")) if usage else None,
        completion_tokens=_count(_get(usage, "completion_tokens")) if usage else None,
        cached_tokens=_count(_get(details, "cached_tokens")) if details else None,
        latency_ms=latency_ms,
        attempts=attempts,
        replica=replica,
        logprobs=token_logprobs(choice),
    )


def api_key(model: ModelConfig) -> str | None:
    name = model.api_key_env
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise InputError(
            f"models.{model.name}.api_key_env: environment variable {name} is not set or empty "
            f"(it must hold the API key for {model.base_url or 'OpenAI'})"
        )
    return value
