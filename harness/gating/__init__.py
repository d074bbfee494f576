"""The regression gate: a run against a committed baseline, failing CI on a real drop.

`compare` holds the tests and the judgement (pure), `baseline` the baseline file, `markdown`
and `junit` the two outputs; `run_gate` ties them together.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.analysis.changes import pair_arms
from harness.config import GateConfig
from harness.errors import InputError
from harness.files import write_text_atomic
from harness.gating import junit
from harness.gating.baseline import (
    baseline_document,
    check_comparable,
    dump_baseline,
    load_baseline,
)
from harness.gating.compare import (
    DEFAULT_ALPHA,
    DEFAULT_MAX_DROP,
    FLOORS,
    MATCHES,
    ArmData,
    GateResult,
    GateRow,
    Snapshot,
    compare,
    snapshot_from_run,
)
from harness.gating.markdown import markdown


def _setting(value: float | None, cfg: GateConfig | None, key: str, default: float) -> float:
    v = value if value is not None else (getattr(cfg, key) if cfg is not None else None)
    return float(default if v is None else v)


def run_gate(run_dir: Path, baseline: Path, *, max_drop: float | None = None,
             alpha: float | None = None, update: bool = False,
             allow_different: bool = False, match: str = "nearest",
             hash_ids: bool = False) -> GateResult:
    """Gate a run folder against a baseline; write gate.md and junit.xml (and the baseline when
    `update`). max_drop / alpha default to the config's gate section, then 0.02 / 0.05.
    `match`: how arms are paired with the baseline's (compare.pair_arms: "nearest" follows a
    strategy through a k change, "exact" pairs by name only). `hash_ids` (with `update`): the
    baseline file keeps each example id's hash, never the id; a baseline that already holds
    hashed ids keeps them so.

    InputError (exit 2), before anything is written: a baseline of another config name, task
    type or label set (unless `allow_different`), an incomplete baseline run, `update` from an
    incomplete run or onto anything but a baseline file.
    """
    current = snapshot_from_run(run_dir)
    cfg = current.meta.gate if current.meta is not None else None
    md = _setting(max_drop, cfg, "max_drop", DEFAULT_MAX_DROP)
    al = _setting(alpha, cfg, "alpha", DEFAULT_ALPHA)
    if not 0.0 <= md <= 1.0:
        raise InputError(f"--max-drop: must be within [0, 1] (a fraction: 0.02 = 2 points), got {md:g}")
    if not 0.0 < al < 1.0:
        raise InputError(f"--alpha: must be within (0, 1), got {al:g}")
    if match not in MATCHES:
        raise InputError(f"--match: one of {', '.join(MATCHES)}, got {match!r}")
    if hash_ids and not update:
        raise InputError("--hash-ids: only with --update-baseline (it says how the baseline "
                         "file is written)")
    if update and baseline.is_dir():
        raise InputError(f"--update-baseline: {baseline} is a folder; give a file path")
    if update and not current.complete:
        raise InputError(f"--update-baseline: {run_dir} is incomplete (status {current.status}); "
                         "finish it first")
    base = load_baseline(baseline) if (baseline.exists() or not update) else None
    if update and base is not None and base.kind != "baseline":
        raise InputError(f"--update-baseline: {baseline} is a run's "
                         f"{'summary.json' if base.kind == 'summary' else 'results'}, not a baseline "
                         "file; give the path of the baseline file to write")
    notes = check_comparable(base, current, allow_different=allow_different) if base else ()
    result = compare(base, current, max_drop=md, alpha=al, accept=update,
                     floors={k: getattr(cfg, k) if cfg else None for k in FLOORS.values()},
                     match=match)
    result = replace(result, notes=(*notes, *result.notes))
    if update:
        hashed = hash_ids or (base is not None and base.ids_hashed)
        write_text_atomic(baseline, dump_baseline(baseline_document(current, hash_ids=hashed)))
        result = replace(result, baseline_written=baseline)
    write_text_atomic(run_dir / "gate.md", markdown(result))
    junit.write(run_dir / "junit.xml", "harness gate", junit.gate_cases(result),
                properties={"baseline": str(baseline), "max_drop": f"{md:g}", "alpha": f"{al:g}"})
    return result


__all__ = ["ArmData", "GateResult", "GateRow", "Snapshot", "check_comparable", "compare",
           "load_baseline", "markdown", "pair_arms", "run_gate", "snapshot_from_run"]
