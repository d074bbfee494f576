"""The OpenAI Batch API for the fake server: ``/v1/batches`` over the fake's ``/v1/files``.

A batch advances one step per ``GET /v1/batches/{id}`` (validating -> in_progress ->
finalizing -> its outcome), so a test controls time by polling. When it finishes, every line
is answered through the fake's responder, as a chat completion would be, and written to an
output file (2xx) and an error file (the rest), exactly in the Batch API's line format. Each
line answered is counted in ``FakeBatches.executed`` (by custom_id): a test can check that
nothing was paid for twice.
"""

from __future__ import annotations

import collections
import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fake_openai import FakeOpenAI, _Handler

BATCH_OUTCOMES = ("completed", "expired", "cancelled", "failed")
_BATCH_RE = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")

# custom_id, request body, how many times this custom_id was sent -> HTTP status for that line
LineStatus = Callable[[str, dict[str, Any], int], int]


class FakeBatches:
    """Batch state for one FakeOpenAI (``fake.batches``).

    Attributes:
        outcome: how every batch ends: "completed"; "expired" (only the first half of the lines
            is answered, the rest are ``batch_expired`` errors); "cancelled" (first half only,
            the rest absent); "failed" (input validation fails, nothing is answered). A list
            gives one outcome per batch created, the last one for every batch after.
        drop_creates: this many ``POST /v1/batches`` create the batch and then drop the
            connection without answering (a response lost on the way back).
        steps: ``GET`` polls a batch spends in_progress before finalizing.
        line_status: decides each line's HTTP status (default: 200 for all).
        batches: batch objects by id, as the API returns them.
        creates: ``POST /v1/batches`` requests received.
        executed: lines answered, by custom_id (over all batches).
    """

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.outcome: str | list[str] = "completed"
        self.drop_creates = 0
        self.steps = 2
        self.line_status: LineStatus = lambda _cid, _body, _nth: 200
        self.batches: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.executed: collections.Counter[str] = collections.Counter()
        self._polls: collections.Counter[str] = collections.Counter()
        self._lines: dict[str, list[dict[str, Any]]] = {}

    def route(self, h: _Handler, method: str, path: str, body: bytes) -> bool:
        """Serve a batch URL; False when `path` is not one."""
        if path == "/v1/batches":
            if method == "POST":
                self._create(h, body)
            else:
                with self.fake._lock:
                    data = [_public(b) for b in reversed(self.batches.values())]
                h._send_json(200, {"object": "list", "data": data, "has_more": False,
                                   "first_id": data[0]["id"] if data else None,
                                   "last_id": data[-1]["id"] if data else None})
            return True
        m = _BATCH_RE.match(path)
        if m is None:
            return False
        batch_id, cancel = m.group(1), bool(m.group(2))
        with self.fake._lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            h._send_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        elif cancel and method == "POST":
            with self.fake._lock:
                if batch["status"] in ("validating", "in_progress"):
                    batch["status"] = "cancelling"
            h._send_json(200, _public(batch))
        else:
            self._advance(batch_id)
            with self.fake._lock:
                h._send_json(200, _public(self.batches[batch_id]))
        return True

    def _create(self, h: _Handler, raw: bytes) -> None:
        with self.fake._lock:
            self.creates += 1
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("input_file_id"):
            h._send_error(400, "Missing required parameter: 'input_file_id'.",
                          param="input_file_id")
            return
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            h._send_error(400, "Invalid endpoint or completion_window.", param="endpoint")
            return
        with self.fake._lock:
            data = self.fake.files.get(body["input_file_id"])
        if data is None:
            h._send_error(404, f"No such File object: {body['input_file_id']}", param="id")
            return
        lines, problem = _parse_lines(data)
        with self.fake._lock:
            if isinstance(self.outcome, list):
                outcome = self.outcome.pop(0) if len(self.outcome) > 1 else self.outcome[0]
            else:
                outcome = self.outcome
        batch_id = self.fake._new_id("batch_", 24)
        batch = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "in_progress_at": None, "expires_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        batch["_outcome"] = outcome
        if problem or outcome == "failed":
            batch["status"] = "failed"
            batch["failed_at"] = int(time.time())
            batch["errors"] = {"object": "list", "data": [
                {"code": "invalid_request", "message": problem or "The batch input file is "
                 "invalid.", "param": None, "line": 1}]}
        with self.fake._lock:
            self.batches[batch_id] = batch
            self._lines[batch_id] = lines
            drop = self.drop_creates > 0
            self.drop_creates -= drop
        if drop:
            h._drop()
            return
        h._send_json(200, _public(batch))

    def _advance(self, batch_id: str) -> None:
        with self.fake._lock:
            batch = self.batches[batch_id]
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                return
            self._polls[batch_id] += 1
            polls = self._polls[batch_id]
            if batch["status"] == "cancelling":
                end = "cancelled"
            elif polls == 1:
                batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
                return
            elif polls <= self.steps:
                total = batch["request_counts"]["total"]
                batch["request_counts"]["completed"] = total * (polls - 1) // max(1, self.steps)
                return
            else:
                end = batch["_outcome"]
            lines = self._lines[batch_id]
        self._finish(batch, lines, end)

    def _finish(self, batch: dict[str, Any], lines: list[dict[str, Any]], end: str) -> None:
        fake = self.fake
        answered = lines if end == "completed" else lines[: len(lines) // 2]
        out, err = [], []
        for line in answered:
            cid, body = line["custom_id"], line["body"]
            with fake._lock:
                self.executed[cid] += 1
                nth = self.executed[cid]
            status = self.line_status(cid, body, nth)
            rid = fake._new_id("req_", 24)
            if status == 200:
                reply = fake.responder(body)
                if isinstance(reply, str):
                    from fake_openai import ChatReply

                    reply = ChatReply(content=reply)
                out.append({"id": fake._new_id("batch_req_", 24), "custom_id": cid,
                            "response": {"status_code": 200, "request_id": rid,
                                         "body": fake._completion(body, reply)},
                            "error": None})
            else:
                err.append({"id": fake._new_id("batch_req_", 24), "custom_id": cid,
                            "response": {"status_code": status, "request_id": rid, "body": {
                                "error": {"message": f"Error {status}", "type": "server_error",
                                          "param": None, "code": None}}},
                            "error": None})
        if end == "expired":
            err += [{"id": fake._new_id("batch_req_", 24), "custom_id": line["custom_id"],
                     "response": None, "error": {"code": "batch_expired", "message":
                                                 "This request could not be executed before "
                                                 "the completion window expired."}}
                    for line in lines[len(answered):]]
        with fake._lock:
            for name, rows in (("output_file_id", out), ("error_file_id", err)):
                if rows:
                    file_id = fake._new_id("file-", 22)
                    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    fake.files[file_id] = data
                    fake.file_objects[file_id] = {
                        "id": file_id, "object": "file", "bytes": len(data),
                        "created_at": int(time.time()), "filename": f"{batch['id']}_{name}.jsonl",
                        "purpose": "batch_output", "status": "processed"}
                    batch[name] = file_id
            batch["status"] = end
            batch[f"{end}_at"] = int(time.time())
            batch["request_counts"] = {"total": len(lines),
                                       "completed": len(out), "failed": len(err)}


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch object as the API shows it (without the fake's own bookkeeping)."""
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The input file's request lines, or the first problem the Batch API would report."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, text in enumerate(data.decode("utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            return [], f"line {n}: not JSON"
        cid = line.get("custom_id")
        if not isinstance(cid, str) or cid in seen:
            return [], f"line {n}: custom_id missing or repeated"
        if line.get("method") != "POST" or line.get("url") != "/v1/chat/completions":
            return [], f"line {n}: method must be POST and url /v1/chat/completions"
        if not isinstance(line.get("body"), dict):
            return [], f"line {n}: body must be an object"
        seen.add(cid)
        lines.append(line)
    return lines, None if lines else "the file has no requests"
