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
    """All records of a run; the last write of an (arm, example) wins.

    Only a last line cut off by a crash (no newline at its end) is ignored: that example is
    simply redone. Any other line that is not a record is an InputError naming the line, so
    nothing recorded is silently dropped.
    """
    path = run_dir / RESULTS
    if not path.exists():
        return []
    records: dict[tuple[str, str], Record] = {}
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break  # partial last line from a kill: the example is simply redone
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise TypeError(f"a JSON {type(data).__name__}, not an object")
                rec = Record.from_dict(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number}: not JSON ({exc.msg}); fix or delete "
                                 "the line (a deleted record is requested again on resume)") from None
            except (KeyError, TypeError, ValueError) as exc:
                why = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise InputError(f"{path} line {number}: not a result record ({why}); fix or "
                                 "delete the line (a deleted record is requested again on "
                                 "resume)") from None
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
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        return RunMeta.from_dict(data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: unreadable run metadata ({exc})") from None


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    """Write run.json atomically."""
    write_json_atomic(run_dir / META, meta.to_dict())
