"""Gate baselines: the committed file `--update-baseline` writes, or a summary.json / run folder
read as one (see `harness.gating.compare` for the format)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.analysis.changes import context_from
from harness.errors import InputError
from harness.gating.compare import (
    HASHED_IDS,
    METRICS,
    ArmData,
    Snapshot,
    hash_id,
    snapshot_from_run,
)
from harness.strategies import arm_name

BASELINE_FORMAT = "harness-gate-baseline"
BASELINE_VERSION = 1
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _decode(codes: str, examples: Sequence[str], draws: int) -> dict[str, float]:
    if len(codes) != len(examples):
        raise ValueError("per-example string and examples differ in length")
    return {ex: _DIGITS.index(c) / draws for ex, c in zip(examples, codes, strict=True) if c != "-"}


def _encode(values: Mapping[str, float], examples: Sequence[str], draws: int) -> str:
    return "".join(_DIGITS[round(values[ex] * draws)] if ex in values else "-" for ex in examples)


def load_baseline(path: Path) -> Snapshot:
    """A gate baseline file, a summary.json, a run folder or a run's results.jsonl."""
    if path.is_dir():
        if not (path / "run.json").exists():
            raise InputError(f"baseline {path}: not a run folder (no run.json)")
        return snapshot_from_run(path)
    if not path.exists():
        raise InputError(f"baseline {path} not found (create it with --update-baseline)")
    if path.name.endswith(".jsonl"):
        return replace(snapshot_from_run(path.parent), source=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline {path}: unreadable ({exc})") from None
    try:
        if isinstance(data, dict) and data.get("format") == BASELINE_FORMAT:
            if data.get("version") != BASELINE_VERSION:
                raise InputError(f"baseline {path}: unsupported version {data.get('version')!r}")
            return _from_baseline_file(data, str(path))
        if isinstance(data, dict) and isinstance(data.get("arms"), list) and "meta" in data:
            return _from_summary(data, str(path))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"baseline {path}: malformed ({exc!r})") from None
    raise InputError(f"baseline {path}: not a gate baseline, summary.json or run folder")


def _from_baseline_file(data: Mapping[str, Any], source: str) -> Snapshot:
    examples = [str(e) for e in data["examples"]]
    arms = {}
    for a in data["arms"]:
        draws = int(a["draws"])
        per = None
        if all(isinstance(a.get(col), str) for col in METRICS.values()):
            per = {m: _decode(a[col], examples, draws) for m, col in METRICS.items()}
        values = {m: float(a[m]) for m in METRICS}
        arms[a["name"]] = ArmData(a["name"], a["strategy"], a["type"], int(a["k"]), int(a["n"]),
                                  draws, values, per)
    labels = data.get("labels")
    return Snapshot(source, data.get("name"), data.get("dataset_sha256"), arms,
                    task_type=data.get("task_type"),
                    labels=None if labels is None else tuple(str(x) for x in labels), kind="baseline",
                    context=context_from(data), ids_hashed=data.get("example_ids") == HASHED_IDS)


def _from_summary(data: Mapping[str, Any], source: str) -> Snapshot:
    arms = {}
    for a in data["arms"]:
        if not a.get("n") or a.get("accuracy") is None:
            continue
        draws = max(1, int(a.get("draws") or 1))
        name = arm_name(a["strategy"], int(a["k"]), a["type"])
        values = {m: float(a[m]) for m in METRICS if a.get(m) is not None}
        arms[name] = ArmData(name, a["strategy"], a["type"], int(a["k"]), int(a["n"]) // draws,
                             draws, values)
    meta = data.get("meta") or {}
    status = meta.get("status")
    complete = meta["complete"] if isinstance(meta.get("complete"), bool) else status in (None, "complete")
    labels = meta.get("labels")
    return Snapshot(source, meta.get("name"), (meta.get("dataset") or {}).get("sha256"), arms,
                    complete, status, task_type=meta.get("task_type"),
                    labels=None if labels is None else tuple(str(x) for x in labels), kind="summary")


