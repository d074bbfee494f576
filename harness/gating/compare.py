"""The regression gate: compare a run with a committed baseline; fail CI on a real drop.

``harness gate RUN_DIR --baseline FILE [--max-drop 0.02] [--alpha 0.05] [--update-baseline]``

Per arm (``zero-shot``, ``few-shot@k=4``...) and metric (accuracy, schema compliance): baseline,
now, change with a 95% interval, status. Exit 1 when a metric fell by more than ``max_drop``
(0.02 = 2 points) **and** significantly (Holm-adjusted over all the gate's tests, p < ``alpha``,
so more arms do not mean more false alarms); when a metric is below a floor (``gate:
{min_accuracy, min_schema_compliance}`` in the config, copied into run.json; point estimate,
every arm); when a baseline arm vanished (left out of the run, or without a single answer
because every request for it failed: a failed check per metric, whatever the numbers); or when
the run is incomplete. ``max_drop`` and ``alpha`` come from the command line, else the
config's ``gate`` section, else 0.02 / 0.05.

Refused (InputError, exit 2, nothing written): a baseline of another config name, task type
or label set (the label sets compared as sets), unless ``--allow-different`` (then a note in
gate.md says what differs); an incomplete baseline run (a run folder, results.jsonl or
summary.json whose run did not finish), always. What a baseline does not record is not checked
and a note says so: baseline files written before they carried ``task_type`` and ``labels``
(their config name is still checked), and summary.json files without a task type.

Paired when possible: McNemar's exact test on per-example correctness (majority over few-shot
draws) and a paired bootstrap interval, if the baseline has per-example results for the same
eval set (dataset sha256 and example ids). Otherwise (e.g. a plain ``summary.json``): a pooled
two-proportion z-test and a Newcombe interval on the arm's number of examples. A run with
``dataset.cluster`` pairs over clusters: the bootstrap resamples clusters and the test is
Durkalski et al.'s clustered McNemar (analysis/clustered.py); the unpaired z-test ignores them.
The tests are the analysis's own (analysis/comparisons.py: paired_test, unpaired_test), so the
gate and the report give the same figures for the same examples.

What to commit: the file ``--update-baseline`` writes (say ``baselines/NAME.json``), a few kB::

    {"format": "harness-gate-baseline", "version": 1, "name": ..., "task_type": "classification",
     "labels": ["billing", ...], "dataset_sha256": ..., "examples": ["id1", "id2", ...],
     "arms": [{"name": "few-shot@k=4", "strategy": ..., "type": ..., "k": 4, "n": 48, "draws": 2,
               "accuracy": 0.91, "schema_compliance": 1.0, "correct": "2120...", "schema_valid": "2222..."}],
     "source": {"run": ..., "config_sha256": ..., "finished_at": ..., "harness_version": ...}}

``correct`` / ``schema_valid``: one base-36 digit per example (``examples`` order) counting the
draws that were correct / schema-valid (``-``: no result). What the file holds, then: the eval's
example ids (in the clear, unless ``--hash-ids``: then ``"example_ids": "sha256-16"`` and each
id's hash, paired with a run's ids by hashing them the same way), per-arm figures, and two
keys added later, ``arm_context`` (per arm: the hash of its rendered prompt, its model id and k)
and ``config`` (the config's leaf paths with their values, long values such as instructions
as a hash; harness.gating.changes); no input and no output of any example.

Arms are paired with the baseline's by name, and (``--match nearest``, the default) an arm
whose k changed is paired with its strategy's baseline arm at the nearest k (``pair_arms``):
``few-shot@k=8 -> few-shot@k=2`` is one row, "k=8 -> k=2", with the paired test of the two.
``--match exact`` pairs by name only. gate.md lists what changed since the baseline: prompt
hashes, model ids, k values and config keys. ``--baseline``
also takes a run's ``summary.json`` (unpaired), a run folder or its ``results.jsonl`` (paired).
``--update-baseline`` shows the table but accepts the changes (floors and completeness still
count; a vanished arm is dropped from the baseline, and the table says so), creates the file if
missing, and refuses an incomplete run, a baseline of another config (without
``--allow-different``) and any path but a baseline file (never a run's summary.json or results).
``task_type`` and ``labels`` were added to version 1 files later; readers ignore unknown keys.

``run_gate`` writes ``RUN_DIR/gate.md`` (Markdown for a pull-request comment) and
``RUN_DIR/junit.xml`` (a test case per arm and metric). Bad input raises InputError (exit 2).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.analysis import comparisons, stats
from harness.analysis.changes import Context, changes, pair_arms, run_context
from harness.errors import InputError
from harness.model.completion import is_endpoint_failure
from harness.running.records import RunMeta
from harness.running.store import RecordColumns, read_columns, read_meta
from harness.strategies import arm_name

METRICS = {"accuracy": "correct", "schema_compliance": "schema_valid"}
FLOORS = {"accuracy": "min_accuracy", "schema_compliance": "min_schema_compliance"}
DEFAULT_MAX_DROP, DEFAULT_ALPHA = 0.02, 0.05


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
    """What the gate knows about one run (current) or baseline.

    `name`, `task_type` and `labels` say what was measured (None: not recorded, e.g. a
    baseline file of an older harness); `kind` is where it came from: "run" (a run folder or
    its results.jsonl), "summary" (a summary.json) or "baseline" (a baseline file).
    """

    source: str
    name: str | None
    dataset_sha256: str | None
    arms: Mapping[str, ArmData]
    complete: bool = True
    status: str | None = None
    meta: RunMeta | None = None
    task_type: str | None = None
    labels: tuple[str, ...] | None = None
    kind: str = "run"
    missing: Mapping[str, str] = field(default_factory=dict)  # arm -> why it has no answer
    context: Context = field(default_factory=Context)  # prompts, models, k, config keys
    ids_hashed: bool = False  # a baseline file whose example ids are hashes (hash_id)


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
    test: str | None  # "McNemar" | "clustered McNemar" | "z-test" | None
    floor: float | None
    failures: tuple[str, ...]
    status: str
    baseline_arm: str | None = None  # the baseline arm compared, when another (a k change)
    k_change: str | None = None  # "k=8 -> k=2" when the baseline arm had another k

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
    changes: tuple[str, ...] = ()  # what changed since the baseline (gating.changes)
    match: str = "nearest"  # how arms were paired with the baseline's (pair_arms)
    baseline_recorded: bool = True  # False: the baseline does not record prompts or config

    @property
    def passed(self) -> bool:
        """True when no row failed and the run has no problem."""
        return not self.problems and all(r.passed for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed."""
        return 0 if self.passed else 1


