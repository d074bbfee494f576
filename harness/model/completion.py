"""What goes to a model and what comes back: `ChatRequest` in, `Completion` out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Failure kinds that belong to the request or the provider, not to the model's answer text: such
# an example has no output to score, and re-scoring leaves it as it is.
REQUEST_ERROR_KINDS = ("context_length", "bad_request", "not_found", "unprocessable", "timeout",
                       "connection", "rate_limited", "retries_exhausted", "model_unavailable",
                       "http_", "refusal", "content_filter", "no_choices", "interrupted",
                       "invalid_response", "batch_")

# Of those, the ones the model itself is answerable for: it refused, its output was filtered, or
# the prompt does not fit its context. They count against accuracy and compliance like a wrong or
# unparseable answer. Every other request failure is the endpoint's (connection, timeout, 5xx,
# 429 after retries, a model that does not exist, a malformed response): reported as coverage,
# never as a wrong answer, and re-requested on resume.
MODEL_FAILURE_KINDS = ("context_length", "refusal", "content_filter")


def is_request_error(kind: str | None) -> bool:
    """True for a failure kind of the request or provider (see REQUEST_ERROR_KINDS)."""
    return bool(kind) and str(kind).startswith(REQUEST_ERROR_KINDS)


def is_endpoint_failure(kind: str | None) -> bool:
    """True when the endpoint, not the model, failed: the example was not answered at all."""
    return is_request_error(kind) and not str(kind).startswith(MODEL_FAILURE_KINDS)


@dataclass(frozen=True)
class ChatRequest:
    """Everything that determines an answer (and so the cache key)."""

    model: str
    messages: tuple[Mapping[str, str], ...]
    temperature: float
    max_tokens: int
    token_param: str = "max_tokens"
    seed: int | None = None
    response_format: Mapping[str, Any] | None = None
    sample: int = 0  # repeat index: with temperature > 0 each draw is its own sample
    logprobs: bool = False  # ask for each output token's log-probability (`confidence: logprob`)

    def params(self) -> dict[str, Any]:
        """Keyword arguments for `chat.completions.create`, never with None values."""
        out: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in self.messages],
            "temperature": self.temperature,
            self.token_param: self.max_tokens,
        }
        if self.seed is not None:
            out["seed"] = self.seed
        if self.response_format is not None:
            out["response_format"] = dict(self.response_format)
        if self.logprobs:  # llama.cpp's server answers logprobs only with top_logprobs set
            out["logprobs"] = True
            out["top_logprobs"] = 0
        return out


@dataclass(frozen=True)
class Completion:
    """What came back for one request (or why nothing usable did)."""

    content: str | None = None
    finish_reason: str | None = None
    refusal: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    error_kind: str | None = None
    error: str | None = None
    cached: bool = False
    replica: str | None = None  # the base URL that answered, when the model has several
    batch_id: str | None = None  # the Batch API batch that answered (run.mode: batch)
    # (token, log-probability) of each output token, when requested (ChatRequest.logprobs)
    logprobs: tuple[tuple[str, float], ...] | None = None

    def to_json(self) -> str:
        """Serialise for the response cache."""
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Completion:
        """Inverse of to_json."""
        data = json.loads(text)
        if data.get("logprobs") is not None:
            data["logprobs"] = tuple((str(t), float(lp)) for t, lp in data["logprobs"])
        return cls(**data)


def token_logprobs(choice: Any) -> tuple[tuple[str, float], ...] | None:
    """(token, log-probability) of each output token of a chat-completion choice (an SDK
    object or a dict: `choice.logprobs.content[].token/.logprob`); None when it has none."""
    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)

    content = get(get(choice, "logprobs"), "content") if get(choice, "logprobs") else None
    if not content:
        return None
    try:
        return tuple((str(get(t, "token")), float(get(t, "logprob"))) for t in content)
    except (TypeError, ValueError):
        return None


def request_failure(completion: Completion) -> tuple[str, str | None] | None:
    """(kind, detail) when the completion holds no answer to score, else None."""
    if completion.error_kind:
        return completion.error_kind, completion.error
    if completion.refusal:
        return "refusal", completion.refusal[:300]
    if completion.finish_reason == "content_filter":
        return "content_filter", "blocked by the content filter"
    return None
