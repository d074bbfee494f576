"""Which failures of an OpenAI-compatible endpoint are retryable, fatal or per-example, and
what each is called in the records. The provider decides this; one loop (endpoint.py) retries.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC
from typing import Any

import openai

NON_RETRYABLE_STATUS = {400, 401, 403, 404, 422}


class InvalidResponse(ValueError):
    """A 200 whose body is not a chat completion (a proxy's HTML page, JSON of another shape).

    Like a cut-off body, this is a transport fault: it is retried like a 5xx.
    """


def check_completion(response: Any) -> Any:
    """Return `response` (parsed JSON, or an SDK object) if it is a chat completion; raise
    InvalidResponse otherwise."""
    choices = response.get("choices") if isinstance(response, dict) else getattr(
        response, "choices", None)
    if isinstance(choices, list) and all(isinstance(c, dict) or hasattr(c, "message")
                                         for c in choices):
        return response
    if isinstance(response, dict):
        raise InvalidResponse("the endpoint answered 200 with JSON that is not a chat "
                              "completion (no list of choices)")
    shape = type(response).__name__ if not hasattr(response, "choices") else "an object without choices"
    raise InvalidResponse(f"the endpoint answered 200 with {shape}, not a chat completion")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's requested delay from `retry-after-ms` or `Retry-After`, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = _finite(headers.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _finite(value: str | None) -> float | None:
    """A header value as a finite number of seconds, or None ("inf", "nan", text)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_fatal(exc: BaseException) -> bool:
    """Errors that end the whole run: a rejected key, forbidden access, no quota left."""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return True
    return isinstance(exc, openai.RateLimitError) and _code(exc) == "insufficient_quota"


def is_retryable(exc: BaseException) -> bool:
    """Transient faults: 408/409/429/5xx, connection errors, timeouts, a cut-off or non-JSON 200."""
    if is_fatal(exc):
        return False
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code not in NON_RETRYABLE_STATUS and (
            exc.status_code in (408, 409, 429) or exc.status_code >= 500
        )
    return isinstance(
        exc, openai.APIConnectionError | openai.APIResponseValidationError | json.JSONDecodeError
        | InvalidResponse
    )


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if code is None:
        body = getattr(exc, "body", None)
        if isinstance(body, dict):
            code = body.get("code") or (body.get("error") or {}).get("code")
    return str(code) if code is not None else None


def error_kind(exc: BaseException) -> str:
    """A short machine-readable name for a failed request."""
    if isinstance(exc, openai.BadRequestError):
        msg = str(exc).lower()
        if _code(exc) == "context_length_exceeded" or "context length" in msg or "context window" in msg:
            return "context_length"
        return "bad_request"
    if isinstance(exc, openai.NotFoundError):
        return "not_found"
    if isinstance(exc, openai.UnprocessableEntityError):
        return "unprocessable"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    return "invalid_response"


def short_message(exc: BaseException, limit: int = 300) -> str:
    """One line describing an exception, without HTML bodies or secrets."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else None
        msg = (body or {}).get("message") if body else None
        text = f"HTTP {exc.status_code}: {msg or exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
