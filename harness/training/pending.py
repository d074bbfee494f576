"""OpenAI fine-tuning jobs that have not finished yet, and polling helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from harness.files import write_json_atomic
from harness.paths import cache_dir

Log = Callable[[str], None]
TERMINAL = {"succeeded", "failed", "cancelled"}


def pending_jobs_path() -> Path:
    """Where OpenAI jobs that have not finished yet are remembered (key -> job id)."""
    return cache_dir() / "pending_jobs.json"


def load_pending() -> dict[str, str]:
    """Pending job ids by fine-tune key."""
    path = pending_jobs_path()
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def save_pending(pending: dict[str, str]) -> None:
    """Persist pending job ids."""
    write_json_atomic(pending_jobs_path(), pending)


def backoff_intervals(start: float, cap: float = 60.0) -> Iterator[float]:
    """Polling intervals: start, growing by half each time, up to cap."""
    delay = start
    while True:
        yield delay
        delay = min(cap, delay * 1.5)


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")
