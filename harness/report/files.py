"""Report files from a run folder: results.csv, summary.csv/json, comparisons.csv, report.html.

`write_reports(run_dir)` needs only `results.jsonl` and `run.json`, so `harness report` can
rebuild everything without calling a model.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import Analysis, analyse
from harness.analysis.arms import row_name
from harness.analysis.calibration import expected_calibration_error
from harness.analysis.cascades import frontier_frame
from harness.analysis.pipeline import analyse_columns, meta_task
from harness.files import atomic_writer, write_json_atomic, write_text_atomic
from harness.kinds import EXTRACTION
from harness.report.html import render_html
from harness.running.records import Record, RunMeta
from harness.running.store import RESULTS, read_columns, read_meta, read_records
from harness.tasks import ReasoningFirst

SUMMARY_COLUMNS = [
    "strategy", "type", "model", "k", "n", "draws", "answers", "coverage", "accuracy", "ci_low",
    "ci_high", "macro_f1", "schema_compliance", "schema_ci_low", "schema_ci_high",
    "parse_failure_rate", "errors", "failures", "endpoint_failures", "cache_hits",
    "mean_prompt_tokens", "mean_completion_tokens", "cost_per_1k", "run_cost_usd",
    "latency_p50_ms", "latency_p95_ms", "model_id", "prompt_sha256", "unavailable",
    "structured_output", "lenient_parses", "field_precision", "field_recall", "field_f1",
    "field_f1_ci_low", "field_f1_ci_high", "variant", "selection", "samples",
    "single_sample_accuracy", "vote_gain", "vote_gain_ci_low", "vote_gain_ci_high",
    "mean_vote_share", "clusters", "design_effect", "fallback_share", "latency_mean_ms",
    "cascade_chosen",
    "requested",  # run.sequential only: the examples requested (n: those scored)
]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


CSV_FORMAT: dict[str, Any] = {"index": False, "lineterminator": "\n", "float_format": "%.6g"}


def _csv(df: pd.DataFrame) -> str:
    return str(df.to_csv(**CSV_FORMAT))


def _float_text(values: pd.Series) -> np.ndarray:
    """A float column as to_csv writes it with CSV_FORMAT: "%.6g", and "" for NaN."""
    arr = values.to_numpy(dtype=float)
    out = np.array(list(map(CSV_FORMAT["float_format"].__mod__, arr.tolist())), dtype=object)
    out[np.isnan(arr)] = ""
    return out


def _write_csv_atomic(path: Path, df: pd.DataFrame, chunk_rows: int = 20_000) -> None:
    """The text _csv(df) gives, streamed to disk a chunk of rows at a time (never the whole
    text, nor a formatted copy of the frame, in memory), atomically as write_text_atomic: a
    temp file, fsync, then the rename. Float columns are formatted here, column-wise, to the
    same text pandas would write (its own float formatting calls Python per value)."""
    floats = [c for c in df.columns if df[c].dtype.kind == "f"]
    with atomic_writer(path) as f:
        if not len(df) or df.columns.has_duplicates:
            f.write(_csv(df))
        for start in range(0, len(df) if not df.columns.has_duplicates else 0, chunk_rows):
            part = df.iloc[start:start + chunk_rows]
            part = part.assign(**{c: _float_text(part[c]) for c in floats})
            part.to_csv(f, header=start == 0, **CSV_FORMAT)


def summary_json(a: Analysis, meta: RunMeta) -> dict[str, Any]:
    """The machine-readable summary: arms, comparisons, curve, verdict and run metadata."""
    d = meta.to_dict()
    run_meta = {k: d.get(k) for k in (
        "name", "harness_version", "started_at", "finished_at", "status", "message", "counts",
        "versions", "dataset", "labels", "run", "decision", "fine_tunes")}
    run_meta["task_type"] = meta.task_type
    run_meta["config_path"] = meta.config_path
    run_meta["config_sha256"] = meta.config_sha256
    run_meta["complete"] = a.complete
    run_meta["prompts"] = {arm.key: arm.prompt_sha256 for arm in meta.arms}
    plateau = asdict(a.plateau) if a.plateau else None
    evidence = a.evidence.to_dict()
    recommendation = None if a.withheld else {
        "verdict": a.verdict.recommendation,
        "sentence": a.verdict.sentence,
        "reasons": list(a.verdict.reasons),
        # every number the verdict box shows: {arm, metric, value, low, high} (and its role)
        "figures": [f.to_dict() for f in a.verdict.figures],
        "plateau": plateau,
        # each few-shot curve's own judgement (the plateau above is the one over all of them)
        "curves": [asdict(p) for p in a.plateaus],
        "untried": list(a.untried),
        "fine_tune": evidence,
    }
    out: dict[str, Any] = _clean({
        # null when no verdict may be given (an incomplete run, too many endpoint failures, an
        # unavailable arm, nothing above chance, collapsed compliance): the reasons say why
        "recommendation": recommendation,
        "recommendation_withheld": list(a.withheld) or None,
        "evidence": {"plateau": plateau, "fine_tune": evidence, "sentence": a.verdict.sentence},
        "arms": _arms(a).to_dict("records"),
        "comparisons": a.comparisons.to_dict("records"),
        "learning_curve": a.curve.to_dict("records"),
        "tried": [] if a.tried is None else a.tried.to_dict("records"),
        # what this eval can detect: n, discordance, mde (80% power, alpha 0.05), sentence
        "planning": a.planning.to_dict() if a.planning else None,
        # confidence (a vote share or token probability) against accuracy per arm, with the ECE
        "calibration": _calibration(a),
        "meta": run_meta,
        # run.sequential: per arm requested / available / stopped_at_look, and each look's
        # comparisons with their anytime-valid intervals
        **({"sequential": a.sequential.summary()} if a.sequential is not None else {}),
        # dataset.cluster: the clusters, and how the intervals and tests account for them
        **({"clustering": a.clustering.to_dict()} if a.clustering else {}),
        # type cascade: each one's frontier, operating point (held out) and comparisons
        **({"cascades": [c.to_dict() for c in a.cascades]} if a.cascades else {}),
        # monthly cost by volume (1K-10M a month), crossovers and sentences
        "cost_by_volume": a.cost_by_volume.to_dict() if a.cost_by_volume else None,
    })
    return out


def _arms(a: Analysis) -> pd.DataFrame:
    """summary.csv: the single arms, then each cascade's operating point (held out)."""
    arms = a.arms
    return arms[[c for c in SUMMARY_COLUMNS if c in arms]]


