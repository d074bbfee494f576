"""Response cache (SQLite): the key covers everything that determines an answer, never the key."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from harness.errors import InputError
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


def open_cache(path: Path, ttl: float | None = None) -> ResponseCache:
    """The response cache at `path`, or an InputError saying why it cannot be used."""
    try:
        return ResponseCache(path, ttl=ttl)
    except (OSError, sqlite3.Error) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"response cache: cannot open {path}: {why}; set HARNESS_CACHE_DIR to "
                         "a writable folder or pass --no-cache") from None


class ResponseCache:
    """A small SQLite table of successful completions (WAL mode, safe across threads).

    With `ttl` (seconds), entries older than that are not served (they are replaced by the
    fresh answer when it comes back).
    """

    def __init__(self, path: Path, ttl: float | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl = ttl
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
        query = "SELECT completion FROM responses WHERE key = ?"
        args: list[object] = [key]
        if self.ttl is not None:
            query += " AND created >= julianday('now') - ?"
            args.append(self.ttl / 86400.0)
        with self._lock:
            row = self._db.execute(query, args).fetchone()
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

    def clear(self, *, model: str | None = None, older_than: float | None = None) -> int:
        """Delete entries (of one model id, older than `older_than` seconds); the number deleted."""
        query = "DELETE FROM responses WHERE 1=1"
        args: list[object] = []
        if model is not None:
            query += " AND model = ?"
            args.append(model)
        if older_than is not None:
            query += " AND created < julianday('now') - ?"
            args.append(older_than / 86400.0)
        with self._lock:
            n = self._db.execute(query, args).rowcount
            self._db.commit()
        return int(n)

    def stats(self) -> list[tuple[str, int, float, float]]:
        """(model id, entries, oldest, newest) with ages in seconds, per model id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT model, COUNT(*), (julianday('now') - MIN(created)) * 86400, "
                "(julianday('now') - MAX(created)) * 86400 FROM responses GROUP BY model "
                "ORDER BY model").fetchall()
        return [(str(m), int(n), float(old), float(new)) for m, n, old, new in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
