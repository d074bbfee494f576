"""Durable per-example records: a JSONL file appended as examples finish, and the run's metadata.

Reports are rebuilt from these two files alone, without calling a model.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import MISSING, fields
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.files import write_json_atomic
from harness.running.migrations import READABLE_VERSIONS, RECORD_DEFAULTS
from harness.running.records import _RECORD_TYPES, Record, RunMeta
from harness.running.verify import check_scores

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


RECORD_FIELDS = tuple(f.name for f in fields(Record))
# the fields every stored record has (read_records refuses a line without one)
_REQUIRED = tuple(f.name for f in fields(Record)
                  if f.default is MISSING and f.default_factory is MISSING and f.name != "output")
_OPTIONAL = tuple(n for n in RECORD_FIELDS if n not in _REQUIRED)
# exact JSON types each checked field may hold (JSON gives no subclasses; bool is no int here)
_JSON_TYPES = {name: {*kinds, type(None)} for name, kinds in _RECORD_TYPES.items()}

RecordColumns = dict[str, list[Any]]


class _Refused(Exception):
    """The fast reader met something read_records must judge (and word) itself."""


def read_columns(run_dir: Path, *, check: bool = True) -> RecordColumns:
    """The records of a run as columns: RECORD_FIELDS -> one list each, rows in the order
    read_records returns them, values as `Record.from_dict` reads them (example ids as text,
    `calls` a tuple, `output` "" when absent, `lenient` False when absent, and what an older
    format version lacks filled as running.migrations fills it). Much faster and smaller than
    a list of Records for a large run.

    The lines are checked column by column; a file read_records would refuse is handed to it,
    so the error (naming the line) is exactly its own. With `check` (and a readable run.json),
    each record's `correct` is checked against its own prediction and expected value through
    the run's task (running.verify): a contradiction is an InputError naming the line and
    `harness report RUN --rescore`. read_records does not check: re-scoring reads through it.
    """
    path = run_dir / RESULTS
    if not path.exists():
        return {name: [] for name in RECORD_FIELDS}
    try:
        cols = _fast_columns(path)
    except (_Refused, ValueError, KeyError, TypeError, AttributeError):
        cols = record_columns(read_records(run_dir))  # raises the InputError naming the line
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if check and (run_dir / META).is_file():
        try:
            meta = read_meta(run_dir)
        except InputError:
            return cols  # the caller's own read_meta names the broken run.json
        check_scores(run_dir, cols, meta)
    return cols


def record_columns(records: Sequence[Record]) -> RecordColumns:
    """Records as columns (see read_columns)."""
    return {name: list(map(attrgetter(name), records)) for name in RECORD_FIELDS}


def _fast_columns(path: Path) -> RecordColumns:
    required = itemgetter(*_REQUIRED)
    defaults = {"calls": None, "output": None, "lenient": False, "replica": None,
                "batch_id": None, "shots": None, "vote_share": None,
                "sample_correct": None, "confidence": None, "logprobs": None,
                **RECORD_DEFAULTS}  # (an older version's line: as migrations.migrate_record)
    optional = [(n, defaults[n]) for n in _OPTIONAL]
    arm_i, ex_i = _REQUIRED.index("arm"), _REQUIRED.index("example_id")
    rows: list[tuple[Any, ...]] = []
    at: dict[tuple[Any, str], int] = {}  # (arm, example id) -> its last line's row
    loads = json.loads
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # partial last line from a kill: the example is simply redone
            if line == "\n":
                continue  # (a line of other white space is not JSON: read_records skips it)
            data = loads(line)
            if type(data) is not dict:
                raise _Refused
            row = (*required(data), *[data.get(n, d) for n, d in optional])
            at[(row[arm_i], str(row[ex_i]))] = len(rows)
            rows.append(row)
    names = (*_REQUIRED, *_OPTIONAL)
    if not rows:
        return {name: [] for name in RECORD_FIELDS}
    cols: RecordColumns = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    # every line is checked, also one a later line overwrites (read_records refuses it too)
    if set(map(type, cols["output"])) != {str}:
        cols["output"] = [o or "" for o in cols["output"]]
    for name, kinds in _JSON_TYPES.items():
        if set(map(type, cols[name])) - kinds:
            raise _Refused
    if not set(cols["format_version"]) <= READABLE_VERSIONS:
        raise _Refused
    calls = set(map(type, cols["calls"]))
    if calls - {type(None), list}:
        raise _Refused
    if len(at) < len(rows):  # an example written twice: the last write, in the first's place
        keep = list(at.values())
        cols = {n: [c[i] for i in keep] for n, c in cols.items()}
    if set(map(type, cols["example_id"])) != {str}:
        cols["example_id"] = list(map(str, cols["example_id"]))
    n = len(cols["calls"])
    cols["calls"] = [tuple(c or ()) for c in cols["calls"]] if list in calls else [()] * n
    return {name: cols[name] for name in RECORD_FIELDS}


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
