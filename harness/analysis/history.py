"""History: *how has a score moved across runs and prompt versions?* Plateau across prompt
versions: every complete run appends one record per arm to the history file; `harness history
CONFIG` shows the trajectory and flags a plateau.

The history file is one place for every run, wherever its folder is: `$HARNESS_HISTORY` if set,
else `reports/history.jsonl` under the working directory (like the fine-tune registry,
`$HARNESS_REGISTRY` or `reports/finetunes.json`). `harness run --history FILE` and
`harness history --history FILE` name another one. One JSON line per arm of a run; a run is
identified by its config name, its folder (resolved path) and its `started_at`, so appending a
run that is already there (a finished folder run again) adds nothing.

Each line records the arm's `model_id` and, when the run was started inside a git work tree,
the `branch` and `commit` (history_git; None otherwise), under `"version": 2`. A line with no
`version` (written before) reads as version 1: its model id is its `model` field where it has
one, its branch and commit None. `harness history` shows one trajectory per arm and model,
`--branch NAME` keeps one branch's runs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from harness.analysis.history_git import GitState, git_state
from harness.errors import InputError
from harness.running.records import RunMeta
from harness.strategies import arm_name

if TYPE_CHECKING:  # pandas only for the types: `harness history` reads JSON lines
    import pandas as pd

HISTORY = "history.jsonl"
HISTORY_ENV = "HARNESS_HISTORY"
HISTORY_FORMAT = 2  # the `version` of the lines append_history writes (none: version 1)


def history_path(explicit: str | Path | None = None) -> Path:
    """The history file: `explicit` if given, else $HARNESS_HISTORY, else reports/history.jsonl
    under the working directory."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(HISTORY_ENV)
    return Path(env).expanduser() if env else Path("reports") / HISTORY


def _file(path: Path) -> Path:
    if path.is_dir():
        raise InputError(f"history file {path} is a folder; name a file (--history FILE or "
                         f"${HISTORY_ENV})")
    return path


def _run_id(config: Any, run_dir: Any, started_at: Any) -> tuple[str, str, str | None]:
    return str(config), str(run_dir), None if started_at is None else str(started_at)


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every line of the history file that is a JSON object, others skipped: what appending
    needs to know which runs are there (reading for a report checks each line: read_lines)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield rec


# the fields a history record must have, with the JSON types each may hold (every harness
# version wrote them), and the optional ones the readers use
_TEXT, _INT, _NUMBER = (str,), (int,), (int, float)
_REQUIRED: dict[str, tuple[type, ...]] = {
    "config": _TEXT, "run_dir": _TEXT, "arm": _TEXT, "prompt_sha256": _TEXT, "n": _INT,
    "accuracy": (*_NUMBER, type(None)), "ci_low": (*_NUMBER, type(None)),
    "ci_high": (*_NUMBER, type(None)), "timestamp": _TEXT}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "started_at": (str, type(None)), "k": _INT, "strategy": _TEXT, "type": _TEXT,
    "variant": _TEXT, "selection": _TEXT, "samples": _INT, "version": _INT,
    "model_id": (str, type(None)), "branch": (str, type(None)), "commit": (str, type(None))}