def _calibration(a: Analysis) -> list[dict[str, Any]]:
    table = a.calibration
    if table is None or not len(table):
        return []
    ece = expected_calibration_error(table)
    return [{"strategy": s, "k": k, "ece": e,
             "bins": table[(table["strategy"] == s) & (table["k"] == k)]
             .drop(columns=["strategy", "k"]).to_dict("records")}
            for (s, k), e in ece.items()]


def rescore_records(run_dir: Path, meta: RunMeta, records: list[Record]) -> list[Record]:
    """Every record scored again through the run's task from its stored output (records of
    failed requests stay as they are).

    When any score changed, results.jsonl is rewritten atomically, and the file as it was is
    kept beside it first (`results.before-rescore.jsonl`, numbered if that exists): nothing
    recorded is lost.
    """
    task = meta_task(meta)
    reasoning = {a.key for a in meta.arms if a.reasoning}  # scored through ReasoningFirst
    wrapped = ReasoningFirst(task)
    rescored = [r.rescored(wrapped if r.arm in reasoning else task) for r in records]
    if rescored == records:
        return records
    path = run_dir / RESULTS
    backup, n = run_dir / "results.before-rescore.jsonl", 1
    while backup.exists():
        n += 1
        backup = run_dir / f"results.before-rescore.{n}.jsonl"
    shutil.copy2(path, backup)
    write_text_atomic(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                                    for r in rescored))
    return rescored


