"""Plateau across prompt versions: every run appends one record per arm to a history file beside
its report folder; `harness history CONFIG` shows the trajectory and flags a plateau."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.running.records import RunMeta
from harness.strategies import arm_name

HISTORY = "history.jsonl"


def history_path(run_dir: Path) -> Path:
    """The history file for a run folder: beside it (reports/history.jsonl for default runs)."""
    return run_dir.resolve().parent / HISTORY


def append_history(run_dir: Path, summary: pd.DataFrame, meta: RunMeta) -> Path:
    """Append one record per arm of a finished run."""
    path = history_path(run_dir)
    stamp = meta.finished_at or datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for _, r in summary.iterrows():
        lines.append(json.dumps({
            "config": meta.name, "run_dir": str(run_dir.resolve()),
            "arm": arm_name(str(r["strategy"]), int(r["k"]), str(r["type"])),
            "strategy": r["strategy"], "k": int(r["k"]), "type": r["type"],
            "prompt_sha256": r["prompt_sha256"], "model": r["model_id"],
            "dataset_sha256": meta.dataset.sha256, "n": int(r["n"]),
            "accuracy": _num(r["accuracy"]), "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]),
            "timestamp": stamp,
        }))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
    return path


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def read_history(path: Path, config_name: str) -> list[dict[str, Any]]:
    """History records of one config, oldest first (unparseable lines are skipped)."""
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("config") == config_name:
                out.append(rec)
    return out


@dataclass(frozen=True)
class ArmHistory:
    """One arm's trajectory over prompt versions."""

    arm: str
    versions: tuple[dict[str, Any], ...]  # latest record per prompt version, in order of first use
    plateaued: bool
    reason: str


def trajectory(records: Sequence[Mapping[str, Any]], *, window: int = 3) -> list[ArmHistory]:
    """Per arm: the latest result of each prompt version, and whether the last `window` versions
    all lie inside the 95% interval of the best version (a plateau across prompt versions)."""
    by_arm: dict[str, dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        if rec.get("accuracy") is None:
            continue
        versions = by_arm.setdefault(rec["arm"], {})
        versions.pop(rec["prompt_sha256"], None)  # re-insert: order follows the latest use
        versions[rec["prompt_sha256"]] = rec
    out = []
    for arm, versions in by_arm.items():
        vs = tuple(dict(v) for v in versions.values())
        if len(vs) < window:
            out.append(ArmHistory(arm, vs, False,
                                  f"{len(vs)} prompt version(s); a plateau needs {window}"))
            continue
        best = max(vs, key=lambda v: v["accuracy"])
        last = vs[-window:]
        inside = all(best["ci_low"] <= v["accuracy"] <= best["ci_high"] for v in last)
        accs = ", ".join(f"{v['accuracy']:.3f}" for v in last)
        reason = (f"the last {window} versions ({accs}) "
                  f"{'all lie' if inside else 'do not all lie'} inside the best version's interval "
                  f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}] (prompt {best['prompt_sha256']})")
        out.append(ArmHistory(arm, vs, inside, reason))
    return out
