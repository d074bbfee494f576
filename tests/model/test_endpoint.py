"""The provider's retry policy: what is retried, how long it waits, when it stops.

Exceptions are the SDK's own classes (built on real `httpx2` responses, or raised by the real
`openai` client talking to the loopback fake server); nothing in the client is mocked.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2
import openai
import pytest
from fake_openai import ChatReply, FakeOpenAI, FaultPlan, default_responder
from tenacity import Future, RetryCallState

from harness.config import ModelConfig, RunConfig
from harness.errors import FatalAPIError, InputError
from harness.model.endpoint import (
    ChatRequest,
    Endpoint,
    RetryAfterTooLong,
    RetryPolicy,
    error_kind,
    is_fatal,
    is_retryable,
    retry_after_seconds,
    short_message,
)

URL = "http://127.0.0.1:9/v1/chat/completions"
STATUS_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
    404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def status_error(status: int, headers: dict[str, str] | None = None, code: str | None = None,
                 message: str = "boom") -> openai.APIStatusError:
    """The exception the SDK raises for an HTTP error answer (same class choice as the SDK)."""
    request = httpx2.Request("POST", URL)
    response = httpx2.Response(status, headers=headers or {}, request=request)
    cls = STATUS_CLASSES.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    body = {"message": message, "type": "x", "param": None, "code": code}
    return cls(f"Error code: {status} - {message}", response=response, body=body)


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx2.Request("POST", URL))


def timeout_error() -> openai.APITimeoutError:
    return openai.APITimeoutError(request=httpx2.Request("POST", URL))


def state(exc: BaseException, attempt: int = 1, idle_for: float = 0.0) -> RetryCallState:
    """A tenacity call state whose `attempt`-th attempt failed with `exc`."""
    rs = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    rs.attempt_number = attempt
    rs.idle_for = idle_for
    rs.outcome = Future.construct(attempt, exc, True)
    return rs


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 520])
def test_transient_statuses_are_retried(status):
    exc = status_error(status)
    assert is_retryable(exc) and not is_fatal(exc)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(status):
    assert not is_retryable(status_error(status))


@pytest.mark.parametrize("exc", [connection_error(), timeout_error(),
                                 json.JSONDecodeError("Unterminated string", '{"id": "ch', 7)],
                         ids=["connection", "timeout", "cut-off-200"])
def test_transport_faults_are_retried(exc):
    assert is_retryable(exc) and not is_fatal(exc)


def test_fatal_errors_stop_instead_of_retrying():
    quota = status_error(429, code="insufficient_quota", message="You exceeded your current quota")
    assert is_fatal(quota) and not is_retryable(quota)
    assert is_fatal(status_error(401)) and is_fatal(status_error(403))
    assert not is_fatal(status_error(429, code="rate_limit_exceeded"))


@pytest.mark.parametrize(("exc", "kind"), [
    (status_error(400, code="context_length_exceeded"), "context_length"),
    (status_error(400, message="This model's maximum context length is 4096 tokens"), "context_length"),
    (status_error(400), "bad_request"),
    (status_error(404), "not_found"),
    (status_error(422), "unprocessable"),
    (status_error(429), "rate_limited"),
    (status_error(503), "http_503"),
    (timeout_error(), "timeout"),
    (connection_error(), "connection"),
    (json.JSONDecodeError("x", "{", 0), "invalid_response"),
])
def test_error_kinds(exc, kind):
    assert error_kind(exc) == kind


def test_short_message_drops_html_bodies():
    request = httpx2.Request("POST", URL)
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    exc = openai.InternalServerError("Error code: 502", response=httpx2.Response(502, request=request,
                                                                                 text=html), body=html)
    msg = short_message(exc)
    assert msg.startswith("HTTP 502") and "<" not in msg


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),  # the precise one wins
    ({"retry-after-ms": "soon", "Retry-After": "3"}, 3.0),  # an unusable ms value is skipped
    ({"Retry-After": "200"}, 200.0),  # beyond the SDK's own 60 s cap: still honoured
    ({"Retry-After": "-4"}, 0.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
    ({"Retry-After": "inf"}, None),
    ({"Retry-After": "nan"}, None),
    ({"Retry-After": "whenever"}, None),
    ({}, None),
])
def test_retry_after_parsing(headers, seconds):
    assert retry_after_seconds(status_error(429, headers)) == seconds


def test_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    got = retry_after_seconds(status_error(503, {"Retry-After": format_datetime(when, usegmt=True)}))
    assert got is not None and 27 <= got <= 31


def test_no_retry_after_without_a_response():
    assert retry_after_seconds(connection_error()) is None
    assert retry_after_seconds(json.JSONDecodeError("x", "{", 0)) is None


# --------------------------------------------------------------------------- the policy


def test_backoff_is_exponential_with_jitter_and_capped():
    policy = RetryPolicy(base=0.5, cap=4.0, rng=random.Random(1))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        waits = [policy.wait(state(status_error(500), attempt)) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        assert len(set(waits)) > 100  # jittered, not a fixed schedule


def test_wait_honours_retry_after_over_a_shorter_backoff():
    policy = RetryPolicy(base=0.5, max_retry_after=600)
    assert policy.wait(state(status_error(429, {"retry-after-ms": "1500"}))) == 1.5
    assert policy.wait(state(status_error(429, {"Retry-After": "200"}))) == 200.0
    assert policy.wait(state(status_error(503, {"Retry-After": "3"}))) == 3.0
    assert policy.wait(state(status_error(429, {"Retry-After": "0"}))) <= 0.5 * 0.25


def test_retry_after_beyond_the_maximum_is_fatal():
    policy = RetryPolicy(max_retry_after=120)
    with pytest.raises(RetryAfterTooLong, match=r"900 s.*run.max_retry_after = 120 s") as info:
        policy.wait(state(status_error(429, {"Retry-After": "900"})))
    assert isinstance(info.value, FatalAPIError)


def test_stop_caps_attempts():
    policy = RetryPolicy(max_attempts=3, max_wait=1e9)
    assert [policy.stop(state(status_error(500), n)) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_stop_caps_total_backoff_per_example():
    policy = RetryPolicy(max_attempts=100, max_wait=10)
    rs = state(status_error(500), 3, idle_for=8.0)
    rs.upcoming_sleep = 1.5
    assert not policy.stop(rs)
    rs.upcoming_sleep = 2.5  # would wait 10.5 s in all
    assert policy.stop(rs)


def test_a_server_requested_wait_is_not_cut_short_by_the_budget():
    policy = RetryPolicy(max_attempts=100, max_wait=10, max_retry_after=600)
    rs = state(status_error(429, {"Retry-After": "30"}), 2, idle_for=5.0)
    rs.upcoming_sleep = 30.0
    assert not policy.stop(rs)


# --------------------------------------------------------------------------- Endpoint, for real


def endpoint(server: FakeOpenAI, *, attempts: int = 3, timeout: float = 2.0, **run: Any) -> Endpoint:
    """An Endpoint against the fake server with quick backoff (the policy is the real one)."""
    model = ModelConfig(name="fake", provider="openai", model="fake-model", base_url=server.base_url,
                        api_key_env=None, token_param="max_tokens", structured_output="json_schema",
                        timeout=timeout, n_ctx=4096, price=None)
    ep = Endpoint(model, run=RunConfig(max_attempts=attempts, timeout=timeout, **run))
    ep.policy.base = 0.01
    return ep


def request(text: str = "billing\nmy card") -> ChatRequest:
    return ChatRequest(model="fake-model", messages=({"role": "user", "content": text},),
                       temperature=0.0, max_tokens=16)


def complete(server: FakeOpenAI, **kw: Any) -> Any:
    async def go() -> Any:
        ep = endpoint(server, **kw)
        try:
            return await ep.complete(request())
        finally:
            await ep.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(("faults", "kind"), [
    (FaultPlan(server_error=1.0), "retries_exhausted:http_500"),
    (FaultPlan(unavailable=1.0), "retries_exhausted:http_503"),
    (FaultPlan(malformed=1.0), "retries_exhausted:invalid_response"),
    (FaultPlan(drop=1.0), "retries_exhausted:connection"),
    (FaultPlan(slow=1.0, slow_s=1.0), "retries_exhausted:timeout"),
    (FaultPlan(rate_limit=1.0, retry_after_s=0.01), "retries_exhausted:rate_limited"),
])
def test_transient_faults_are_retried_then_recorded(faults, kind):
    with FakeOpenAI(faults=faults) as server:
        comp = complete(server, attempts=3, timeout=0.3)
        assert server.attempts == 3
    assert comp.error_kind == kind and comp.attempts == 3 and comp.content is None


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
def test_transient_status_then_success(status):
    calls = {"n": 0}

    def responder(body: dict) -> str | ChatReply:
        calls["n"] += 1
        return ChatReply.error(status, "try again") if calls["n"] == 1 else default_responder(body)

    with FakeOpenAI(responder=responder) as server:
        comp = complete(server)
        assert server.attempts == 2
    assert comp.error_kind is None and comp.attempts == 2 and json.loads(comp.content) == {"label": "billing"}


@pytest.mark.parametrize(("reply", "kind"), [
    (ChatReply.context_length_exceeded(), "context_length"),
    (ChatReply.error(400, "bad"), "bad_request"),
    (ChatReply.model_not_found(), "not_found"),
    (ChatReply.error(422, "nope"), "unprocessable"),
])
def test_client_errors_are_sent_once(reply, kind):
    with FakeOpenAI(responder=lambda body: reply) as server:
        comp = complete(server)
        assert server.attempts == 1
    assert comp.error_kind == kind and comp.attempts == 1


@pytest.mark.parametrize("reply", [ChatReply.insufficient_quota(), ChatReply.unauthorized(),
                                   ChatReply.error(403, "forbidden")])
def test_fatal_answers_raise_after_one_attempt(reply):
    with FakeOpenAI(responder=lambda body: reply) as server:
        with pytest.raises(FatalAPIError, match=r"models.fake: HTTP 4\d\d: .*stopping the run"):
            complete(server)
        assert server.attempts == 1


def test_cut_off_200_then_success():
    with FakeOpenAI(faults=FaultPlan(malformed=0.5), seed=3) as server:
        comps = [complete(server, attempts=10) for _ in range(5)]
        assert server.fault_counts["malformed"] > 0
    assert all(c.error_kind is None and json.loads(c.content) == {"label": "billing"} for c in comps)
    assert sum(c.attempts for c in comps) == 5 + server.fault_counts["malformed"]


def test_retry_waits_for_retry_after_ms():
    calls = {"n": 0}

    def responder(body: dict) -> str | ChatReply:
        calls["n"] += 1
        if calls["n"] == 1:
            return ChatReply.error(429, "slow down", code="rate_limit_exceeded",
                                   headers={"retry-after-ms": "800", "Retry-After": "1"})
        return default_responder(body)

    with FakeOpenAI(responder=responder) as server:
        start = time.monotonic()
        comp = complete(server)
        elapsed = time.monotonic() - start
    assert comp.attempts == 2 and comp.error_kind is None
    assert 0.8 <= elapsed < 2.5


def test_probe_rejects_a_bad_key_as_bad_input(monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-not-this-one-1234")
    with FakeOpenAI(api_key="sk-right") as server:
        model = ModelConfig(name="fake", provider="openai", model="fake-model",
                            base_url=server.base_url, api_key_env="FAKE_KEY",
                            token_param="max_tokens", structured_output="json_schema", timeout=2.0,
                            n_ctx=4096, price=None)

        async def go() -> None:
            ep = Endpoint(model, run=RunConfig())
            try:
                await ep.probe()
            finally:
                await ep.aclose()

        # found before any answer was requested: bad input, like an unreachable endpoint
        with pytest.raises(InputError, match=r"rejected the API key from \$FAKE_KEY") as info:
            asyncio.run(go())
    assert "sk-not-this-one-1234" not in str(info.value)


class _OddBodies:
    """A loopback HTTP server answering every chat request 200 with the next body in `bodies`."""

    def __init__(self, bodies: list[tuple[str, bytes]]) -> None:
        import http.server
        import threading

        outer = self
        self.bodies = bodies
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype, body = outer.bodies[min(outer.hits, len(outer.bodies) - 1)]
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


GOOD = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "fake-model",
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": '{"label": "billing"}'}}]})


@pytest.mark.parametrize("odd", [("text/html", b"<html><body>Welcome to the hotel wifi</body></html>"),
                                 ("application/json", b"<html>502</html>"),
                                 ("application/json", b'{"status": "ok"}'),
                                 ("application/json", b"[1, 2]")],
                         ids=["html-page", "html-as-json", "other-json", "json-list"])
def test_a_200_that_is_not_a_completion_is_retried(odd):
    server = _OddBodies([odd, ("application/json", GOOD.encode())])
    try:
        model = ModelConfig(name="odd", provider="openai", model="fake-model", base_url=server.base_url,
                            api_key_env=None, token_param="max_tokens", structured_output="none",
                            timeout=2.0, n_ctx=4096, price=None)

        async def go() -> Any:
            ep = Endpoint(model, run=RunConfig(max_attempts=3))
            ep.policy.base = 0.01
            try:
                return await ep.complete(request())
            finally:
                await ep.aclose()

        comp = asyncio.run(go())
        assert server.hits == 2
        assert comp.error_kind is None and comp.attempts == 2 and comp.content == '{"label": "billing"}'

        server.bodies, server.hits = [odd], 0
        comp = asyncio.run(go())
        assert server.hits == 3 and comp.error_kind == "retries_exhausted:invalid_response"
        assert "<html" not in (comp.error or "")
    finally:
        server.close()
