"""Scoring: one completion against its expected label, and per-arm metrics as pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np

from harness.client import Completion


@dataclass(frozen=True)
class Score:
    """How one answer scored."""

    prediction: str | None
    correct: bool
    parse_ok: bool
    schema_valid: bool
    error_kind: str | None
    error: str | None


def score(completion: Completion, expected: str, validator: jsonschema.protocols.Validator) -> Score:
    """Parse the answer, validate it against the output schema, compare with the expected label."""
    if completion.error_kind:
        return Score(None, False, False, False, completion.error_kind, completion.error)
    if completion.refusal:
        return Score(None, False, False, False, "refusal", completion.refusal[:300])
    if completion.finish_reason == "content_filter":
        return Score(None, False, False, False, "content_filter", "blocked by the content filter")
    content = (completion.content or "").strip()
    if not content:
        return Score(None, False, False, False, "empty", "the answer was empty")
    truncated = completion.finish_reason == "length"
    try:
        obj: Any = json.loads(_strip_fence(content))
    except json.JSONDecodeError as exc:
        kind = "truncated" if truncated else "invalid_json"
        detail = "output cut at max_tokens" if truncated else f"not JSON ({exc.msg})"
        return Score(None, False, False, False, kind, detail)
    label = obj.get("label") if isinstance(obj, dict) else None
    prediction = label if isinstance(label, str) else None
    errors = sorted(validator.iter_errors(obj), key=lambda e: e.path)
    valid = not errors and not truncated
    kind, detail = None, None
    if truncated:
        kind, detail = "truncated", "output cut at max_tokens"
    elif errors:
        kind, detail = "schema", errors[0].message[:300]
    return Score(prediction, prediction == expected and valid, True, valid, kind, detail)


def _strip_fence(text: str) -> str:
    """Accept a ```json fenced answer (parsing is lenient; schema compliance is still recorded)."""
    if text.startswith("```"):
        lines = text.splitlines()
        if len(lines) >= 2 and lines[-1].strip() == "```":
            return "\n".join(lines[1:-1])
    return text


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


def per_class(expected: Sequence[str], predicted: Sequence[str | None],
              labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label present in `expected` or predicted."""
    out: dict[str, dict[str, float]] = {}
    present = [lab for lab in labels if lab in set(expected) or lab in set(predicted)]
    for lab in present:
        tp = sum(1 for e, p in zip(expected, predicted, strict=True) if e == lab and p == lab)
        fp = sum(1 for e, p in zip(expected, predicted, strict=True) if e != lab and p == lab)
        fn = sum(1 for e, p in zip(expected, predicted, strict=True) if e == lab and p != lab)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[lab] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def macro_f1(expected: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels that occur in `expected` or among valid predictions."""
    table = per_class(expected, predicted, labels)
    return float(np.mean([v["f1"] for v in table.values()])) if table else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation), NaN for no values."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def arm_metrics(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> ArmMetrics:
    """Metrics over result rows (dicts with expected, prediction, correct, schema_valid, ...)."""
    n = len(rows)
    if n == 0:
        nan = float("nan")
        return ArmMetrics(0, nan, nan, nan, nan, 0, nan, nan, nan, nan)
    latencies = [float(r["latency_ms"]) for r in rows if not r.get("cached") and r.get("latency_ms")]

    def mean_of(key: str) -> float:
        vals = [float(r[key]) for r in rows if r.get(key) is not None and r[key] == r[key]]
        return float(np.mean(vals)) if vals else float("nan")

    return ArmMetrics(
        n=n,
        accuracy=sum(bool(r["correct"]) for r in rows) / n,
        macro_f1=macro_f1([r["expected"] for r in rows], [r["prediction"] for r in rows], labels),
        schema_compliance=sum(bool(r["schema_valid"]) for r in rows) / n,
        parse_failure_rate=sum(not r["parse_ok"] for r in rows if not _is_request_error(r)) / n,
        errors=sum(_is_request_error(r) for r in rows),
        mean_prompt_tokens=mean_of("prompt_tokens"),
        mean_completion_tokens=mean_of("completion_tokens"),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


REQUEST_ERROR_KINDS = ("context_length", "bad_request", "not_found", "unprocessable", "timeout",
                       "connection", "rate_limited", "retries_exhausted", "model_unavailable",
                       "http_", "refusal", "content_filter", "empty", "interrupted")


def _is_request_error(row: Mapping[str, Any]) -> bool:
    kind = row.get("error_kind")
    return bool(kind) and str(kind).startswith(REQUEST_ERROR_KINDS)
