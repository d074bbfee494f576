"""Gate baselines: the committed file `--update-baseline` writes, or a summary.json / run folder
read as one (see `harness.gating.compare` for the format)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.gating.compare import METRICS, ArmData, Snapshot, snapshot_from_run
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
        return snapshot_from_run(path.parent)
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
    return Snapshot(source, data.get("name"), data.get("dataset_sha256"), arms)


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
    return Snapshot(source, meta.get("name"), (meta.get("dataset") or {}).get("sha256"), arms)


def baseline_document(s: Snapshot) -> dict[str, Any]:
    """The baseline file written by --update-baseline (see the module docstring)."""
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
    return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "name": s.name,
            "dataset_sha256": s.dataset_sha256, "examples": examples, "arms": arms, "source": src}


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
