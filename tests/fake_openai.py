"""A real, deterministic HTTP server that speaks the OpenAI wire format, for tests.

The ``openai`` package (3.x) sends its requests through ``httpx2``, so HTTP mocking libraries
made for ``httpx`` (respx, pytest-httpx) do not intercept it. :class:`FakeOpenAI` runs a real
``http.server.ThreadingHTTPServer`` on ``127.0.0.1`` (a free port) in a background thread::

    with FakeOpenAI(latency_s=0.01, faults=FaultPlan(rate_limit=0.2)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        reply = client.chat.completions.create(model="fake-model", messages=[...])

Endpoints (all under ``/v1``):

* ``GET /models``, ``GET /models/{id}``
* ``POST /chat/completions`` (plain JSON or ``stream: true`` server-sent events)
* ``POST /files`` (multipart), ``GET /files``, ``GET /files/{id}``, ``GET /files/{id}/content``,
  ``DELETE /files/{id}``
* ``POST /fine_tuning/jobs``, ``GET /fine_tuning/jobs``, ``GET /fine_tuning/jobs/{id}``,
  ``GET /fine_tuning/jobs/{id}/events``, ``GET /fine_tuning/jobs/{id}/checkpoints``,
  ``POST /fine_tuning/jobs/{id}/cancel``

Everything else answers 404 in OpenAI's error shape. Only the standard library is used.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import random
import re
import socket
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_batches import FakeBatches

__all__ = [
    "DEFAULT_MODEL",
    "JOB_OUTCOMES",
    "ChatReply",
    "FakeOpenAI",
    "FaultPlan",
    "default_responder",
    "last_user_content",
]

DEFAULT_MODEL = "fake-model"
"""The one model id listed by ``GET /v1/models`` (plus fine-tuned models that succeeded)."""

JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "invalid_file")
"""Values accepted by ``FakeOpenAI(job_outcome=...)``."""

FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "slow", "malformed", "drop")
"""Random fault kinds of :class:`FaultPlan`, in the order their probability bands are laid out."""

_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

_HTML_500 = (
    b"<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    b"<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """Return an OpenAI-shaped error body: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class ChatReply:
    """What a responder wants the fake server to answer to one chat-completion request.

    A responder may return a plain ``str`` instead; that is ``ChatReply(content=that_str)``.

    Attributes:
        content: The assistant message content (``None`` sends JSON ``null``).
        finish_reason: ``"stop"``, ``"length"``, ``"content_filter"``... ``None`` sends ``null``
            (some local servers do that).
        refusal: The ``message.refusal`` text; ``None`` (the default) sends ``null``.
        status: HTTP status. Anything but 200 makes this an error reply carrying ``error_body``.
        error_body: JSON body for an error reply. ``None`` with a non-200 status sends a generic
            OpenAI error body. Use :meth:`error` and the named constructors for common cases.
        headers: Extra response headers (for example ``x-ratelimit-remaining-requests``).
        omit_usage: Leave ``usage`` out of the body, as llama.cpp-style local servers may.
        completion_tokens: Override ``usage.completion_tokens`` (default: ``len(content) // 4``,
            at least 1).
        logprobs: ``(token, logprob)`` pairs sent as ``choices[].logprobs.content`` when the
            request asks for ``logprobs``; their tokens should spell ``content``. ``None`` (the
            default) with ``logprobs`` requested sends the content as one token per character
            run (``tokens_of``), each with log-probability 0.
    """

    content: str | None = ""
    finish_reason: str | None = "stop"
    refusal: str | None = None
    status: int = 200
    error_body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    omit_usage: bool = False
    completion_tokens: int | None = None
    logprobs: Sequence[tuple[str, float]] | None = None

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ChatReply:
        """An error reply with OpenAI's error shape and the given HTTP status."""
        return cls(
            content=None,
            status=status,
            error_body=_error_body(message, type_, code, param),
            headers=dict(headers or {}),
        )

    @classmethod
    def context_length_exceeded(cls, max_tokens: int = 4096) -> ChatReply:
        """400 ``context_length_exceeded``, as OpenAI sends for an over-long prompt."""
        return cls.error(
            400,
            f"This model's maximum context length is {max_tokens} tokens. However, your "
            "messages resulted in more tokens. Please reduce the length of the messages.",
            code="context_length_exceeded",
            param="messages",
        )

    @classmethod
    def unauthorized(cls) -> ChatReply:
        """401 ``invalid_api_key``."""
        return cls.error(
            401,
            "Incorrect API key provided: test. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    @classmethod
    def model_not_found(cls, model: str = DEFAULT_MODEL) -> ChatReply:
        """404 ``model_not_found``."""
        return cls.error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    @classmethod
    def insufficient_quota(cls) -> ChatReply:
        """429 ``insufficient_quota`` (a billing stop: callers should not retry it)."""
        return cls.error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type_="insufficient_quota",
            code="insufficient_quota",
        )


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities of injected faults, one seeded draw per chat-completion attempt.

    The probabilities of the six kinds must sum to at most 1; the remainder is a normal answer.

    Attributes:
        rate_limit: 429 ``rate_limit_exceeded`` with a ``Retry-After`` header.
        server_error: 500 with an HTML body (as a proxy in front of a model server sends).
        unavailable: 503 with an HTML body.
        slow: Sleep ``slow_s`` (longer than the client's timeout), then answer normally.
        malformed: 200 with correct headers but a truncated, non-JSON body.
        drop: Close the connection without sending any response.
        retry_after_s: Value for 429 replies. Whole seconds go in ``Retry-After``; a fractional
            value also sends ``retry-after-ms`` (which the SDK prefers) and rounds
            ``Retry-After`` up. 0 (the default) sends ``Retry-After: 0``.
        slow_s: Extra sleep of a ``slow`` fault.
        fail_first_n: Deterministic: the first N attempts of every distinct request body fail
            with 500 (HTML body) before any random draw applies. For retry tests.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    unavailable: float = 0.0
    slow: float = 0.0
    malformed: float = 0.0
    drop: float = 0.0
    retry_after_s: float = 0.0
    slow_s: float = 2.0
    fail_first_n: int = 0

    def __post_init__(self) -> None:
        """Validate probabilities and parameters."""
        probs = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(p < 0 or p > 1 for p in probs):
            raise ValueError(f"fault probabilities must be in [0, 1]: {probs}")
        if sum(probs) > 1 + 1e-9:
            raise ValueError(f"fault probabilities sum to {sum(probs)} > 1")
        if self.retry_after_s < 0 or self.slow_s < 0 or self.fail_first_n < 0:
            raise ValueError("retry_after_s, slow_s and fail_first_n must be >= 0")

    def pick(self, u: float) -> str | None:
        """Map a uniform draw ``u`` in [0, 1) to a fault kind, or ``None`` for a normal answer."""
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return kind
        return None


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def tokens_of(text: str) -> list[str]:
    """The text cut into tokens as a tokenizer might: runs of letters or digits, runs of
    spaces, and single other characters; they spell the text exactly."""
    return re.findall(r"[A-Za-z0-9]+|\s+|.", text, flags=re.DOTALL)


def last_user_content(body: Mapping[str, Any]) -> str:
    """The text of the last ``role: user`` message of a chat request body ("" if none)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def default_responder(body: Mapping[str, Any]) -> str:
    """Answer ``{"label": X}`` where X is the first line of the last user message."""
    text = last_user_content(body)
    first_line = text.splitlines()[0] if text else ""
    return json.dumps({"label": first_line})


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    """Rough token count: total characters of all message contents // 4."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return chars // 4


class _Handler(BaseHTTPRequestHandler):
    """Request handler; all state lives on ``self.server.fake`` (a :class:`FakeOpenAI`)."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1.0"
    disable_nagle_algorithm = True
    server: _Server

    # ----------------------------------------------------------------- plumbing

    def setup(self) -> None:
        """Register the connection so that shutdown can close it."""
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        """Unregister the connection; a peer that already left is fine."""
        with contextlib.suppress(*_DISCONNECT_ERRORS, OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def handle(self) -> None:
        """Serve keep-alive requests; a client that disconnects is not an error."""
        with contextlib.suppress(*_DISCONNECT_ERRORS):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet."""

    def version_string(self) -> str:
        """The ``Server`` header."""
        return self.server_version

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response with a correct Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", self.server.fake._new_id("req_", 24))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send ``obj`` as JSON."""
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _send_error(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        """Send an OpenAI-shaped JSON error."""
        self._send_json(status, _error_body(message, type_, code, param))

    def _drop(self) -> None:
        """Close the connection without sending a byte."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _authorized(self) -> bool:
        """Check the bearer key when the server was given one; answer 401 if it is wrong."""
        key = self.server.fake.api_key
        if key is None or self.headers.get("Authorization", "") == f"Bearer {key}":
            return True
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given:
            self._send_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
            return False
        shown = (given[:3] + "*" * 4 + given[-4:]) if len(given) > 8 else given
        self._send_error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
        return False

    def _dispatch(self, method: str) -> None:
        """Route one request; unexpected handler errors become a 500 JSON error."""
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._read_body() if method in ("POST", "PUT", "PATCH") else b""
        try:
            if not self._authorized():
                return
            self.server.fake._route(self, method, path, query, body)
        except _DISCONNECT_ERRORS:
            raise
        except Exception as exc:
            self.server.fake.handler_errors.append(exc)
            self._send_error(500, f"fake server error: {exc!r}", "server_error")

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        """Handle PUT (always 404)."""
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        """Handle PATCH (always 404)."""
        self._dispatch("PATCH")


class _Server(ThreadingHTTPServer):
    """Threading server with a deep listen backlog and quiet disconnect handling."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected errors instead of printing tracebacks to stderr."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        if exc is not None:
            self.fake.handler_errors.append(exc)


_FILE_ID_RE = re.compile(r"^/v1/files/([^/]+)(/content)?$")
_JOB_RE = re.compile(r"^/v1/fine_tuning/jobs/([^/]+)(?:/(events|cancel|checkpoints))?$")
_MODEL_RE = re.compile(r"^/v1/models/(.+)$")


class FakeOpenAI:
    """A fake OpenAI API server on ``127.0.0.1``; use it as a context manager.

    Args:
        responder: Called with each chat-completion request body (a dict); returns the reply
            content as ``str`` or a :class:`ChatReply`. Default: :func:`default_responder`.
            It runs on server threads, concurrently: keep it thread-safe. If it raises, the
            client gets a 500 JSON error and the exception lands in ``handler_errors``.
        latency_s: Each chat-completion request sleeps this long before answering.
        faults: Random and deterministic fault injection for chat completions.
        seed: Seeds the fault draws and the generated ids.
        api_key: If given, every request without ``Authorization: Bearer <api_key>`` gets 401.
        job_outcome: Scripted end of every fine-tuning job: ``"succeeded"``, ``"failed"``,
            ``"cancelled"``, or ``"invalid_file"`` (job creation answers 400).
        rate_limit_rps: If given, a token bucket that truly enforces a limit: it refills at this
            many chat-completion requests per second and holds at most ``rate_limit_burst``
            (default: one second's worth). A request that finds it empty gets an immediate 429
            ``rate_limit_exceeded`` with ``Retry-After`` / ``retry-after-ms`` (the time until the
            next token); that 429 and every admitted JSON answer carry OpenAI's
            ``x-ratelimit-{limit,remaining,reset}-requests`` (limit = the bucket's size,
            remaining = whole tokens left, reset = time until it is full, like ``"250ms"``).
        slots: If given, at most this many chat completions are served at once (each still
            takes ``latency_s``); the others wait, as on a server of fixed capacity.

    Attributes:
        base_url: ``"http://127.0.0.1:PORT/v1"`` (set on ``__enter__``).
        requests: Every parsed chat-completion request body, in arrival order (faulted ones too).
        attempts: Number of chat-completion HTTP requests received, faulted ones included.
        fault_counts: Injected faults by kind (``FAULT_KINDS`` plus ``"fail_first_n"``).
        files: Uploaded file bytes by file id.
        file_objects: The OpenAI file objects by file id.
        jobs: Fine-tuning job objects by job id (the same dicts the API returns).
        job_creates: Number of ``POST /v1/fine_tuning/jobs`` requests received (400s included).
        handler_errors: Unexpected exceptions raised while serving (should stay empty).
        bucket_log: With ``rate_limit_rps``: ``(monotonic time, admitted)`` per chat request.
    """

    def __init__(
        self,
        *,
        responder: Callable[[dict], str | ChatReply] | None = None,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        seed: int = 0,
        api_key: str | None = None,
        job_outcome: str = "succeeded",
        rate_limit_rps: float | None = None,
        rate_limit_burst: float | None = None,
        slots: int | None = None,
    ) -> None:
        if job_outcome not in JOB_OUTCOMES:
            raise ValueError(f"job_outcome must be one of {JOB_OUTCOMES}, not {job_outcome!r}")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.responder: Callable[[dict], str | ChatReply] = responder or default_responder
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self.seed = seed
        self.api_key = api_key
        self.job_outcome = job_outcome
        if rate_limit_rps is not None and not rate_limit_rps > 0:
            raise ValueError("rate_limit_rps must be > 0")
        self.rate_limit_rps = rate_limit_rps
        self.rate_limit_burst = float(rate_limit_burst or rate_limit_rps or 0)
        if rate_limit_rps is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be >= 1")
        self.bucket_log: list[tuple[float, bool]] = []
        # a server of fixed capacity (like one GPU): the rest wait their turn
        self._slots = threading.Semaphore(slots) if slots else None
        self._tokens = self.rate_limit_burst
        self._tokens_at = time.monotonic()

        self.base_url = ""
        self.requests: list[dict] = []
        self.attempts = 0
        self.fault_counts: collections.Counter[str] = collections.Counter()
        self.files: dict[str, bytes] = {}
        self.file_objects: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_creates = 0
        self.handler_errors: list[BaseException] = []
        self.batches = FakeBatches(self)  # the Batch API (tests/fake_batches.py)

        self._lock = threading.RLock()
        self._fault_rng = random.Random(seed)
        self._id_rng = random.Random(f"ids-{seed}")
        self._attempts_by_key: collections.Counter[str] = collections.Counter()
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._job_step: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeOpenAI:
        """Bind a free port and serve in a daemon thread."""
        self._stop.clear()
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving, close open keep-alive connections, and release the port."""
        self._stop.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port (0 before ``__enter__``)."""
        return self._server.server_address[1] if self._server else 0

    # ----------------------------------------------------------------- helpers

    def count_by_user_content(self) -> collections.Counter[str]:
        """How many times each last user message was requested (faulted attempts included)."""
        with self._lock:
            bodies = list(self.requests)
        return collections.Counter(last_user_content(body) for body in bodies)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember open connections so that ``__exit__`` can close them."""
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _new_id(self, prefix: str, n: int = 24) -> str:
        """A deterministic (per seed) random id like ``file-AbC...``."""
        alphabet = string.ascii_letters + string.digits
        with self._lock:
            return prefix + "".join(self._id_rng.choice(alphabet) for _ in range(n))

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server shuts down."""
        if seconds > 0:
            self._stop.wait(seconds)

    # ----------------------------------------------------------------- routing

    def _route(
        self,
        h: _Handler,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
    ) -> None:
        """Dispatch one authenticated request to its endpoint."""
        if method == "POST" and path == "/v1/chat/completions":
            self._chat(h, body)
            return
        if method == "GET" and path == "/v1/models":
            h._send_json(200, {"object": "list", "data": self._models()})
            return
        if method == "GET" and (m := _MODEL_RE.match(path)):
            for model in self._models():
                if model["id"] == m.group(1):
                    h._send_json(200, model)
                    return
            h._send_error(
                404,
                f"The model '{m.group(1)}' does not exist",
                code="model_not_found",
                param="model",
            )
            return
        if path == "/v1/files":
            if method == "POST":
                self._upload(h, body)
                return
            if method == "GET":
                with self._lock:
                    data = list(reversed(self.file_objects.values()))
                h._send_json(200, {"object": "list", "data": data, "has_more": False})
                return
        if m := _FILE_ID_RE.match(path):
            self._file(h, method, m.group(1), content=bool(m.group(2)))
            return
        if self.batches.route(h, method, path, body):
            return
        if path == "/v1/fine_tuning/jobs":
            if method == "POST":
                self._create_job(h, body)
                return
            if method == "GET":
                with self._lock:
                    data = [dict(job) for job in reversed(self.jobs.values())]
                h._send_json(200, self._page(data, query))
                return
        if (m := _JOB_RE.match(path)) and self._job_route(h, method, m, query):
            return
        h._send_error(
            404,
            f"Invalid URL ({method} {path})",
            code="unknown_url",
        )

    @staticmethod
    def _page(data: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
        """An OpenAI list page honoring ``limit`` and ``after`` (cursor = an object id)."""
        if after := query.get("after"):
            ids = [item.get("id") for item in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit") or 20)
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit}

    def _models(self) -> list[dict[str, Any]]:
        """The model list: ``fake-model`` plus every fine-tuned model that exists."""
        models = [{"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "fake"}]
        with self._lock:
            for job in self.jobs.values():
                if job.get("fine_tuned_model"):
                    models.append(
                        {
                            "id": job["fine_tuned_model"],
                            "object": "model",
                            "created": job.get("finished_at") or job["created_at"],
                            "owned_by": job["organization_id"],
                        }
                    )
        return models

    # ----------------------------------------------------------------- chat

    def _chat(self, h: _Handler, raw: bytes) -> None:
        """``POST /v1/chat/completions``, at most ``slots`` at a time when that is set."""
        if self._slots is None:
            self._chat_one(h, raw)
            return
        with self._slots:
            self._chat_one(h, raw)

    def _chat_one(self, h: _Handler, raw: bytes) -> None:
        """One chat completion: faults first, then the responder's reply."""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        with self._lock:
            self.attempts += 1
            if isinstance(body, dict):
                self.requests.append(body)
                key = json.dumps(body, sort_keys=True)
                self._attempts_by_key[key] += 1
                nth = self._attempts_by_key[key]
            else:
                nth = 0
            limited = self._take_token()
            kind = self.faults.pick(self._fault_rng.random())
            if 0 < nth <= self.faults.fail_first_n:
                kind = "fail_first_n"
            if kind is not None:
                self.fault_counts[kind] += 1

        if limited is not None and limited[0] is False:
            h._send_json(
                429,
                _error_body(
                    f"Rate limit reached for requests: Limit {self.rate_limit_rps:g} per second. "
                    "Please try again later.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                headers=limited[1],
            )
            return
        if kind == "drop":
            h._drop()
            return
        self._sleep(self.latency_s)
        if not isinstance(body, dict):
            h._send_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload...)",
            )
            return
        if kind in ("server_error", "fail_first_n"):
            h._send(500, _HTML_500, "text/html")
            return
        if kind == "unavailable":
            h._send(503, _HTML_503, "text/html")
            return
        if kind == "rate_limit":
            h._send_json(
                429,
                _error_body(
                    f"Rate limit reached for {body.get('model', DEFAULT_MODEL)} in organization "
                    "org-fake on requests per min (RPM): Limit 60, Used 60, Requested 1. "
                    "Please try again later.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                headers=self._retry_after_headers(),
            )
            return
        if kind == "slow":
            self._sleep(self.faults.slow_s)
            if self._stop.is_set():
                h._drop()
                return

        for required in ("model", "messages"):
            if required not in body:
                h._send_error(400, f"Missing required parameter: '{required}'.", param=required)
                return

        reply = self.responder(body)
        if isinstance(reply, str):
            reply = ChatReply(content=reply)
        if reply.status != 200:
            error = reply.error_body or _error_body(
                f"Error {reply.status}", "invalid_request_error", None
            )
            h._send_json(reply.status, error, headers=reply.headers)
            return
        if body.get("stream"):
            self._stream(h, body, reply)
            return
        completion = self._completion(body, reply)
        if limited is not None:
            reply = replace(reply, headers={**limited[1], **reply.headers})
        if kind == "malformed":
            raw_out = json.dumps(completion).encode()
            h._send(200, raw_out[: max(1, len(raw_out) // 2)], headers=reply.headers)
            return
        h._send_json(200, completion, headers=reply.headers)

    def _take_token(self) -> tuple[bool, dict[str, str]] | None:
        """With ``rate_limit_rps`` (call under the lock): admit or refuse one request, and the
        ``x-ratelimit-*`` headers (plus ``Retry-After`` on a refusal) describing the bucket."""
        rps = self.rate_limit_rps
        if rps is None:
            return None
        now = time.monotonic()
        burst = self.rate_limit_burst
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rps)
        self._tokens_at = now
        admitted = self._tokens >= 1
        if admitted:
            self._tokens -= 1
        self.bucket_log.append((now, admitted))
        headers = {
            "x-ratelimit-limit-requests": f"{burst:g}",
            "x-ratelimit-remaining-requests": str(int(self._tokens)),
            "x-ratelimit-reset-requests": f"{round((burst - self._tokens) / rps * 1000)}ms",
        }
        if not admitted:
            wait = (1 - self._tokens) / rps
            headers["Retry-After"] = str(math.ceil(wait))
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
        return admitted, headers

    def _retry_after_headers(self) -> dict[str, str]:
        """``Retry-After`` (whole seconds, rounded up) plus ``retry-after-ms`` if fractional."""
        seconds = self.faults.retry_after_s
        headers = {
            "Retry-After": str(math.ceil(seconds)),
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
        }
        if seconds != int(seconds):
            headers["retry-after-ms"] = str(round(seconds * 1000))
        return headers

    def _usage(self, body: Mapping[str, Any], reply: ChatReply, n: int) -> dict[str, Any]:
        """A ``usage`` object: prompt chars // 4, completion chars // 4 (at least 1) per choice."""
        prompt = _prompt_tokens(body)
        if reply.completion_tokens is not None:
            completion = reply.completion_tokens
        else:
            completion = max(1, len(reply.content or reply.refusal or "") // 4) * n
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _completion(self, body: Mapping[str, Any], reply: ChatReply) -> dict[str, Any]:
        """A full ``chat.completion`` object."""
        n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        message = {
            "role": "assistant",
            "content": reply.content,
            "refusal": reply.refusal,
            "annotations": [],
        }
        completion: dict[str, Any] = {
            "id": self._new_id("chatcmpl-", 29),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", DEFAULT_MODEL),
            "choices": [
                {
                    "index": i,
                    "message": dict(message),
                    "logprobs": self._logprobs(body, reply),
                    "finish_reason": reply.finish_reason,
                }
                for i in range(n)
            ],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if not reply.omit_usage:
            completion["usage"] = self._usage(body, reply, n)
        return completion

    @staticmethod
    def _logprobs(body: Mapping[str, Any], reply: ChatReply) -> dict[str, Any] | None:
        """``choices[].logprobs`` as OpenAI sends it, when the request asked for it."""
        if not body.get("logprobs"):
            return None
        pairs = reply.logprobs if reply.logprobs is not None else [
            (t, 0.0) for t in tokens_of(reply.content or "")]
        return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                             "top_logprobs": []} for t, lp in pairs], "refusal": None}

    def _stream(self, h: _Handler, body: Mapping[str, Any], reply: ChatReply) -> None:
        """Answer ``stream: true`` with server-sent events (one connection, then close)."""
        cid = self._new_id("chatcmpl-", 29)
        base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", DEFAULT_MODEL),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice], **extra}

        content = reply.content or ""
        pieces = [content[i : i + 8] for i in range(0, len(content), 8)]
        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [chunk({"content": piece}, None) for piece in pieces]
        if reply.refusal:
            events.append(chunk({"refusal": reply.refusal}, None))
        events.append(chunk({}, reply.finish_reason))
        options = body.get("stream_options") or {}
        if options.get("include_usage") and not reply.omit_usage:
            events.append({**base, "choices": [], "usage": self._usage(body, reply, 1)})
        payload = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        payload += b"data: [DONE]\n\n"
        h.close_connection = True
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(payload)
        h.wfile.flush()

    # ----------------------------------------------------------------- files

    def _upload(self, h: _Handler, body: bytes) -> None:
        """``POST /v1/files``: parse multipart, store the bytes, return the file object."""
        ctype = h.headers.get("Content-Type", "")
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if not ctype.startswith("multipart/form-data") or m is None:
            h._send_error(400, "Expected a multipart/form-data body.")
            return
        fields, uploads = _parse_multipart(body, m.group(1).encode())
        purpose = fields.get("purpose")
        if "file" not in uploads:
            h._send_error(400, "Missing required parameter: 'file'.", param="file")
            return
        if not purpose:
            h._send_error(400, "Missing required parameter: 'purpose'.", param="purpose")
            return
        filename, data = uploads["file"]
        file_id = self._new_id("file-", 22)
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }
        with self._lock:
            self.files[file_id] = data
            self.file_objects[file_id] = obj
        h._send_json(200, obj)

    def _file(self, h: _Handler, method: str, file_id: str, *, content: bool) -> None:
        """``GET /v1/files/{id}[/content]`` and ``DELETE /v1/files/{id}``."""
        with self._lock:
            obj = self.file_objects.get(file_id)
            data = self.files.get(file_id)
        if obj is None or data is None:
            h._send_error(404, f"No such File object: {file_id}", param="id")
            return
        if method == "GET" and content:
            h._send(200, data, "application/octet-stream")
        elif method == "GET":
            h._send_json(200, obj)
        elif method == "DELETE" and not content:
            with self._lock:
                self.files.pop(file_id, None)
                self.file_objects.pop(file_id, None)
            h._send_json(200, {"id": file_id, "object": "file", "deleted": True})
        else:
            h._send_error(404, f"Invalid URL ({method} {h.path})", code="unknown_url")

    # ----------------------------------------------------------------- fine-tuning

    def _create_job(self, h: _Handler, raw: bytes) -> None:
        """``POST /v1/fine_tuning/jobs``."""
        with self._lock:
            self.job_creates += 1
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            h._send_error(400, "We could not parse the JSON body of your request.")
            return
        for required in ("model", "training_file"):
            if not body.get(required):
                h._send_error(400, f"Missing required parameter: '{required}'.", param=required)
                return
        training_file = body["training_file"]
        validation_file = body.get("validation_file")
        with self._lock:
            known = set(self.files)
        for param, fid in (("training_file", training_file), ("validation_file", validation_file)):
            if fid is not None and fid not in known:
                h._send_error(
                    400, f"invalid {param}: {fid}", code="invalid_request_error", param=param
                )
                return
        if self.job_outcome == "invalid_file":
            h._send_error(
                400,
                f"File '{training_file}' is not a valid fine-tuning file: training examples "
                "must be JSONL objects with a 'messages' list ending in an assistant message, "
                "and at least 10 examples are required.",
                code="invalid_training_file",
                param="training_file",
            )
            return

        method = body.get("method")
        if not isinstance(method, dict):
            hp = body.get("hyperparameters") or {}
            method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
        kind = method.get("type", "supervised")
        given = ((method.get(kind) or {}).get("hyperparameters")) or {}
        hyper = {
            "n_epochs": given.get("n_epochs", "auto"),
            "batch_size": given.get("batch_size", "auto"),
            "learning_rate_multiplier": given.get("learning_rate_multiplier", "auto"),
        }
        method = {**method, kind: {**(method.get(kind) or {}), "hyperparameters": hyper}}
        job_id = self._new_id("ftjob-", 24)
        seed = body.get("seed")
        job: dict[str, Any] = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": body["model"],
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "status": "validating_files",
            "validation_file": validation_file,
            "training_file": training_file,
            "hyperparameters": dict(hyper),
            "method": method,
            "trained_tokens": None,
            "error": None,
            "seed": seed if isinstance(seed, int) else self._id_rng.randrange(2**31),
            "suffix": body.get("suffix"),
            "user_provided_suffix": body.get("suffix"),
            "estimated_finish": None,
            "integrations": body.get("integrations"),
            "metadata": body.get("metadata"),
        }
        with self._lock:
            self.jobs[job_id] = job
            self._job_step[job_id] = 0
            self._events[job_id] = []
        self._event(job_id, f"Validating training file: {training_file}")
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        h._send_json(200, job)

    def _event(self, job_id: str, message: str, level: str = "info") -> None:
        """Append one job event."""
        event = {
            "object": "fine_tuning.job.event",
            "id": self._new_id("ftevent-", 24),
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": "message",
            "data": {},
        }
        with self._lock:
            self._events[job_id].append(event)

    def _advance(self, job_id: str) -> None:
        """One retrieve: validating_files -> queued -> running -> scripted terminal status."""
        with self._lock:
            job = self.jobs[job_id]
            status = job["status"]
            if status in ("succeeded", "failed", "cancelled"):
                return
            nxt = {"validating_files": "queued", "queued": "running"}.get(status)
            job["status"] = nxt or self.job_outcome
            if nxt == "queued":
                self._event(job_id, "Files validated, moving job to queued state")
            elif nxt == "running":
                self._event(job_id, "Fine-tuning job started")
            else:
                self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        """Fill in the terminal fields of the scripted outcome."""
        job = self.jobs[job_id]
        job["finished_at"] = int(time.time())
        outcome = job["status"]
        if outcome == "succeeded":
            suffix = job.get("suffix") or ""
            tag = self._new_id("", 6)
            job["fine_tuned_model"] = f"ft:{job['model']}:fake-org:{suffix}:{tag}"
            epochs = job["hyperparameters"]["n_epochs"]
            epochs = epochs if isinstance(epochs, int) else 3
            if job["hyperparameters"]["n_epochs"] == "auto":
                job["hyperparameters"]["n_epochs"] = epochs
            data = self.files.get(job["training_file"], b"")
            job["trained_tokens"] = max(1, len(data) // 4) * epochs
            job["result_files"] = [self._new_id("file-", 22)]
            self._event(job_id, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job_id, "The job has successfully completed")
        elif outcome == "failed":
            job["error"] = {
                "code": "invalid_training_file",
                "message": "The job failed due to an invalid training file. Expected file to "
                "have JSONL format with 'messages' on every line.",
                "param": "training_file",
            }
            self._event(job_id, job["error"]["message"], level="error")
        else:
            self._event(job_id, "Fine-tuning job cancelled")

    def _job_route(
        self, h: _Handler, method: str, m: re.Match[str], query: Mapping[str, str]
    ) -> bool:
        """Job retrieve / events / checkpoints / cancel; ``False`` if the method is wrong."""
        job_id, sub = m.group(1), m.group(2)
        with self._lock:
            exists = job_id in self.jobs
        wanted = "POST" if sub == "cancel" else "GET"
        if method != wanted:
            return False
        if not exists:
            h._send_error(404, f"Could not find fine tune job: {job_id}", param="fine_tune_id")
            return True
        if sub is None:
            self._advance(job_id)
            with self._lock:
                h._send_json(200, json.loads(json.dumps(self.jobs[job_id])))
        elif sub == "events":
            with self._lock:
                events = list(reversed(self._events[job_id]))
            h._send_json(200, self._page(events, query))
        elif sub == "checkpoints":
            h._send_json(200, self._page(self._checkpoints(job_id), query))
        else:
            self._cancel(h, job_id)
        return True

    def _checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """One checkpoint for a succeeded job, none otherwise."""
        with self._lock:
            job = dict(self.jobs[job_id])
        if job["status"] != "succeeded":
            return []
        return [
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{job_id.removeprefix('ftjob-')}",
                "created_at": job["finished_at"],
                "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-10",
                "fine_tuning_job_id": job_id,
                "metrics": {"step": 10, "train_loss": 0.5, "train_mean_token_accuracy": 0.9},
                "step_number": 10,
            }
        ]

    def _cancel(self, h: _Handler, job_id: str) -> None:
        """``POST /v1/fine_tuning/jobs/{id}/cancel``."""
        with self._lock:
            job = self.jobs[job_id]
            terminal = job["status"] in ("succeeded", "failed", "cancelled")
            if not terminal:
                job["status"] = "cancelled"
                job["finished_at"] = int(time.time())
        if terminal:
            h._send_error(
                400, f"Job {job_id} has already completed ({job['status']}).", param="job_id"
            )
            return
        self._event(job_id, "Fine-tuning job cancelled")
        with self._lock:
            h._send_json(200, json.loads(json.dumps(job)))


def _parse_multipart(
    body: bytes, boundary: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Parse ``multipart/form-data`` exactly (no newline translation).

    Returns ``(fields, uploads)``: plain fields as text, and file parts as
    ``(filename, bytes)`` keyed by field name.
    """
    fields: dict[str, str] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        part = part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name_m = re.search(r'(?<![a-z*])name="([^"]*)"', disposition)
        file_m = re.search(r'filename="([^"]*)"', disposition)
        if name_m is None:
            continue
        if file_m is not None:
            uploads[name_m.group(1)] = (file_m.group(1), content)
        else:
            fields[name_m.group(1)] = content.decode("utf-8", "replace")
    return fields, uploads