def record_problem(rec: Any) -> str | None:
    """Why one parsed history line is not a history record (None when it is one)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    missing = [name for name in _REQUIRED if name not in rec]
    if missing:
        return f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
    for name, kinds in (*_REQUIRED.items(), *_OPTIONAL.items()):
        value = rec.get(name)
        if name in rec and (not isinstance(value, kinds) or
                            (isinstance(value, bool) and bool not in kinds)):
            wanted = " or ".join("null" if k is type(None) else _JSON_NAMES[k] for k in kinds)
            return f"field {name!r} is {json.dumps(value)[:40]}, not {wanted}"
    if rec["accuracy"] is not None and (rec["ci_low"] is None or rec["ci_high"] is None):
        return "an accuracy without its interval (ci_low, ci_high)"
    return None


_JSON_NAMES = {str: "a string", int: "an integer", float: "a number"}


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every record of the history file, oldest first, and the warnings worth showing.

    A line that is not a history record (not JSON, not an object, a field missing or of the
    wrong type) is an InputError naming the line, so nothing is left out silently. Only a last
    line with no newline at its end that is not JSON (a write cut short by a crash) is skipped,
    with a warning.
    """
    if not _file(path).exists():
        return [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as exc:
        raise InputError(f"history file {path}: cannot read: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    fix = ("fix or delete the line (each line is one arm of one past run; see --history FILE "
           f"or ${HISTORY_ENV})")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not line.endswith("\n"):
                warnings.append(f"history file {path} line {number}: skipped, cut short (not "
                                "JSON, no newline at its end: a write interrupted by a crash); "
                                "the next run's append drops it")
                continue
            raise InputError(f"{path} line {number}: not JSON ({exc.msg}); {fix}") from None
        why = record_problem(rec)
        if why is not None:
            raise InputError(f"{path} line {number}: not a history record ({why}); {fix}")
        if rec.get("version", 1) > HISTORY_FORMAT:
            warnings.append(f"history file {path} line {number}: written by a newer harness "
                            f"(format version {rec['version']}; this one reads up to "
                            f"{HISTORY_FORMAT}): read as version {HISTORY_FORMAT}")
        records.append(_upgraded(rec))
    return records, warnings


def _upgraded(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as the current format has it: a version-1 line (no `version`) gets version 1,
    its `model` field as its model id (version 1 wrote the model id there), branch and commit
    None. A current line comes back as it is."""
    if all(name in rec for name in ("version", "model_id", "branch", "commit")):
        return rec
    legacy_model = rec.get("model") if isinstance(rec.get("model"), str) else None
    return {**rec, "version": rec.get("version", 1), "model_id": rec.get("model_id", legacy_model),
            "branch": rec.get("branch"), "commit": rec.get("commit")}


def _recorded_runs(path: Path) -> set[tuple[str, str, str | None]]:
    """The runs the history file holds, as (config, run folder, started_at); lines written
    before records carried started_at count as (config, run folder, None)."""
    return {_run_id(rec["config"], rec["run_dir"], rec.get("started_at"))
            for rec in _entries(path) if "config" in rec and "run_dir" in rec}


def append_history(history: str | Path | None, run_dir: Path, summary: pd.DataFrame,
                   meta: RunMeta, log: Callable[[str], None] | None = None,
                   git: GitState | None = None) -> bool:
    """Append one record per arm of a finished run to the history file (`history_path(history)`:
    `history`, else $HARNESS_HISTORY, else reports/history.jsonl). True when written; False
    when the file already holds this run (same config, run folder and started_at), which it
    then leaves as it is. Each record carries the arm's model id and `git`'s branch and commit
    (default: those of the working directory's work tree, history_git.git_state).

    Lines are only ever appended (flushed and fsynced), so existing lines are never lost. A
    last line with no newline at its end is completed with one when it is a JSON object (a
    hand edit), and dropped when it is not JSON (a write cut short by a crash: kept, it would
    make the file unreadable), with a warning through `log`.
    """
    path = _file(history_path(history))
    folder = str(run_dir.resolve())
    if path.exists():
        seen = _recorded_runs(path)
        if (_run_id(meta.name, folder, meta.started_at) in seen
                or _run_id(meta.name, folder, None) in seen):
            return False
    stamp = meta.finished_at or datetime.now(UTC).isoformat(timespec="seconds")
    where = git if git is not None else git_state()
    lines = []
    for _, r in summary.iterrows():
        lines.append(json.dumps({
            "version": HISTORY_FORMAT, "config": meta.name, "run_dir": folder,
            "started_at": meta.started_at,
            "arm": arm_name(str(r["strategy"]), int(r["k"]), str(r["type"])),
            "strategy": r["strategy"], "k": int(r["k"]), "type": r["type"],
            "prompt_sha256": r["prompt_sha256"], "model_id": str(r["model_id"]),
            "model": str(r["model_id"]),  # version 1's name for the model id, kept for readers
            "branch": where.branch, "commit": where.commit,
            "dataset_sha256": meta.dataset.sha256, "n": int(r["n"]),
            "accuracy": _num(r["accuracy"]), "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]),
            "timestamp": stamp, **_dimensions(r),
        }))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                _end_last_line(f, path, log)
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    return True


def _end_last_line(f: BinaryIO, path: Path, log: Callable[[str], None] | None) -> None:
    """End the file's last line (it has no newline): a JSON object gets its newline; a line
    that is not JSON (cut short by a crash) is cut off."""
    f.seek(0)
    data = f.read()
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:  # (a UnicodeDecodeError is one)
        f.truncate(start)
        f.seek(0, os.SEEK_END)
        if log is not None:
            log(f"warning: history file {path}: dropped its last line, cut short by a crash "
                f"({len(data) - start} bytes: {data[start:start + 40]!r})")
        return
    f.seek(0, os.SEEK_END)
    f.write(b"\n")


def _num(x: Any) -> float | None:
    try:
        x = float(x)
    except TypeError:  # pandas' NA
        return None
    return None if math.isnan(x) else x


def _dimensions(r: pd.Series) -> dict[str, Any]:
    """Where an arm sits in the prompt design space: its variant, selection and samples."""
    out: dict[str, Any] = {}
    for name in ("variant", "selection"):
        if isinstance(r.get(name), str):
            out[name] = r[name]
    samples = r.get("samples")
    count = _num(samples) if samples is not None else None
    if count is not None and count > 1:
        out["samples"] = int(count)
    return out


def describe_dimensions(rec: Mapping[str, Any]) -> str:
    """`variant cot, selection similar/tfidf, 5 samples` for a history record ("" if none)."""
    parts = [f"variant {rec['variant']}" if rec.get("variant") else "",
             f"selection {rec['selection']}" if rec.get("selection") else "",
             f"{rec['samples']} samples" if rec.get("samples") else ""]
    return ", ".join(p for p in parts if p)


def tried_across(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, float, int]]:
    """The prompt design space over every recorded run: (dimension, setting, best arm, its
    accuracy, runs that tried the setting) for each k, selection, variant and voting setting.
    Give it one model's records (by_model): settings are compared on the same model."""
    best: dict[tuple[str, str], tuple[str, float, set[str]]] = {}
    for rec in records:
        acc = rec.get("accuracy")
        if acc is None or rec.get("type") == "fine_tuned":
            continue
        keys = [("k", str(rec.get("k", 0)))]
        keys += [(d, str(rec[d])) for d in ("selection", "variant") if rec.get(d)]
        keys += [("voting", f"{rec['samples']} samples")] if rec.get("samples") else []
        for key in keys:
            arm, top, runs = best.get(key, ("", -1.0, set()))
            runs = runs | {str(rec.get("run_dir"))}
            best[key] = (rec["arm"], float(acc), runs) if acc > top else (arm, top, runs)
    order = {"k": 0, "selection": 1, "variant": 2, "voting": 3}
    rows = sorted(best.items(), key=lambda kv: (order[kv[0][0]], kv[0][0] == "k" and int(kv[0][1]),
                                                kv[0][1]))
    return [(d, setting, arm, acc, len(runs)) for (d, setting), (arm, acc, runs) in rows]


def read_history_checked(path: Path, config_name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(history records of one config, oldest first; warnings to show): see read_lines (an
    InputError names a line that is not a history record)."""
    records, warnings = read_lines(path)
    return [rec for rec in records if rec["config"] == config_name], warnings


def read_history(path: Path, config_name: str) -> list[dict[str, Any]]:
    """History records of one config, oldest first (read_history_checked without its
    warnings)."""
    return read_history_checked(path, config_name)[0]


def on_branch(records: Sequence[Mapping[str, Any]], branch: str | None) -> list[Mapping[str, Any]]:
    """The records run on `branch` (all of them when None); an InputError naming the branches
    the records were run on when none was run on `branch`."""
    if branch is None:
        return list(records)
    kept = [rec for rec in records if rec.get("branch") == branch]
    if not kept:
        known = sorted({str(rec["branch"]) for rec in records if rec.get("branch")})
        raise InputError(f"--branch {branch}: no history entry was run on that branch; "
                         + (f"the branches recorded: {', '.join(known)}" if known else
                            "none records a branch (runs started outside a git work tree, or "
                            "appended before history recorded branches)"))
    return kept


def by_model(records: Sequence[Mapping[str, Any]]) -> dict[str | None, list[Mapping[str, Any]]]:
    """The records per model id (None: not recorded), models in order of first appearance."""
    out: dict[str | None, list[Mapping[str, Any]]] = {}
    for rec in chronological(records):
        out.setdefault(rec.get("model_id"), []).append(rec)
    return out


def describe_where(rec: Mapping[str, Any]) -> str:
    """`main@1a2b3c4` for a record run on branch main at that commit; "" when neither is known."""
    branch, commit = rec.get("branch") or "", rec.get("commit") or ""
    return f"{branch}@{commit[:7]}" if commit else branch


def _when(stamp: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def chronological(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records in timestamp order (a stable sort: records of one time keep the file's
    order); in the file's order when a timestamp is not an ISO time."""
    stamps = [_when(rec.get("timestamp")) for rec in records]
    if any(stamp is None for stamp in stamps):
        return list(records)
    order = sorted(range(len(records)), key=lambda i: (stamps[i], i))
    return [records[i] for i in order]


@dataclass(frozen=True)
class ArmHistory:
    """One arm's trajectory over prompt versions on one model."""

    arm: str
    versions: tuple[dict[str, Any], ...]  # latest record per prompt version, in order of first use
    plateaued: bool
    reason: str
    model_id: str | None = None  # None: lines written before history recorded the model


def trajectory(records: Sequence[Mapping[str, Any]], *, window: int = 3) -> list[ArmHistory]:
    """Per arm and model (in order of first appearance): its prompt versions in order of first
    appearance (timestamp order), so v1 is the prompt run first, each with its latest result;
    and whether the last `window` versions all lie inside the 95% interval of the best version
    (a plateau across prompt versions, judged per model).

    A version run again on the same model shows its latest result, with that run's interval:
    the re-run measures the prompt as it stands now, and a mean would pool runs over the same
    examples as if they were independent (an interval narrower than the evidence). A version
    run on another model is in that model's trajectory, never in this one's.
    """
    groups: dict[tuple[str, str | None], dict[str, Mapping[str, Any]]] = {}
    for rec in chronological(records):
        if rec.get("accuracy") is None:
            continue
        # a dict keeps a key where it was first put: the order of first use, the latest value
        groups.setdefault((rec["arm"], rec.get("model_id")), {})[rec["prompt_sha256"]] = rec
    out = []
    for (arm, model_id), versions in groups.items():
        vs = tuple(dict(v) for v in versions.values())
        if len(vs) < window:
            out.append(ArmHistory(arm, vs, False,
                                  f"{len(vs)} prompt version(s); a plateau needs {window}",
                                  model_id))
            continue
        best = max(vs, key=lambda v: v["accuracy"])
        last = vs[-window:]
        inside = all(best["ci_low"] <= v["accuracy"] <= best["ci_high"] for v in last)
        accs = ", ".join(f"{v['accuracy']:.3f}" for v in last)
        reason = (f"the last {window} versions ({accs}) "
                  f"{'all lie' if inside else 'do not all lie'} inside the best version's interval "
                  f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}] (prompt {best['prompt_sha256']})")
        out.append(ArmHistory(arm, vs, inside, reason, model_id))
    return out