def snapshot_from_run(run_dir: Path) -> Snapshot:
    """Per-arm figures of a run folder, with per-example values, from run.json + results.jsonl.

    Examples the endpoint failed on (no answer of the model) are left out, as in the run's
    summary; an arm with no answer at all is in `missing`, not in `arms`.
    """
    meta = read_meta(run_dir)
    cols = read_columns(run_dir)  # columns, not a Record per line: a large run stays small
    if not cols["arm"]:
        raise InputError(f"{run_dir}: the run holds no results yet")
    try:
        kinds: dict[tuple[str, int], str] = {}
        draws: Counter[tuple[str, int]] = Counter()
        for a in meta.arms:
            kinds[(a.strategy, a.k)] = a.type
            draws[(a.strategy, a.k)] += 1
        endpoint = {kind: is_endpoint_failure(kind) for kind in set(cols["error_kind"])}
        by_arm: dict[tuple[str, int], list[int]] = defaultdict(list)  # -> row numbers
        failed: dict[tuple[str, int], int] = {}
        for i, (strategy, k, kind) in enumerate(zip(cols["strategy"], cols["k"],
                                                    cols["error_kind"], strict=True)):
            if endpoint[kind]:
                failed.setdefault((strategy, k), i)
            else:
                by_arm[(strategy, k)].append(i)
        arms, missing = {}, {}
        for (strategy, k), kind in kinds.items():
            if not (rows := by_arm.get((strategy, k))):
                why = failed.get((strategy, k))
                missing[arm_name(strategy, k, kind)] = (
                    f"no answers ({cols['error_kind'][why]}: {cols['error'][why]})"
                    if why is not None else "no results")
                continue
            per = {m: _per_example(cols, rows, col) for m, col in METRICS.items()}
            values = {m: sum(bool(cols[col][i]) for i in rows) / len(rows)
                      for m, col in METRICS.items()}
            name = arm_name(strategy, k, kind)
            arms[name] = ArmData(name, strategy, kind, k, len(per["accuracy"]), draws[(strategy, k)],
                                 values, per)
        complete = meta.status == "complete" and len(cols["arm"]) >= meta.expected_records
        return Snapshot(str(run_dir), meta.name, meta.dataset.sha256, arms, complete, meta.status,
                        meta, meta.task_type, tuple(meta.labels), "run", missing,
                        run_context(meta))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{run_dir}: malformed run ({exc!r})") from None


