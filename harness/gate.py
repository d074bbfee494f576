"""The regression gate: compare a run with a committed baseline; fail CI on a real drop.

``harness gate RUN_DIR --baseline FILE [--max-drop 0.02] [--alpha 0.05] [--update-baseline]``

Per arm (``zero-shot``, ``few-shot@k=4``...) and metric (accuracy, schema compliance): baseline,
now, change with a 95% interval, status. Exit 1 when a metric fell by more than ``max_drop``
(0.02 = 2 points) **and** significantly (Holm-adjusted over all the gate's tests, p < ``alpha``,
so more arms do not mean more false alarms); when a metric is below a floor (``gate:
{min_accuracy, min_schema_compliance}`` in the config, copied into run.json; point estimate,
every arm); when a baseline arm is missing; or when the run is incomplete. ``max_drop`` and
``alpha`` come from the command line, else the config's ``gate`` section, else 0.02 / 0.05.

Paired when possible: McNemar's exact test on per-example correctness (majority over few-shot
draws) and a paired bootstrap interval, if the baseline has per-example results for the same
eval set (dataset sha256 and example ids). Otherwise (e.g. a plain ``summary.json``): a pooled
two-proportion z-test and a Newcombe interval on the arm's number of examples.

What to commit: the file ``--update-baseline`` writes (say ``baselines/NAME.json``), a few kB::

    {"format": "harness-gate-baseline", "version": 1, "name": ..., "dataset_sha256": ...,
     "examples": ["id1", "id2", ...],
     "arms": [{"name": "few-shot@k=4", "strategy": ..., "type": ..., "k": 4, "n": 48, "draws": 2,
               "accuracy": 0.91, "schema_compliance": 1.0, "correct": "2120...", "schema_valid": "2222..."}],
     "source": {"run": ..., "config_sha256": ..., "finished_at": ..., "harness_version": ...}}

``correct`` / ``schema_valid``: one base-36 digit per example (``examples`` order) counting the
draws that were correct / schema-valid (``-``: no result); no inputs or outputs. ``--baseline``
also takes a run's ``summary.json`` (unpaired), a run folder or its ``results.jsonl`` (paired).
``--update-baseline`` shows the table but accepts the changes (floors and completeness still
count), creates the file if missing, and refuses an incomplete run.

``run_gate`` writes ``RUN_DIR/gate.md`` (Markdown for a pull-request comment) and
``RUN_DIR/junit.xml`` (a test case per arm and metric). Bad input raises InputError (exit 2).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from harness import junit, stats
from harness.errors import InputError
from harness.store import read_meta, read_records, write_text_atomic

BASELINE_FORMAT = "harness-gate-baseline"
BASELINE_VERSION = 1
METRICS = {"accuracy": "correct", "schema_compliance": "schema_valid"}
FLOORS = {"accuracy": "min_accuracy", "schema_compliance": "min_schema_compliance"}
DEFAULT_MAX_DROP, DEFAULT_ALPHA = 0.02, 0.05
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class ArmData:
    """One arm's gated figures; per-example values (mean over draws) when known."""

    name: str
    strategy: str
    type: str
    k: int
    n: int  # examples with a result
    draws: int
    values: Mapping[str, float]  # metric -> pooled value
    per_example: Mapping[str, Mapping[str, float]] | None = None  # metric -> example id -> mean


@dataclass(frozen=True)
class Snapshot:
    """What the gate knows about one run (current) or baseline."""

    source: str
    name: str | None
    dataset_sha256: str | None
    arms: Mapping[str, ArmData]
    complete: bool = True
    status: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRow:
    """One arm and metric."""

    arm: str
    metric: str
    baseline: float | None
    now: float | None
    change: stats.Interval | None
    p_value: float | None
    p_adjusted: float | None
    test: str | None  # "McNemar" | "z-test" | None
    floor: float | None
    failures: tuple[str, ...]
    status: str

    @property
    def passed(self) -> bool:
        """True when nothing failed."""
        return not self.failures


