"""Tests of the fake OpenAI server (``tests/fake_openai.py``) through the real ``openai`` client."""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from fake_openai import ChatReply, FakeOpenAI, FaultPlan

MALFORMED_EXC = json.JSONDecodeError
"""What ``openai`` 3.5x raises for a 200 whose JSON body is truncated.

``response.json()`` fails inside the SDK and the raw ``json.JSONDecodeError`` escapes: it is not
an ``openai.OpenAIError``, so retry predicates that only look at SDK errors will not see it."""

MESSAGES = [
    {"role": "system", "content": "Classify the sentiment."},
    {"role": "user", "content": "positive\nI loved it."},
]


def make_client(server: FakeOpenAI, **kwargs: Any) -> openai.OpenAI:
    """A real client pointed at the fake server, with the SDK's own retries off by default."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", "test")
    return openai.OpenAI(base_url=server.base_url, **kwargs)


def ask(client: openai.OpenAI, text: str = "positive", **kwargs: Any) -> Any:
    """One chat completion whose last user message is ``text``."""
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}], **kwargs
    )


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A fake server with default settings."""
    with FakeOpenAI() as fake:
        yield fake


# --------------------------------------------------------------------------- chat


def test_models_list(server: FakeOpenAI) -> None:
    """``GET /v1/models`` lists ``fake-model``."""
    models = make_client(server).models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")


def test_chat_completion_parse_and_usage(server: FakeOpenAI) -> None:
    """Default responder echoes the first line of the last user message as a label."""
    client = make_client(server)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, temperature=0, seed=7, max_tokens=20
    )
    reply = raw.parse()
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "gpt-test"
    assert isinstance(reply.created, int)
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert json.loads(choice.message.content or "") == {"label": "positive"}
    chars = sum(len(m["content"]) for m in MESSAGES)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == chars // 4
    assert reply.usage.completion_tokens >= 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert server.attempts == 1
    assert server.requests == [
        {"model": "gpt-test", "messages": MESSAGES, "temperature": 0, "seed": 7, "max_tokens": 20}
    ]
    assert server.count_by_user_content() == {"positive\nI loved it.": 1}
    assert server.handler_errors == []


def test_chat_reply_controls_body_and_headers() -> None:
    """A ``ChatReply`` sets content, refusal, finish_reason, headers, and can omit usage."""
    replies = {
        "refuse": ChatReply(
            content=None, refusal="I can't help with that.", finish_reason="content_filter"
        ),
        "cut": ChatReply(
            content='{"label": "pos',
            finish_reason="length",
            headers={"x-ratelimit-remaining-requests": "7"},
        ),
        "local": ChatReply(content="ok", finish_reason=None, omit_usage=True),
    }
    with FakeOpenAI(responder=lambda body: replies[body["messages"][-1]["content"]]) as server:
        client = make_client(server)
        refused = ask(client, "refuse").choices[0]
        assert refused.message.content is None
        assert refused.message.refusal == "I can't help with that."
        assert refused.finish_reason == "content_filter"

        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "cut"}]
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == "7"
        assert raw.parse().choices[0].finish_reason == "length"

        local = ask(client, "local")
        assert local.usage is None
        assert local.choices[0].finish_reason is None
        assert local.choices[0].message.content == "ok"


@pytest.mark.parametrize(
    ("reply", "exc_type", "status", "code"),
    [
        (
            ChatReply.context_length_exceeded(),
            openai.BadRequestError,
            400,
            "context_length_exceeded",
        ),
        (ChatReply.unauthorized(), openai.AuthenticationError, 401, "invalid_api_key"),
        (ChatReply.model_not_found(), openai.NotFoundError, 404, "model_not_found"),
        (ChatReply.insufficient_quota(), openai.RateLimitError, 429, "insufficient_quota"),
    ],
)
def test_error_replies(
    reply: ChatReply, exc_type: type[openai.APIStatusError], status: int, code: str
) -> None:
    """Error replies come back as the SDK's typed errors with ``status_code`` and ``code``."""
    with FakeOpenAI(responder=lambda body: reply) as server:
        with pytest.raises(exc_type) as info:
            ask(make_client(server))
        assert info.value.status_code == status
        assert info.value.code == code
    if code == "context_length_exceeded":
        assert "maximum context length is 4096 tokens" in info.value.message