def _per_example(cols: RecordColumns, rows: Sequence[int], col: str) -> dict[str, float]:
    """Example id -> mean of a 0/1 field over the example's draws (the given rows)."""
    by_ex: dict[str, list[bool]] = defaultdict(list)
    ids, values = cols["example_id"], cols[col]
    for i in rows:
        by_ex[ids[i]].append(bool(values[i]))
    return {ex: sum(v) / len(v) for ex, v in by_ex.items()}


# the analysis's test ids (comparisons.DifferenceTest.test) -> the names gate.md and junit.xml show
TEST_NAMES = {"mcnemar": "McNemar", "clustered_mcnemar": "clustered McNemar", "z_test": "z-test"}


def _test(cur: ArmData | None, base: ArmData | None, metric: str, same_data: bool, n_boot: int,
          clusters: Mapping[str, str] | None = None
          ) -> tuple[stats.Interval | None, float | None, str | None]:
    """(change, p, test name) for one arm and metric; Nones when there is nothing to compare.

    The tests are the analysis's (analysis/comparisons.py): paired_test over the examples both
    have, in example-id order (with `clusters`, example id -> cluster, `dataset.cluster`, its
    clustered form), else unpaired_test on the pooled values."""
    if cur is None or base is None or not (cur.n and base.n):
        return None, None, None
    now, was = cur.values.get(metric), base.values.get(metric)
    if now is None or was is None:
        return None, None, None
    if (same_data and cur.per_example is not None and base.per_example is not None
            and set(cur.per_example[metric]) == set(base.per_example[metric])):
        x, y = cur.per_example[metric], base.per_example[metric]
        ids = sorted(x)
        t = comparisons.paired_test(
            np.array([x[i] for i in ids]), np.array([y[i] for i in ids]), n_boot=n_boot,
            clusters=None if clusters is None else [clusters.get(i, "") for i in ids])
    else:
        t = comparisons.unpaired_test(now, cur.n, was, base.n)
    return t.difference, t.p_value, TEST_NAMES[t.test]


MATCHES = ("nearest", "exact")  # pair_arms (analysis.changes)
HASHED_IDS = "sha256-16"  # a baseline file's `example_ids` when its ids are hashed


def hash_id(example_id: str) -> str:
    """An example id as a baseline file with hashed ids keeps it: 16 hex digits of its
    SHA-256 (unsalted: the same id always gives the same hash, so runs can be paired)."""
    import hashlib

    return hashlib.sha256(str(example_id).encode()).hexdigest()[:16]


def with_hashed_ids(s: Snapshot) -> Snapshot:
    """The snapshot with every example id replaced by its hash (to pair a run with a baseline
    file that holds hashed ids)."""
    arms = {n: replace(a, per_example=None if a.per_example is None else {
        m: {hash_id(i): v for i, v in per.items()} for m, per in a.per_example.items()})
        for n, a in s.arms.items()}
    meta = s.meta
    if meta is not None:
        meta = replace(meta, examples=tuple(hash_id(i) for i in meta.examples))
    return replace(s, arms=arms, meta=meta, ids_hashed=True)