@dataclass(frozen=True)
class GateResult:
    """The gate's rows, run-level problems and settings."""

    rows: tuple[GateRow, ...]
    problems: tuple[str, ...]  # run-level failures (incomplete run)
    notes: tuple[str, ...]  # things worth knowing that do not fail the gate
    max_drop: float
    alpha: float
    run_name: str | None = None
    baseline_source: str | None = None
    baseline_written: Path | None = None

    @property
    def passed(self) -> bool:
        """True when no row failed and the run has no problem."""
        return not self.problems and all(r.passed for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed."""
        return 0 if self.passed else 1


def arm_name(strategy: str, k: int, kind: str) -> str:
    """'few-shot@k=4' for few-shot arms, else the strategy name (as in the reports)."""
    return f"{strategy}@k={k}" if kind == "few_shot" else strategy


def snapshot_from_run(run_dir: Path) -> Snapshot:
    """Per-arm figures of a run folder, with per-example values, from run.json + results.jsonl."""
    meta = read_meta(run_dir)
    records = read_records(run_dir)
    if not records:
        raise InputError(f"{run_dir}: the run holds no results yet")
    try:
        kinds: dict[tuple[str, int], str] = {}
        draws: Counter[tuple[str, int]] = Counter()
        for a in meta["arms"]:
            kinds[(a["strategy"], int(a["k"]))] = a["type"]
            draws[(a["strategy"], int(a["k"]))] += 1
        by_arm: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_arm[(r["strategy"], int(r["k"]))].append(r)
        arms = {}
        for (strategy, k), kind in kinds.items():
            if not (recs := by_arm.get((strategy, k))):
                continue
            per = {m: _per_example(recs, col) for m, col in METRICS.items()}
            values = {m: sum(bool(r[col]) for r in recs) / len(recs) for m, col in METRICS.items()}
            name = arm_name(strategy, k, kind)
            arms[name] = ArmData(name, strategy, kind, k, len(per["accuracy"]), draws[(strategy, k)],
                                 values, per)
        expected = len(meta["arms"]) * len(meta["examples"])
        complete = meta.get("status") == "complete" and len(records) >= expected
        return Snapshot(str(run_dir), meta.get("name"), (meta.get("dataset") or {}).get("sha256"),
                        arms, complete, meta.get("status"), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{run_dir}: malformed run ({exc!r})") from None


def _per_example(records: Sequence[Mapping[str, Any]], col: str) -> dict[str, float]:
    """Example id -> mean of a 0/1 column over the example's draws."""
    by_ex: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_ex[str(r["example_id"])].append(bool(r[col]))
    return {ex: sum(v) / len(v) for ex, v in by_ex.items()}


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
    examples = [str(e) for e in s.meta.get("examples", [])]
    arms = []
    for a in s.arms.values():
        entry: dict[str, Any] = {"name": a.name, "strategy": a.strategy, "type": a.type, "k": a.k,
                                 "n": a.n, "draws": a.draws, **{m: a.values[m] for m in METRICS}}
        if a.per_example is not None and a.draws < len(_DIGITS):
            entry.update({col: _encode(a.per_example[m], examples, a.draws) for m, col in METRICS.items()})
        arms.append(entry)
    src = {"run": s.name, "config_sha256": (s.meta.get("config") or {}).get("sha256"),
           "finished_at": s.meta.get("finished_at"), "harness_version": s.meta.get("harness_version")}
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


def _wilson(p: float, n: int, z: float) -> tuple[float, float]:
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def unpaired_test(now: float, n_now: int, base: float, n_base: int) -> tuple[stats.Interval, float]:
    """now - base with a Newcombe (Wilson score) 95% interval, and a two-sided pooled z-test p."""
    z = NormalDist().inv_cdf(0.975)
    l1, u1 = _wilson(now, n_now, z)
    l2, u2 = _wilson(base, n_base, z)
    d = now - base
    ci = stats.Interval(d, d - math.hypot(now - l1, u2 - base), d + math.hypot(u1 - now, base - l2))
    pooled = (now * n_now + base * n_base) / (n_now + n_base)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_now + 1 / n_base))
    p = 1.0 if se == 0 else 2 * (1 - NormalDist().cdf(abs(d) / se))
    return ci, min(1.0, p)


