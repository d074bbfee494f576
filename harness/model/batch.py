"""The OpenAI Batch API behind the per-request call: `BatchQueue.complete(request, key)`.

Requests for a model in `mode: batch` are gathered (every request that arrives within `window`
seconds of the one before, at most `max_lines` to a batch), written as one JSONL file, uploaded
and submitted with `batches.create`. The queue polls each batch until it ends, maps the answers
back by custom_id (the request's cache key), and submits the lines that failed transiently (a
429 or 5xx, expired, cancelled) again in a follow-up batch, up to `max_attempts` in all.

Every batch is written to a journal in the run folder as soon as its file is uploaded and again
once it is created, so a resumed or re-run command re-attaches to it instead of paying again;
a crash between the upload and the create is closed by looking the upload up in the list of
batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from harness.errors import FatalAPIError, InputError
from harness.files import read_text_checked, write_json_atomic
from harness.model.completion import ChatRequest, Completion
from harness.model.endpoint import completion_from
from harness.model.faults import is_fatal, is_retryable, short_message

TERMINAL = ("completed", "failed", "expired", "cancelled")
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class BatchSettings:
    """How a BatchQueue gathers, polls and retries."""

    poll_seconds: float = 30.0
    window: float = 0.25  # seconds without a new request before the gathered ones go out
    max_lines: int = 50_000  # the Batch API's limit per file
    max_attempts: int = 6


class BatchJournal:
    """The batches of one run folder (`batches.json`): what was uploaded and submitted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        if path.exists():
            text = read_text_checked(path, str(path), "batch journal", encoding="utf-8")
            try:
                data = json.loads(text)
                entries = data["batches"]
                assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
            except (ValueError, KeyError, TypeError, AssertionError):
                raise InputError(f"{path}: not a batch journal written by harness; move it away "
                                 f"to submit the batches again") from None
            self.entries = entries

    def save(self) -> None:
        """Write the journal atomically."""
        write_json_atomic(self.path, {"format_version": JOURNAL_VERSION, "batches": self.entries})

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Record a new entry (and save)."""
        self.entries.append(entry)
        self.save()
        return entry

    def latest(self, keys: Iterable[str], model: str) -> list[tuple[dict[str, Any], list[str]]]:
        """Recorded batches of `model` that hold some of `keys`, each key under the newest
        batch that holds it."""
        wanted = set(keys)
        out: list[tuple[dict[str, Any], list[str]]] = []
        for entry in reversed(self.entries):
            if entry.get("model") != model:
                continue
            mine = [k for k in entry.get("custom_ids", ()) if k in wanted]
            if mine:
                wanted.difference_update(mine)
                out.append((entry, mine))
        return out


async def _retrying(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`await fn(*args, **kwargs)`, retrying transient faults (a few times, with backoff)."""
    retrying = AsyncRetrying(retry=retry_if_exception(is_retryable), stop=stop_after_attempt(5),
                             wait=wait_exponential(multiplier=0.5, max=20), reraise=True)
    return await retrying(fn, *args, **kwargs)


