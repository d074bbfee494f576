"""Response cache (SQLite): the key covers everything that determines an answer, never the key."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
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

    New entries are written in batches: one transaction per `batch` answers or per
    `flush_every` seconds, whichever comes first, and whatever is pending at `flush()` / `close()`
    (the runner closes the cache however a run ends, Ctrl-C included). A pending entry is served
    by `get` like a stored one. A killed process loses at most the last second of cache entries,
    never a result: those are in the run folder.
    """

    def __init__(self, path: Path, ttl: float | None = None, *, batch: int = 256,
                 flush_every: float = 1.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl = ttl
        self.batch = batch
        self.flush_every = flush_every
        self._pending: dict[str, tuple[str, str]] = {}  # key -> (model, completion JSON)
        self._last_flush = time.monotonic()
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
            pending = self._pending.get(key)
            row = (pending[1],) if pending else self._db.execute(query, args).fetchone()
        if row is None:
            return None
        found = Completion.from_json(row[0])
        return Completion(**{**found.__dict__, "cached": True, "attempts": 0, "latency_ms": 0.0})

    def put(self, key: str, model: str, completion: Completion) -> None:
        """Store a completion; failed requests are never cached."""
        if completion.error_kind:
            return
        with self._lock:
            self._pending[key] = (model, completion.to_json())
            due = (len(self._pending) >= self.batch
                   or time.monotonic() - self._last_flush >= self.flush_every)
            if due:
                self._flush_locked()

    def flush(self) -> None:
        """Write every pending entry in one transaction."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            self._db.executemany(
                "INSERT OR REPLACE INTO responses (key, model, completion) VALUES (?, ?, ?)",
                [(k, m, c) for k, (m, c) in self._pending.items()])
            self._db.commit()
            self._pending.clear()
        self._last_flush = time.monotonic()

    def clear(self, *, model: str | None = None, older_than: float | None = None) -> int:
        """Delete entries (of one model id, older than `older_than` seconds); the number deleted."""
        self.flush()
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
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT model, COUNT(*), (julianday('now') - MIN(created)) * 86400, "
                "(julianday('now') - MAX(created)) * 86400 FROM responses GROUP BY model "
                "ORDER BY model").fetchall()
        return [(str(m), int(n), float(old), float(new)) for m, n, old, new in rows]

    def close(self) -> None:
        """Write what is pending, then close the database."""
        with self._lock:
            try:
                self._flush_locked()
            finally:
                self._db.close()