def paired_test(now: Mapping[str, float], base: Mapping[str, float], *, n_boot: int = 2000
                ) -> tuple[stats.Interval, float]:
    """now - base on the same examples: paired bootstrap interval and exact McNemar p."""
    ids = sorted(now)
    x = np.array([now[i] for i in ids])
    y = np.array([base[i] for i in ids])
    ci = stats.paired_difference(x, y, n_boot=n_boot, seed=0)
    return ci, stats.mcnemar_exact(x > 0.5, y > 0.5)


def _test(cur: ArmData | None, base: ArmData | None, metric: str, same_data: bool, n_boot: int
          ) -> tuple[stats.Interval | None, float | None, str | None]:
    """(change, p, test name) for one arm and metric; Nones when there is nothing to compare."""
    if cur is None or base is None or not (cur.n and base.n):
        return None, None, None
    now, was = cur.values.get(metric), base.values.get(metric)
    if now is None or was is None:
        return None, None, None
    if (same_data and cur.per_example is not None and base.per_example is not None
            and set(cur.per_example[metric]) == set(base.per_example[metric])):
        return (*paired_test(cur.per_example[metric], base.per_example[metric], n_boot=n_boot), "McNemar")
    return (*unpaired_test(now, cur.n, was, base.n), "z-test")


def compare(baseline: Snapshot | None, current: Snapshot, *, max_drop: float = DEFAULT_MAX_DROP,
            alpha: float = DEFAULT_ALPHA, floors: Mapping[str, float | None] | None = None,
            accept: bool = False, n_boot: int = 2000) -> GateResult:
    """The gate's verdict for `current` against `baseline` (None: no baseline yet). Pure."""
    base_arms = dict(baseline.arms) if baseline else {}
    same_data = bool(baseline and baseline.dataset_sha256 == current.dataset_sha256)
    notes = [] if same_data or not baseline else [
        "the eval set differs from the baseline's (dataset sha256): unpaired tests"]
    rows = []
    for name in [*current.arms, *(n for n in base_arms if n not in current.arms)]:
        cur, base = current.arms.get(name), base_arms.get(name)
        for metric in METRICS:
            change, p, test = _test(cur, base, metric, same_data, n_boot)
            rows.append(GateRow(name, metric, base.values.get(metric) if base else None,
                                cur.values.get(metric) if cur else None, change, p, None, test,
                                (floors or {}).get(FLOORS[metric]), (), "ok"))
    tested = [i for i, r in enumerate(rows) if r.p_value is not None]
    for i, adj in zip(tested, stats.holm_adjust([rows[i].p_value for i in tested]), strict=True):
        rows[i] = replace(rows[i], p_adjusted=adj)
    problems = () if current.complete else (
        f"the run is incomplete (status {current.status}): figures cover part of the examples",)
    return GateResult(tuple(_judge(r, max_drop, alpha, accept) for r in rows), problems,
                      tuple(notes), max_drop, alpha, current.name, baseline.source if baseline else None)