def _labels_differ(base: Sequence[str], now: Sequence[str]) -> str:
    """How two label sets differ, in a few words (at most 5 labels named each way)."""
    def some(xs: set[str]) -> str:
        names = ", ".join(repr(x) for x in sorted(xs)[:5])
        return names + (f" and {len(xs) - 5} more" if len(xs) > 5 else "")

    only_base, only_now = set(base) - set(now), set(now) - set(base)
    parts = [f"only in the baseline: {some(only_base)}" if only_base else "",
             f"only in this run: {some(only_now)}" if only_now else ""]
    return "; ".join(p for p in parts if p)


def check_comparable(base: Snapshot, current: Snapshot, *, allow_different: bool = False
                     ) -> tuple[str, ...]:
    """Refuse a baseline the run cannot be gated against; the notes worth showing otherwise.

    An incomplete baseline run is always refused. A different config name, task type or label
    set is refused unless `allow_different` (then it is a note). What the baseline does not
    record (a baseline file of an older harness has no task type or label set; a summary.json
    no task type) is not checked, and said in a note. Refusals are InputErrors (exit 2).
    """
    if not base.complete:
        raise InputError(f"baseline {base.source} is an incomplete run (status {base.status}): it "
                         "covers part of the examples; gate against a complete run or a baseline file")
    differ, unknown = [], []
    if base.name is None:
        unknown.append("config name")
    elif base.name != current.name:
        differ.append(f"is config {base.name!r}, this run is {current.name!r}")
    if base.task_type is None:
        unknown.append("task type")
    elif base.task_type != current.task_type:
        differ.append(f"is task {base.task_type!r}, this run is {current.task_type!r}")
    if base.labels is None:
        unknown.append("label set")
    elif current.labels is not None and set(base.labels) != set(current.labels):
        differ.append(f"has another label set ({len(set(base.labels))} labels, this run "
                      f"{len(set(current.labels))}; {_labels_differ(base.labels, current.labels)})")
    if differ and not allow_different:
        raise InputError(f"baseline {base.source} " + "; it ".join(differ)
                         + "; pass --allow-different to compare anyway")
    notes = [f"compared anyway (--allow-different): the baseline {d}" for d in differ]
    if unknown:
        notes.append(f"the baseline does not record its {' or '.join(unknown)} (an older baseline "
                     "file or a summary.json): not checked against this run's; rewrite the "
                     "baseline with --update-baseline to check it")
    return tuple(notes)


def baseline_document(s: Snapshot, *, hash_ids: bool = False) -> dict[str, Any]:
    """The baseline file written by --update-baseline (see the module docstring); with
    `hash_ids`, each example id as its hash (compare.hash_id), never the id itself."""
    examples = list(s.meta.examples) if s.meta is not None else []
    arms = []
    for a in s.arms.values():
        entry: dict[str, Any] = {"name": a.name, "strategy": a.strategy, "type": a.type, "k": a.k,
                                 "n": a.n, "draws": a.draws, **{m: a.values[m] for m in METRICS}}
        if a.per_example is not None and a.draws < len(_DIGITS):
            entry.update({col: _encode(a.per_example[m], examples, a.draws) for m, col in METRICS.items()})
        arms.append(entry)
    m = s.meta
    src = {"run": s.name, "config_sha256": m.config_sha256 if m else None,
           "finished_at": m.finished_at if m else None,
           "harness_version": m.harness_version if m else None}
    ids = {"example_ids": HASHED_IDS} if hash_ids else {}
    return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "name": s.name,
            "task_type": s.task_type, "labels": None if s.labels is None else list(s.labels),
            "dataset_sha256": s.dataset_sha256, **ids,
            "examples": [hash_id(e) for e in examples] if hash_ids else examples,
            "arms": arms, "source": src,
            **s.context.to_dict()}


def dump_baseline(doc: Mapping[str, Any]) -> str:
    """The baseline as JSON text: one line per key and per arm, so diffs in review stay readable."""
    parts = []
    for key, value in doc.items():
        if key == "arms":
            arms = ",\n".join("    " + json.dumps(a, ensure_ascii=False) for a in value)
            parts.append(f'  "arms": [\n{arms}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"
