"""Response cache (SQLite): the key covers everything that determines an answer, never the key."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from harness.model.completion import ChatRequest, Completion


def cache_key(base_url: str, request: ChatRequest) -> str:
    """Hash of endpoint, model, messages, every sampling parameter, response format, seed.

    With temperature > 0 the sample index is part of the key, so repeated draws are real samples;
    at temperature 0 repeats share one entry.
    """
    blob = {
        "base_url": base_url.rstrip("/"),
        "params": request.params(),
        "sample": request.sample if request.temperature > 0 else 0,
    }
    text = json.dumps(blob, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """A small SQLite table of successful completions (WAL mode, safe across threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "completion TEXT NOT NULL, created REAL DEFAULT (julianday('now')))"
        )
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        """The cached completion for `key`, marked as a cache hit."""
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        found = Completion.from_json(row[0])
        return Completion(**{**found.__dict__, "cached": True, "attempts": 0, "latency_ms": 0.0})

    def put(self, key: str, model: str, completion: Completion) -> None:
        """Store a completion; failed requests are never cached."""
        if completion.error_kind:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, completion) VALUES (?, ?, ?)",
                (key, model, completion.to_json()),
            )
            self._db.commit()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