def _judge(r: GateRow, max_drop: float, alpha: float, accept: bool) -> GateRow:
    """Status and failures of a row."""
    failures: list[str] = []
    status = "ok"
    if r.now is None and r.baseline is not None:
        status = "missing from this run"
        failures += [] if accept else [status]
    elif r.baseline is None:
        status = "new (no baseline)"
    elif r.change is not None and r.p_adjusted is not None:
        drop, significant = round(-r.change.estimate, 12), r.p_adjusted < alpha
        if drop > max_drop and significant:
            status = "regression (accepted: baseline updated)" if accept else "regression"
            failures += [] if accept else [f"fell {100 * drop:.1f} points (> {100 * max_drop:g}), "
                                           f"Holm p={r.p_adjusted:.3g} < {alpha:g}"]
        elif drop > max_drop:
            status = "drop not significant"
        elif -drop > max_drop and significant:
            status = "improved"
    if r.floor is not None and r.now is not None and r.now < r.floor:
        failures.append(f"{100 * r.now:.1f}% is below the floor {100 * r.floor:g}%")
        below = f"below floor {100 * r.floor:g}%"
        status = below if status == "ok" else f"{status}; {below}"
    return replace(r, failures=tuple(failures), status=status)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(result: GateResult) -> str:
    """The gate's table in GitHub-flavoured Markdown (ASCII only), for a pull-request comment."""
    verdict = "PASSED" if result.passed else "FAILED"
    n_fail = sum(not r.passed for r in result.rows) + len(result.problems)
    lines = [f"### harness gate: {verdict}" + (f" ({n_fail} failing)" if n_fail else ""), "",
             f"Run `{result.run_name}` against baseline `{result.baseline_source or 'none'}`: fails when a "
             f"metric falls by more than {100 * result.max_drop:g} points and the fall is significant "
             f"(Holm-adjusted p < {result.alpha:g}), or is below a floor.", ""]
    lines += [f"- **FAIL**: {p}" for p in result.problems]
    lines += [f"- note: {n}" for n in result.notes]
    if result.problems or result.notes:
        lines.append("")
    lines += ["| arm | metric | baseline | now | change (95% CI) | p (Holm) | status |",
              "|---|---|---:|---:|---|---:|---|"]
    for r in result.rows:
        change = "n/a" if r.change is None else (
            f"{100 * r.change.estimate:+.1f} pts [{100 * r.change.low:+.1f}, {100 * r.change.high:+.1f}]")
        p = "n/a" if r.p_adjusted is None else f"{r.p_adjusted:.3g} ({r.test})"
        status = f"**FAIL** {r.status}" if r.failures else r.status
        lines.append("| " + " | ".join(_cell(c) for c in (
            r.arm, r.metric.replace("_", " "), _pct(r.baseline), _pct(r.now), change, p, status)) + " |")
    if result.baseline_written:
        lines += ["", f"Baseline updated: `{result.baseline_written}`."]
    return "\n".join(lines) + "\n"


def _setting(value: float | None, cfg: Mapping[str, Any], key: str, default: float) -> float:
    v = value if value is not None else cfg.get(key)
    return float(default if v is None else v)


def run_gate(run_dir: Path, baseline: Path, *, max_drop: float | None = None,
             alpha: float | None = None, update: bool = False) -> GateResult:
    """Gate a run folder against a baseline; write gate.md and junit.xml (and the baseline when
    `update`). max_drop / alpha default to the config's gate section, then 0.02 / 0.05."""
    current = snapshot_from_run(run_dir)
    cfg = current.meta.get("gate") or {}
    md = _setting(max_drop, cfg, "max_drop", DEFAULT_MAX_DROP)
    al = _setting(alpha, cfg, "alpha", DEFAULT_ALPHA)
    if not 0.0 <= md <= 1.0:
        raise InputError(f"--max-drop: must be within [0, 1] (a fraction: 0.02 = 2 points), got {md:g}")
    if not 0.0 < al < 1.0:
        raise InputError(f"--alpha: must be within (0, 1), got {al:g}")
    if update and baseline.is_dir():
        raise InputError(f"--update-baseline: {baseline} is a folder; give a file path")
    if update and not current.complete:
        raise InputError(f"--update-baseline: {run_dir} is incomplete (status {current.status}); "
                         "finish it first")
    base = load_baseline(baseline) if (baseline.exists() or not update) else None
    result = compare(base, current, max_drop=md, alpha=al, accept=update,
                     floors={k: cfg.get(k) for k in FLOORS.values()})
    if update:
        write_text_atomic(baseline, dump_baseline(baseline_document(current)))
        result = replace(result, baseline_written=baseline)
    write_text_atomic(run_dir / "gate.md", markdown(result))
    junit.write(run_dir / "junit.xml", "harness gate", junit.gate_cases(result),
                properties={"baseline": str(baseline), "max_drop": f"{md:g}", "alpha": f"{al:g}"})
    return result