def compare(baseline: Snapshot | None, current: Snapshot, *, max_drop: float = DEFAULT_MAX_DROP,
            alpha: float = DEFAULT_ALPHA, floors: Mapping[str, float | None] | None = None,
            accept: bool = False, n_boot: int = 2000, match: str = "nearest") -> GateResult:
    """The gate's verdict for `current` against `baseline` (None: no baseline yet), each arm
    against the baseline arm `pair_arms` gives it. Pure."""
    if baseline is not None and baseline.ids_hashed and not current.ids_hashed:
        current = with_hashed_ids(current)
    base_arms = dict(baseline.arms) if baseline else {}
    same_data = bool(baseline and baseline.dataset_sha256 == current.dataset_sha256)
    notes = [] if same_data or not baseline else [
        "the eval set differs from the baseline's (dataset sha256): unpaired tests"]
    meta = current.meta
    clusters = (dict(zip(meta.examples, meta.clusters, strict=True))
                if meta is not None and meta.clusters else None)
    rows = []
    pairs = pair_arms(base_arms, current.arms, match=match)
    vanished = [n for n in base_arms if n not in pairs.values()]
    for name in [*current.arms, *vanished, *(n for n in current.missing if n not in base_arms)]:
        cur = current.arms.get(name)
        was = pairs.get(name, name if cur is None else None)
        base = base_arms.get(was) if was is not None else None
        other = was if was is not None and was != name else None
        k_change = (f"k={base.k} -> k={cur.k}" if other and base is not None and cur is not None
                    and base.k != cur.k else None)
        for metric in METRICS:
            change, p, test = _test(cur, base, metric, same_data, n_boot, clusters)
            rows.append(GateRow(name, metric, base.values.get(metric) if base else None,
                                cur.values.get(metric) if cur else None, change, p, None, test,
                                (floors or {}).get(FLOORS[metric]), (), "ok", other, k_change))
    tested = [(i, r.p_value) for i, r in enumerate(rows) if r.p_value is not None]
    for (i, _), adj in zip(tested, stats.holm_adjust([p for _, p in tested]), strict=True):
        rows[i] = replace(rows[i], p_adjusted=adj)
    problems = () if current.complete else (
        f"the run is incomplete (status {current.status}): figures cover part of the examples",)
    judged = tuple(_judge(r, max_drop, alpha, accept, current.missing.get(r.arm)) for r in rows)
    recorded = baseline is None or baseline.context.recorded
    changed = (tuple(changes(baseline.context, current.context, pairs))
               if baseline is not None and recorded else ())
    return GateResult(judged, problems, tuple(notes), max_drop, alpha, current.name,
                      baseline.source if baseline else None, changes=changed, match=match,
                      baseline_recorded=recorded)


def _judge(r: GateRow, max_drop: float, alpha: float, accept: bool, why_missing: str | None = None
           ) -> GateRow:
    """Status and failures of a row (`why_missing`: why the run has no answer for its arm)."""
    failures: list[str] = []
    status = "ok"
    if r.now is None and r.baseline is not None:
        # a vanished arm: left out of the config, or its model gave no answer at all
        status = "missing from this run" + (f" ({why_missing})" if why_missing else "")
        failures += [] if accept else [status]
        status += " (accepted: dropped from the baseline)" if accept else ""
    elif r.baseline is None:
        status = "new (no baseline)" + (f"; {why_missing}" if why_missing else "")
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
    if r.k_change is not None:
        status = f"{r.k_change}: {status}"
    if r.floor is not None and r.now is not None and r.now < r.floor:
        failures.append(f"{100 * r.now:.1f}% is below the floor {100 * r.floor:g}%")
        below = f"below floor {100 * r.floor:g}%"
        status = below if status == "ok" else f"{status}; {below}"
    return replace(r, failures=tuple(failures), status=status)