class BatchQueue:
    """Batch-mode requests of one model: `complete` looks like an online call to a strategy."""

    def __init__(self, client: openai.AsyncOpenAI, model: str, journal: BatchJournal,
                 settings: BatchSettings, notify: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.model = model  # the config's model name (journal entries are per model)
        self.journal = journal
        self.settings = settings
        self.notify = notify or (lambda _m: None)
        self.submitted = 0  # batches created by this queue
        self._pending: dict[str, ChatRequest] = {}
        self._futures: dict[str, asyncio.Future[Completion]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def complete(self, request: ChatRequest, key: str) -> Completion:
        """The answer to `request` (`key`: its cache key, used as the custom_id)."""
        loop = asyncio.get_running_loop()
        if key not in self._futures:
            self._futures[key] = loop.create_future()
            self._pending[key] = request
            if self._timer is not None:
                self._timer.cancel()
            if len(self._pending) >= self.settings.max_lines:
                self._flush()
            else:
                self._timer = loop.call_later(self.settings.window, self._flush)
        return await asyncio.shield(self._futures[key])

    async def aclose(self) -> None:
        """Stop gathering and polling (batches already submitted go on at the provider)."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _flush(self) -> None:
        self._timer = None
        todo, self._pending = self._pending, {}
        if todo:
            task = asyncio.create_task(self._settle(todo))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _settle(self, todo: dict[str, ChatRequest]) -> None:
        try:
            results = await self._run(todo)
        except BaseException as exc:
            for key in todo:
                fut = self._futures.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else
                                      asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        for key, comp in results.items():
            fut = self._futures.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(comp)

    async def _run(self, todo: dict[str, ChatRequest]) -> dict[str, Completion]:
        """Every request of `todo` answered or failed for good, over as many rounds as needed."""
        results: dict[str, Completion] = {}
        tries = dict.fromkeys(todo, 0)
        remaining = dict(todo)
        jobs: list[tuple[dict[str, Any] | None, list[str]]] = \
            list(self.journal.latest(remaining, self.model))
        while remaining:
            covered = {k for _, keys in jobs for k in keys}
            fresh = [k for k in remaining if k not in covered]
            size = self.settings.max_lines
            jobs += [(None, fresh[i:i + size]) for i in range(0, len(fresh), size)]
            rounds = await asyncio.gather(*(self._one(e, keys, remaining) for e, keys in jobs))
            jobs = []
            for outcome in rounds:
                for key, (comp, retry) in outcome.items():
                    tries[key] += 1
                    if retry and tries[key] < self.settings.max_attempts:
                        continue
                    if retry:
                        comp = replace(comp, error_kind=f"retries_exhausted:{comp.error_kind}")
                    results[key] = comp
                    remaining.pop(key, None)
            if remaining:
                self.notify(f"batch: {len(remaining)} request(s) of {self.model} failed "
                            f"transiently and go again in a follow-up batch")
        return results

    async def _one(self, entry: dict[str, Any] | None, keys: list[str],
                   requests: Mapping[str, ChatRequest]
                   ) -> dict[str, tuple[Completion, bool]]:
        """Submit (or re-attach to) one batch, wait for it, and read its answers for `keys`."""
        try:
            if entry is None:
                entry = await self._submit(keys, requests)
            elif not entry.get("id"):
                await self._create(entry, look_up=True)
            else:
                self.notify(f"batch {entry['id']} ({self.model}): re-attached, "
                            f"{len(keys)} request(s) of this run in it")
            batch = await self._poll(entry)
            if batch is None:  # the provider no longer knows it: submit these again
                return await self._one(None, keys, requests)
            return await self._collect(batch, keys)
        except openai.APIError as exc:
            if is_fatal(exc):
                raise FatalAPIError(f"models.{self.model}: {short_message(exc)} — stopping the "
                                    f"run") from None
            comp = Completion(attempts=1, error_kind="batch_api", error=short_message(exc))
            return {k: (comp, is_retryable(exc)) for k in keys}

    async def _submit(self, keys: list[str], requests: Mapping[str, ChatRequest]
                      ) -> dict[str, Any]:
        lines = (json.dumps({"custom_id": k, "method": "POST", "url": "/v1/chat/completions",
                             "body": requests[k].params()}, ensure_ascii=False) + "\n"
                 for k in keys)
        data = "".join(lines).encode("utf-8")
        upload = await _retrying(self.client.files.create,
                                 file=("harness-batch.jsonl", data), purpose="batch")
        entry = self.journal.add({
            "model": self.model, "input_file_id": upload.id, "id": None, "status": "uploaded",
            "requests": len(keys), "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "custom_ids": keys})
        await self._create(entry, look_up=False)
        return entry

    async def _create(self, entry: dict[str, Any], *, look_up: bool) -> None:
        """batches.create for an uploaded file; with `look_up` (an upload recorded by an earlier
        process that may have created the batch before it stopped), only when none exists."""
        found = await self._find(entry["input_file_id"]) if look_up else None
        for attempt in range(1, 6):
            if found is not None:
                break
            try:
                found = await self.client.batches.create(
                    input_file_id=entry["input_file_id"], endpoint="/v1/chat/completions",
                    completion_window="24h", metadata={"harness_model": self.model})
                self.submitted += 1
            except openai.APIError as exc:
                if not is_retryable(exc) or attempt == 5:
                    raise
                # the batch may exist although its answer was lost: never create it twice
                await asyncio.sleep(min(20.0, 0.5 * 2 ** attempt))
                found = await self._find(entry["input_file_id"])
        assert found is not None  # the loop ends with a batch or raises
        entry.update(id=found.id, status=found.status)
        self.journal.save()
        self.notify(f"batch {found.id} ({self.model}): submitted {entry['requests']} request(s)")

    async def _find(self, input_file_id: str) -> Any:
        """The batch made from `input_file_id`, among the provider's newest 1,000 (or None)."""
        seen = 0
        async for batch in await _retrying(self.client.batches.list, limit=100):
            if batch.input_file_id == input_file_id:
                return batch
            seen += 1
            if seen >= 1000:
                break
        return None

    async def _poll(self, entry: dict[str, Any]) -> Any:
        """The batch once it has ended (None when the provider does not know it)."""
        last = None
        while True:
            try:
                batch = await _retrying(self.client.batches.retrieve, entry["id"])
            except openai.NotFoundError:
                return None
            counts = batch.request_counts
            shown = (batch.status, counts.completed if counts else 0, counts.failed if counts else 0)
            if shown != last:
                total = counts.total if counts else entry.get("requests", 0)
                self.notify(f"batch {batch.id} ({self.model}): {batch.status}, "
                            f"{shown[1]}/{total} done, {shown[2]} failed")
                last = shown
                if entry.get("status") != batch.status:
                    entry["status"] = batch.status
                    self.journal.save()
            if batch.status in TERMINAL:
                return batch
            await asyncio.sleep(self.settings.poll_seconds)

    async def _collect(self, batch: Any, keys: list[str]) -> dict[str, tuple[Completion, bool]]:
        if batch.status == "failed":
            errors = getattr(getattr(batch, "errors", None), "data", None) or []
            why = "; ".join(str(getattr(e, "message", e)) for e in errors[:3]) or "no reason given"
            comp = Completion(attempts=1, error_kind="batch_failed", batch_id=batch.id,
                              error=f"batch {batch.id} failed: {why}"[:300])
            return {k: (comp, False) for k in keys}
        lines: dict[str, dict[str, Any]] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            with contextlib.suppress(openai.NotFoundError):  # gone: those lines go again
                content = await _retrying(self.client.files.content, file_id)
                for text in content.text.splitlines():
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        line = json.loads(text)
                        lines[str(line["custom_id"])] = line
        return {k: line_completion(lines.get(k), batch.id, batch.status) for k in keys}


def line_completion(line: Mapping[str, Any] | None, batch_id: str, status: str
                    ) -> tuple[Completion, bool]:
    """One output or error line as a Completion, and whether it is worth a follow-up batch."""
    if line is None:
        return Completion(attempts=1, error_kind="batch_incomplete", batch_id=batch_id,
                          error=f"batch {batch_id} ended {status} without answering it"), True
    response = line.get("response")
    if not isinstance(response, Mapping):
        error = line.get("error") or {}
        code = str(error.get("code") or "error") if isinstance(error, Mapping) else "error"
        message = error.get("message") if isinstance(error, Mapping) else None
        kind = "batch_expired" if code == "batch_expired" else "batch_error"
        return Completion(attempts=1, error_kind=kind, batch_id=batch_id,
                          error=str(message or code)[:300]), True
    status_code = int(response.get("status_code") or 0)
    body = response.get("body")
    if status_code == 200 and isinstance(body, Mapping):
        from openai.types.chat import ChatCompletion

        try:
            parsed = ChatCompletion.model_validate(body)
        except ValueError:
            return Completion(attempts=1, error_kind="invalid_response", batch_id=batch_id,
                              error="the batch line's body is not a chat completion"), False
        return replace(completion_from(parsed, 0.0, 1), batch_id=batch_id), False
    err = body.get("error") if isinstance(body, Mapping) else None
    message = str(err.get("message") if isinstance(err, Mapping) else "") or f"HTTP {status_code}"
    retry = status_code in (408, 409, 429) or status_code >= 500
    return Completion(attempts=1, error_kind=status_kind(status_code, message), batch_id=batch_id,
                      error=f"HTTP {status_code}: {message}"[:300]), retry


def status_kind(status: int, message: str) -> str:
    """The failure kind of a batch line's HTTP status (as error_kind names online failures)."""
    if status == 400:
        low = message.lower()
        return "context_length" if "context length" in low or "context window" in low \
            else "bad_request"
    return {404: "not_found", 422: "unprocessable", 429: "rate_limited"}.get(
        status, f"http_{status}")
