"""Metrics: *what figures does one arm's set of answers give?* Per-arm metrics as pure functions
over per-example result rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.model.completion import is_endpoint_failure, is_request_error
from harness.tasks import Task


@dataclass(frozen=True)
class ArmMetrics:
    """Per-arm figures (pooled over draws)."""

    n: int
    accuracy: float
    macro_f1: float
    schema_compliance: float
    parse_failure_rate: float
    errors: int
    mean_prompt_tokens: float
    mean_completion_tokens: float
    latency_p50_ms: float
    latency_p95_ms: float


def percentile(values: Sequence[float | None], q: float) -> float:
    """The q-th percentile (linear interpolation), NaN for no values."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def arm_metrics(rows: Sequence[Mapping[str, Any]], task: Task) -> ArmMetrics:
    """Metrics over result rows (dicts with expected, prediction, correct, schema_valid, ...).

    Rows the endpoint failed (see `is_endpoint_failure`) are left out: they hold no answer of
    the model, so they are coverage, not wrong answers. `n` counts the answers that remain;
    `errors` counts the model-side request failures among them (refusals, filtered output, a
    prompt beyond the context), which do count as wrong.
    """
    rows = [r for r in rows if not is_endpoint_failure(r.get("error_kind"))]
    n = len(rows)
    if n == 0:
        nan = float("nan")
        return ArmMetrics(0, nan, nan, nan, nan, 0, nan, nan, nan, nan)
    latencies = [float(r["latency_ms"]) for r in rows if not r.get("cached") and r.get("latency_ms")]

    def mean_of(key: str) -> float:
        vals = [float(r[key]) for r in rows if r.get(key) is not None and r[key] == r[key]]
        return float(np.mean(vals)) if vals else float("nan")

    failed = [is_request_error(r.get("error_kind")) for r in rows]
    return ArmMetrics(
        n=n,
        accuracy=sum(bool(r["correct"]) for r in rows) / n,
        macro_f1=task.quality([r["expected"] for r in rows], [r["prediction"] for r in rows]),
        schema_compliance=sum(bool(r["schema_valid"]) for r in rows) / n,
        parse_failure_rate=sum(not r["parse_ok"] for r, f in zip(rows, failed, strict=True) if not f) / n,
        errors=sum(failed),
        mean_prompt_tokens=mean_of("prompt_tokens"),
        mean_completion_tokens=mean_of("completion_tokens"),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


def _truthy(values: pd.Series) -> np.ndarray:
    """bool(v) of each value, as a row dict's `bool(r[key])` would give it."""
    if values.dtype == bool:
        return np.asarray(values.to_numpy(dtype=bool))
    return np.fromiter(map(bool, values.tolist()), dtype=bool, count=len(values))


def _kinds(values: pd.Series, test: Callable[[str | None], bool]) -> np.ndarray:
    """test(kind) of each error kind, one call per distinct kind."""
    kinds = values.tolist()
    seen = {k: test(k) for k in set(kinds)}
    return np.fromiter(map(seen.__getitem__, kinds), dtype=bool, count=len(kinds))


def frame_metrics(results: pd.DataFrame, task: Task) -> ArmMetrics:
    """arm_metrics over the rows of a results frame (tables.results_frame), column by column:
    the same figures, without a Python object per row."""
    answered = results[~_kinds(results["error_kind"], is_endpoint_failure)]
    n = len(answered)
    if n == 0:
        nan = float("nan")
        return ArmMetrics(0, nan, nan, nan, nan, 0, nan, nan, nan, nan)
    latency = answered["latency_ms"]
    timed = ~_truthy(answered["cached"]) & _truthy(latency)
    latencies = latency.to_numpy(dtype=float)[timed]

    def mean_of(key: str) -> float:
        vals = answered[key].to_numpy(dtype=float)
        vals = vals[~np.isnan(vals)]
        return float(np.mean(vals)) if vals.size else float("nan")

    failed = _kinds(answered["error_kind"], is_request_error)
    return ArmMetrics(
        n=n,
        accuracy=int(_truthy(answered["correct"]).sum()) / n,
        macro_f1=task.quality(answered["expected"].tolist(), answered["prediction"].tolist()),
        schema_compliance=int(_truthy(answered["schema_valid"]).sum()) / n,
        parse_failure_rate=int((~_truthy(answered["parse_ok"]) & ~failed).sum()) / n,
        errors=int(failed.sum()),
        mean_prompt_tokens=mean_of("prompt_tokens"),
        mean_completion_tokens=mean_of("completion_tokens"),
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
        latency_p95_ms=float(np.percentile(latencies, 95)) if latencies.size else float("nan"),
    )
