"""Durable per-example records: a JSONL file appended as examples finish, and the run's metadata.

Reports are rebuilt from these two files alone, without calling a model.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import InputError

RESULTS = "results.jsonl"
META = "run.json"


def record_key(record: dict[str, Any]) -> tuple[str, str]:
    """Identity of a record: (arm key, example id)."""
    return str(record["arm"]), str(record["example_id"])


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of a run; a line cut off by a crash is ignored."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    records: dict[tuple[str, str], dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # partial last line from a kill: the example is simply redone
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record_key(rec)] = rec  # last write wins
    return list(records.values())


class ResultStore:
    """Appends records durably: flush per record, fsync at most every `sync_every` seconds."""

    def __init__(self, run_dir: Path, sync_every: float = 0.5) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / RESULTS
        self._truncate_partial_line()
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._sync_every = sync_every
        self._last_sync = time.monotonic()

    def _truncate_partial_line(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line; it survives a kill of this process once this returns."""
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        now = time.monotonic()
        if now - self._last_sync >= self._sync_every:
            os.fsync(self._f.fileno())
            self._last_sync = now

    def close(self) -> None:
        """fsync and close."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, then rename over `path`."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temp file in the same folder, fsync it, then rename over `path`.

    Without the fsync a crash soon after the rename can leave an empty file behind on some
    file systems, instead of the old or the new contents.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's metadata (InputError when the folder holds no run)."""
    path = run_dir / META
    if not path.exists():
        raise InputError(f"{run_dir}: not a run folder (no {META})")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable run metadata ({exc})") from None


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a text file (for small helpers and tests)."""
    with open(path, encoding="utf-8") as f:
        yield from f
