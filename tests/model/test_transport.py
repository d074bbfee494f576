"""transport.ChatPost against the SDK's own `AsyncOpenAI.post`: for every outcome a server can
give (an answer, 429, 500, 503, a truncated 200, a dropped connection, a timeout, a refused
connection, a wrong key), the same result or the same exception class, with the same status and
headers. The SDK is the reference; ChatPost only skips its per-call bookkeeping."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx2
import openai
import pytest
from fake_openai import FakeOpenAI, FaultPlan

from harness.model.transport import ChatPost

BODY = {"model": "fake", "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "billing"}]}


def _client(url: str, key: str = "sk-right", timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=timeout)


async def _both(url: str, **kwargs: Any) -> tuple[Any, Any]:
    """(ChatPost's outcome, the SDK's outcome): the parsed answer or the exception raised."""
    async def outcome(call: Any) -> Any:
        try:
            return await call()
        except Exception as exc:
            return exc

    client = _client(url, **kwargs)
    try:
        ours = await outcome(lambda: ChatPost(client)(BODY))

        async def sdk() -> Any:
            raw = await client.post("/chat/completions", body=BODY, cast_to=httpx2.Response)
            return json.loads(raw.content)

        theirs = await outcome(sdk)
    finally:
        await client.close()
    return ours, theirs


def test_an_answer_is_the_same_json():
    with FakeOpenAI() as server:
        ours, theirs = asyncio.run(_both(server.base_url))
    assert ours["choices"][0]["message"]["content"] == json.dumps({"label": "billing"})
    assert ours["choices"] == theirs["choices"] and ours["usage"] == theirs["usage"]


@pytest.mark.parametrize("fault, expected", [
    (FaultPlan(rate_limit=1.0, retry_after_s=0.25), openai.RateLimitError),
    (FaultPlan(server_error=1.0), openai.InternalServerError),
    (FaultPlan(unavailable=1.0), openai.InternalServerError),
    (FaultPlan(malformed=1.0), (ValueError, openai.APIConnectionError)),
    (FaultPlan(drop=1.0), openai.APIConnectionError),
])
def test_each_fault_raises_what_the_sdk_raises(fault, expected):
    with FakeOpenAI(faults=fault) as server:
        ours, theirs = asyncio.run(_both(server.base_url))
    assert isinstance(ours, expected), ours
    assert type(ours) is type(theirs)
    if isinstance(ours, openai.APIStatusError):
        assert ours.status_code == theirs.status_code
        assert dict(ours.response.headers).keys() - {"date"} == \
            dict(theirs.response.headers).keys() - {"date"}
        assert ours.body == theirs.body


def test_a_timeout_is_the_sdks_timeout_error():
    with FakeOpenAI(faults=FaultPlan(slow=1.0, slow_s=1.0)) as server:
        ours, theirs = asyncio.run(_both(server.base_url, timeout=0.2))
    assert isinstance(ours, openai.APITimeoutError) and type(theirs) is type(ours)


def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ours, theirs = asyncio.run(_both(f"http://127.0.0.1:{port}/v1"))
    assert isinstance(ours, openai.APIConnectionError) and type(theirs) is type(ours)


def test_the_key_and_the_sdks_headers_are_sent():
    with FakeOpenAI(api_key="sk-right") as server:
        ours, _ = asyncio.run(_both(server.base_url))
        wrong, theirs = asyncio.run(_both(server.base_url, key="sk-wrong"))
    assert "choices" in ours
    assert isinstance(wrong, openai.AuthenticationError) and type(theirs) is type(wrong)
