"""One chat request through the `openai` client's own HTTP client, at the least cost per call.

The SDK stays the one transport: its HTTP client (connection pool, event hooks, proxies), its
headers (the key, the user agent, the organisation) and its exception classes, mapped from HTTP
outcomes exactly as `AsyncOpenAI.post` maps them. What is left out is the per-call work that
buys nothing here: a pydantic `FinalRequestOptions` per request, the header merge, the URL join
and the type-driven transform of the body (together about 0.7 ms a request). The SDK's own
retries are off in the harness (`max_retries=0`); the provider's one retry loop retries.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2
import openai

__all__ = ["ChatPost"]


class ChatPost:
    """POST /chat/completions on one `openai.AsyncOpenAI` client; the answer's parsed JSON.

    Headers and the URL are built once, on the first call (no work in the constructor). Raises
    what the SDK raises: `openai.APITimeoutError`, `openai.APIConnectionError`, and the
    `openai.APIStatusError` subclass of a 4xx or 5xx answer (RateLimitError, NotFoundError, ...),
    with the response's headers and body; a 200 whose body is not JSON is a ValueError.
    """

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self._headers: dict[str, str] | None = None
        self._url: httpx2.URL | None = None

    def _prepare(self) -> tuple[dict[str, str], httpx2.URL]:
        if self._headers is None or self._url is None:
            merged = {**self.client.auth_headers, **self.client.default_headers}
            self._headers = {k: v for k, v in merged.items() if isinstance(v, str)}
            self._url = httpx2.URL(str(self.client.base_url).rstrip("/") + "/chat/completions")
        return self._headers, self._url

    async def __call__(self, body: Mapping[str, Any]) -> Any:
        headers, url = self._prepare()
        http: Any = self.client._client  # the SDK's HTTP client, as AsyncOpenAI.post uses it
        request = http.build_request("POST", url, headers=headers, timeout=self.client.timeout,
                                     content=json.dumps(body, separators=(",", ":")).encode())
        try:
            response = await http.send(request)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream) as exc:
            raise openai.APIConnectionError(request=request) from exc
        if not response.is_success:
            raise self.client._make_status_error_from_response(response)
        return json.loads(response.content)