def test_api_key_is_enforced() -> None:
    """With ``api_key`` set, a wrong bearer key gets 401 and the right one works."""
    with FakeOpenAI(api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError) as info:
            ask(make_client(server, api_key="sk-wrong"))
        assert info.value.code == "invalid_api_key"
        assert ask(make_client(server, api_key="sk-right")).choices[0].message.content
        assert server.attempts == 1  # the unauthorized request never reached the chat route


def test_streaming(server: FakeOpenAI) -> None:
    """``stream=True`` yields chunks that add up to the reply, usage last if asked."""
    stream = ask(
        make_client(server), "neutral", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"label": "neutral"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_unknown_route_and_bad_json(server: FakeOpenAI) -> None:
    """Unknown routes get 404 in OpenAI's error shape; a non-JSON chat body gets 400."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/v1/nope")
    response = conn.getresponse()
    assert response.status == 404
    assert json.loads(response.read())["error"]["code"] == "unknown_url"
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"]["type"] == "invalid_request_error"
    conn.close()
    with pytest.raises(openai.NotFoundError):
        make_client(server).get("/nope", cast_to=object)


# --------------------------------------------------------------------------- faults


def test_fault_rate_limit_with_retry_after() -> None:
    """429 ``rate_limit_exceeded`` -> RateLimitError; ``Retry-After`` readable from headers."""
    with FakeOpenAI(faults=FaultPlan(rate_limit=1.0, retry_after_s=2)) as server:
        with pytest.raises(openai.RateLimitError) as info:
            ask(make_client(server))
        assert info.value.status_code == 429
        assert info.value.code == "rate_limit_exceeded"
        assert info.value.response.headers["retry-after"] == "2"
        assert "retry-after-ms" not in info.value.response.headers
        assert server.fault_counts == {"rate_limit": 1}
    with FakeOpenAI(faults=FaultPlan(rate_limit=1.0, retry_after_s=0.25)) as server:
        with pytest.raises(openai.RateLimitError) as info:
            ask(make_client(server))
        assert info.value.response.headers["retry-after-ms"] == "250"
        assert info.value.response.headers["retry-after"] == "1"


def test_token_bucket_enforces_a_rate_with_openai_headers() -> None:
    """``rate_limit_rps``: a burst beyond the bucket gets 429s with Retry-After; every reply says
    how much is left (x-ratelimit-*); the bucket refills at the given rate."""
    with FakeOpenAI(rate_limit_rps=2, rate_limit_burst=3) as server:
        client = make_client(server).with_raw_response
        seen: list[tuple[int, Any]] = []
        for _ in range(5):  # far faster than 2 per second
            try:
                raw = client.chat.completions.create(model="fake-model", messages=MESSAGES)
                seen.append((raw.status_code, raw.headers))
            except openai.RateLimitError as exc:
                seen.append((exc.status_code, exc.response.headers))
        statuses = [status for status, _ in seen]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        first, limited = seen[0][1], seen[statuses.index(429)][1]
        assert first["x-ratelimit-limit-requests"] == "3"
        assert first["x-ratelimit-remaining-requests"] == "2"
        assert re.fullmatch(r"\d+ms", first["x-ratelimit-reset-requests"])
        assert limited["x-ratelimit-remaining-requests"] == "0"
        assert 1 <= int(limited["retry-after-ms"]) <= 500  # one token takes 500 ms at 2/s
        assert limited["retry-after"] == "1"
        time.sleep(0.6)  # at least one token back
        assert client.chat.completions.create(model="fake-model", messages=MESSAGES).status_code \
            == 200
        assert server.attempts == 6 and len(server.bucket_log) == 6
        assert [ok for _, ok in server.bucket_log] == [s == 200 for s in statuses] + [True]
    with pytest.raises(ValueError, match="rate_limit_rps"):
        FakeOpenAI(rate_limit_rps=0)


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
def test_fault_html_errors(kind: str, status: int) -> None:
    """500 and 503 with HTML bodies -> InternalServerError carrying the status."""
    with FakeOpenAI(faults=FaultPlan(**{kind: 1.0})) as server:
        with pytest.raises(openai.InternalServerError) as info:
            ask(make_client(server))
        assert info.value.status_code == status
        assert info.value.response.headers["content-type"] == "text/html"
        assert "<html>" in info.value.response.text
        assert server.fault_counts == {kind: 1}
        assert server.attempts == 1


def test_fault_slow_times_out() -> None:
    """A slow answer past the client's timeout -> APITimeoutError."""
    with FakeOpenAI(faults=FaultPlan(slow=1.0, slow_s=1.0)) as server:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(make_client(server, timeout=0.3))
        assert time.monotonic() - started < 0.9
        assert server.fault_counts == {"slow": 1}


def test_fault_drop_is_a_connection_error() -> None:
    """A connection closed without a response -> APIConnectionError (not a timeout)."""
    with FakeOpenAI(faults=FaultPlan(drop=1.0)) as server:
        with pytest.raises(openai.APIConnectionError) as info:
            ask(make_client(server))
        assert not isinstance(info.value, openai.APITimeoutError)
        assert server.fault_counts == {"drop": 1}
        assert server.attempts == 1


def test_fault_malformed_body() -> None:
    """A 200 with a truncated JSON body -> MALFORMED_EXC (see module constant)."""
    with FakeOpenAI(faults=FaultPlan(malformed=1.0)) as server:
        with pytest.raises(MALFORMED_EXC) as info:
            ask(make_client(server))
        assert type(info.value) is MALFORMED_EXC
        assert not isinstance(info.value, openai.OpenAIError)
        assert server.fault_counts == {"malformed": 1}


def test_fail_first_n_is_per_distinct_request() -> None:
    """The first N attempts of each distinct request body fail with 500, then it succeeds."""
    with FakeOpenAI(faults=FaultPlan(fail_first_n=2)) as server:
        client = make_client(server)
        for text in ("a", "b"):
            for _ in range(2):
                with pytest.raises(openai.InternalServerError):
                    ask(client, text)
            assert json.loads(ask(client, text).choices[0].message.content or "") == {"label": text}
        assert server.count_by_user_content() == {"a": 3, "b": 3}
        assert server.fault_counts == {"fail_first_n": 4}
        assert server.attempts == 6


def test_sdk_retries_through_fail_first_n() -> None:
    """The SDK's own retry loop gets past one 500 (about 0.5 s of its backoff)."""
    with FakeOpenAI(faults=FaultPlan(fail_first_n=1)) as server:
        raw = make_client(server, max_retries=1).chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.retries_taken == 1
        assert server.attempts == 2


def test_fault_draws_are_seeded() -> None:
    """Same seed, same sequence of outcomes; every attempt is counted."""

    def outcomes(seed: int) -> list[str]:
        result = []
        with FakeOpenAI(faults=FaultPlan(server_error=0.3, rate_limit=0.2), seed=seed) as server:
            client = make_client(server)
            for i in range(30):
                try:
                    ask(client, str(i))
                    result.append("ok")
                except openai.APIStatusError as exc:
                    result.append(str(exc.status_code))
            assert server.attempts == 30
            assert sum(server.fault_counts.values()) == 30 - result.count("ok")
        return result

    first = outcomes(1)
    assert first == outcomes(1)
    assert {"ok", "500", "429"} <= set(first)


def test_fault_plan_validation() -> None:
    """Probabilities must be in [0, 1] and sum to at most 1."""
    with pytest.raises(ValueError):
        FaultPlan(server_error=0.7, drop=0.5)
    with pytest.raises(ValueError):
        FaultPlan(slow=-0.1)
    assert FaultPlan(rate_limit=0.5).pick(0.4) == "rate_limit"
    assert FaultPlan(rate_limit=0.5).pick(0.6) is None


# --------------------------------------------------------------------------- robustness


def test_concurrent_throughput_with_latency() -> None:
    """100 requests at 0.1 s latency through 16 threads finish in well under 2 s."""
    with FakeOpenAI(latency_s=0.1) as server:
        client = make_client(server)
        ask(client, "warm-up")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(pool.map(lambda i: ask(client, f"item {i}"), range(100)))
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, f"100 requests took {elapsed:.2f} s"
        labels = [json.loads(r.choices[0].message.content or "")["label"] for r in replies]
        assert labels == [f"item {i}" for i in range(100)]
        assert server.attempts == 101
        assert set(server.count_by_user_content().values()) == {1}
        assert server.handler_errors == []


def test_survives_client_disconnects_and_shuts_down_cleanly() -> None:
    """A client vanishing mid-request does not hurt the server; exit is fast with open sockets."""
    with FakeOpenAI(latency_s=0.2) as server:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "bye"}]})
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # reset before the answer comes
        time.sleep(0.3)
        client = make_client(server)
        assert ask(client, "still alive").choices[0].message.content
        idle = http.client.HTTPConnection("127.0.0.1", server.port)
        idle.request("GET", "/v1/models")
        idle.getresponse().read()  # a keep-alive connection left open on purpose
        assert server.handler_errors == []
        port = server.port
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5)
    idle.close()