def write_reports(run_dir: Path, *, rescore: bool = False, against: Path | None = None
                  ) -> Analysis:
    """Rebuild every report file of a run folder from its records and metadata.

    With `rescore`, each record is first scored again from its stored model output. With
    `against` (another run folder, the earlier one), the report gains a section on what changed
    (analysis.diff: fixed and broken examples per arm, the prompt diff, config keys) and the
    folder gets diff.csv and diff.html; the diff is computed before anything is written, so a
    bad `against` leaves the reports as they were.
    """
    diff = None
    if against is not None:
        from harness.analysis.diff import diff_runs
        from harness.report.diff import diff_context, write_diff

        run_diff = diff_runs(against, run_dir)
        diff = diff_context(run_diff)
    meta = read_meta(run_dir)
    if rescore:
        a = analyse(rescore_records(run_dir, meta, read_records(run_dir)), meta)
    else:  # columns, not a Record per line: a large run stays small and quick
        a = analyse_columns(read_columns(run_dir), meta, run_dir)
    _write_csv_atomic(run_dir / "results.csv", a.results)
    write_text_atomic(run_dir / "summary.csv", _csv(_arms(a)))
    write_text_atomic(run_dir / "comparisons.csv", _csv(a.comparisons))
    if a.tried is not None:
        write_text_atomic(run_dir / "tried.csv", _csv(a.tried))
    if a.calibration is not None and len(a.calibration):
        write_text_atomic(run_dir / "calibration.csv", _csv(a.calibration))
    if a.cascades:
        write_text_atomic(run_dir / "cascade.csv", _csv(frontier_frame(a.cascades)))
    per = "per_field.csv" if a.task_type == EXTRACTION else "per_class.csv"
    write_text_atomic(run_dir / per, _csv(a.per_class))
    write_json_atomic(run_dir / "summary.json", summary_json(a, meta))
    if against is not None:
        write_diff(run_diff, run_dir)
    write_text_atomic(run_dir / "report.html", render_html(a, meta, diff))
    return a


def format_figures(a: Analysis) -> str:
    """The verdict's figures (recommendation.figures), one per line, for the terminal."""
    return "\n".join(f"  {f.label}: {f.text(a.metric_name(f.metric))}" for f in a.verdict.figures)


def format_table(a: Analysis) -> str:
    """A compact plain-text table of the arms, for the terminal."""
    rows = []
    for _, r in a.arms.iterrows():
        name = row_name(r)
        acc = "   n/a" if r["answers"] == 0 or r["errors"] == r["answers"] else (
            f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        draws = f" x{int(r['draws'])}" if int(r["draws"]) > 1 else ""
        cover = (f"  coverage {100 * r['coverage']:.1f}% ({int(r['endpoint_failures'])} endpoint "
                 "failures)" if r["endpoint_failures"] else "")
        schema = "n/a " if r["answers"] == 0 else f"{r['schema_compliance']:.2f}"
        deff = (f"  design effect {r['design_effect']:.2f}"
                if "design_effect" in r and r["design_effect"] == r["design_effect"] else "")
        rows.append(f"  {name:<22} n={r['n']:<5}{draws:<4} acc {acc:<22} schema {schema}"
                    f"  errors {r['errors']}{cover}{deff}")
    c = a.clustering
    if c is not None:
        rows.append(f"  clustered by {c.field}: {c.clusters} clusters of "
                    f"{c.mean_cluster_size:.1f} examples on average; intervals and paired "
                    "tests account for them")
    return "\n".join(rows)


def dumps(obj: Any) -> str:
    """JSON for the terminal."""
    return json.dumps(_clean(obj), indent=2)
