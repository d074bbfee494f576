"""Durable per-example records: a JSONL file appended as examples finish, and the run's metadata.

Reports are rebuilt from these two files alone, without calling a model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness.errors import InputError
from harness.files import write_json_atomic
from harness.running.records import Record, RunMeta

RESULTS = "results.jsonl"
META = "run.json"


def read_records(run_dir: Path) -> list[Record]:
    """All complete records of a run; a line cut off by a crash is ignored."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    records: dict[tuple[str, str], Record] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # partial last line from a kill: the example is simply redone
            try:
                rec = Record.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            records[rec.key] = rec  # last write wins
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

    def append(self, record: Record) -> None:
        """Write one record as a line; it survives a kill of this process once this returns."""
        self._f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
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


def read_meta(run_dir: Path) -> RunMeta:
    """The run's metadata (InputError when the folder holds no run or an unreadable one)."""
    path = run_dir / META
    if not path.exists():
        raise InputError(f"{run_dir}: not a run folder (no {META})")
    try:
        return RunMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: unreadable run metadata ({exc})") from None


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    """Write run.json atomically."""
    write_json_atomic(run_dir / META, meta.to_dict())