# --------------------------------------------------------------------------- fine-tuning


def write_training_file(tmp_path: Path) -> Path:
    """A 10-example chat JSONL training file."""
    path = tmp_path / "train.jsonl"
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"text {i}"},
                    {"role": "assistant", "content": json.dumps({"label": "positive"})},
                ]
            }
        )
        for i in range(10)
    ]
    path.write_bytes(("\r\n".join(lines) + "\n").encode())  # CRLF must survive byte-exact
    return path


def create_job(client: openai.OpenAI, tmp_path: Path) -> tuple[Any, bytes]:
    """Upload the training file and start a job; returns (job, uploaded bytes)."""
    path = write_training_file(tmp_path)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=uploaded.id,
        suffix="sentiment",
        seed=42,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    return job, path.read_bytes()


def test_file_upload_is_byte_exact(server: FakeOpenAI, tmp_path: Path) -> None:
    """``files.create`` stores the exact bytes; retrieve and content give them back."""
    client = make_client(server)
    path = write_training_file(tmp_path)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    data = path.read_bytes()
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(data)
    assert uploaded.filename == "train.jsonl"
    assert uploaded.purpose == "fine-tune"
    assert server.files == {uploaded.id: data}
    assert client.files.retrieve(uploaded.id).bytes == len(data)
    assert client.files.content(uploaded.id).content == data
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-missing")


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_job_lifecycle(outcome: str, tmp_path: Path) -> None:
    """Each retrieve advances validating_files -> queued -> running -> the scripted outcome."""
    with FakeOpenAI(job_outcome=outcome) as server:
        client = make_client(server)
        job, data = create_job(client, tmp_path)
        assert job.id.startswith("ftjob-")
        assert job.object == "fine_tuning.job"
        assert job.status == "validating_files"
        assert job.fine_tuned_model is None and job.trained_tokens is None and job.error is None
        assert job.seed == 42 and job.suffix == "sentiment"
        assert job.method is not None and job.method.supervised is not None
        assert job.method.supervised.hyperparameters.n_epochs == 2
        assert job.result_files == []
        stored = server.jobs[job.id]
        assert stored["training_file"] == job.training_file and stored["model"] == job.model
        assert server.job_creates == 1

        statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(4)]
        assert statuses == ["queued", "running", outcome, outcome]
        final = client.fine_tuning.jobs.retrieve(job.id)
        if outcome == "succeeded":
            assert final.fine_tuned_model is not None
            assert re.fullmatch(
                r"ft:gpt-4o-mini-2024-07-18:fake-org:sentiment:[A-Za-z0-9]{6}",
                final.fine_tuned_model,
            )
            assert final.trained_tokens == len(data) // 4 * 2
            assert final.error is None
            ids = [m.id for m in client.models.list().data]
            assert final.fine_tuned_model in ids
            reply = client.chat.completions.create(
                model=final.fine_tuned_model, messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.model == final.fine_tuned_model
        else:
            assert final.fine_tuned_model is None
        if outcome == "failed":
            assert final.error is not None
            assert final.error.code and final.error.message and final.error.param
        events = client.fine_tuning.jobs.list_events(job.id).data
        assert all(e.object == "fine_tuning.job.event" and e.type == "message" for e in events)
        assert events[-1].message.startswith("Validating training file")  # newest first
        assert (events[0].level == "error") == (outcome == "failed")


def test_job_list_and_cancel(server: FakeOpenAI, tmp_path: Path) -> None:
    """Jobs list newest first; cancel stops a running job and refuses a finished one."""
    client = make_client(server)
    first, _ = create_job(client, tmp_path)
    second, _ = create_job(client, tmp_path)
    listed = client.fine_tuning.jobs.list()
    assert [j.id for j in listed.data] == [second.id, first.id]
    assert listed.has_more is False
    assert client.fine_tuning.jobs.cancel(first.id).status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(first.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(first.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert server.job_creates == 2


def test_job_invalid_file(tmp_path: Path) -> None:
    """``job_outcome="invalid_file"`` makes job creation answer 400 about the training file."""
    with FakeOpenAI(job_outcome="invalid_file") as server:
        with pytest.raises(openai.BadRequestError) as info:
            create_job(make_client(server), tmp_path)
        assert info.value.param == "training_file"
        assert "training" in info.value.message
        assert server.jobs == {}
        assert server.job_creates == 1
