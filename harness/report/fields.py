"""Report sections of extraction runs: per-field scores, compliance per arm with how answers were
constrained, and escaped samples of answers that broke the schema; and the figure formatting the
other sections share. This module computes them; templates/extraction.html.j2 lays them out."""

from __future__ import annotations

import html
import math
from typing import Any

from harness.analysis import Analysis
from harness.strategies import arm_name

DASH = "\u2013"  # shown where a figure is unknown
CONSTRAINT = {"json_schema": "schema (constrained)", "json_object": "JSON grammar (constrained)",
              "none": "none (the raw text)"}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _e(value: Any) -> str:
    """`value` escaped for HTML (None as empty): for markup built in Python, the SVGs' labels."""
    return html.escape(_text(value), quote=True)


def _figure(x: Any, spec: str, scale: float = 1.0) -> str:
    """A number as `spec` (scaled), or a dash where it is missing."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return DASH
    return DASH if math.isnan(v) else format(scale * v, spec)


def _pct(x: Any) -> str:
    text = _figure(x, ".1f", 100.0)
    return text if text == DASH else text + "%"


def _num(x: Any) -> str:
    return _figure(x, ".3f")


def per_field_rows(a: Analysis) -> list[tuple[str, ...]] | None:
    """Per leaf path (a flat schema's fields; `address.city` for an object field) and arm:
    accuracy, precision, recall, F1, support; None before any answer."""
    pf = a.per_class
    if pf.empty or "field" not in pf:
        return None
    return [(arm_name(r["strategy"], int(r["k"]), _type(a, r)), r["field"], _num(r["accuracy"]),
             _num(r["precision"]), _num(r["recall"]), _num(r["f1"]), str(int(r["support"])))
            for _, r in pf.iterrows()]


def _type(a: Analysis, r: Any) -> str:
    s = a.summary
    match = s[(s["strategy"] == r["strategy"]) & (s["k"] == r["k"])]
    return str(match["type"].iloc[0]) if len(match) else "zero_shot"


def compliance_rows(a: Analysis) -> list[tuple[str, ...]]:
    """Per arm: how answers were constrained, schema compliance with its interval, parse
    failures, lenient parses and field F1."""
    rows: list[tuple[str, ...]] = []
    for _, r in a.summary.iterrows():
        mode = str(r.get("structured_output") or "")
        rows.append((arm_name(r["strategy"], int(r["k"]), str(r["type"])), CONSTRAINT.get(mode, mode),
                     f'{_pct(r["schema_compliance"])} [{_pct(r["schema_ci_low"])}, '
                     f'{_pct(r["schema_ci_high"])}]', _pct(r["parse_failure_rate"]),
                     str(int(r.get("lenient_parses") or 0)), _num(r.get("field_f1"))))
    return rows


def noncompliant_rows(a: Analysis, limit: int = 12) -> list[tuple[str, str, str]] | None:
    """(arm, why, output) of outputs that were not JSON or broke the schema, at most one per
    example; None when every answer matched the schema."""
    r = a.results
    bad = r[r["error_kind"].isin(["invalid_json", "schema", "truncated", "empty"])]
    if bad.empty:
        return None
    return [(arm_name(x["strategy"], int(x["k"]), str(x["type"])),
             f'{_text(x["error_kind"])}: {_text(x["error"])}', str(x["output"])[:400])
            for _, x in bad.drop_duplicates("example_id").head(limit).iterrows()]


def nested_fields(a: Analysis) -> bool:
    """Whether the per-field table holds leaf paths of object fields (`address.city`)."""
    pf = a.per_class
    if pf.empty or "field" not in pf:
        return False
    return bool(pf["field"].astype(str).str.contains(".", regex=False).any())


def extraction_context(a: Analysis) -> dict[str, Any]:
    """The extraction-only part of the report (templates/extraction.html.j2)."""
    return {"per_field": per_field_rows(a), "nested": nested_fields(a),
            "compliance": compliance_rows(a), "noncompliant": noncompliant_rows(a)}


__all__ = ["CONSTRAINT", "DASH", "compliance_rows", "extraction_context", "nested_fields",
           "noncompliant_rows", "per_field_rows"]
