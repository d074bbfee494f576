"""Report sections of extraction runs: per-field scores, compliance per arm with how answers were
constrained, and escaped samples of answers that broke the schema."""

from __future__ import annotations

import html
import math
from typing import Any

from harness.analysis import Analysis
from harness.strategies import arm_name

DASH = "\u2013"  # shown where a figure is unknown
CONSTRAINT = {"json_schema": "schema (constrained)", "json_object": "JSON grammar (constrained)",
              "none": "none (the raw text)"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def per_field_table(a: Analysis) -> str:
    """Per field and arm: accuracy, precision, recall, F1, support."""
    pf = a.per_class
    if pf.empty or "field" not in pf:
        return '<p class="muted">No answered examples yet.</p>'
    rows = "".join(
        f'<tr><td class="text">{_e(arm_name(r["strategy"], int(r["k"]), _type(a, r)))}</td>'
        f'<td class="text">{_e(r["field"])}</td><td>{_num(r["accuracy"])}</td>'
        f'<td>{_num(r["precision"])}</td><td>{_num(r["recall"])}</td><td>{_num(r["f1"])}</td>'
        f'<td>{int(r["support"])}</td></tr>' for _, r in pf.iterrows())
    return ('<div class="scroll" id="per-field"><table><tr><th class="text">arm</th>'
            '<th class="text">field</th><th>accuracy</th><th>precision</th><th>recall</th>'
            f'<th>F1</th><th>support</th></tr>{rows}</table></div>')


def _type(a: Analysis, r: Any) -> str:
    s = a.summary
    match = s[(s["strategy"] == r["strategy"]) & (s["k"] == r["k"])]
    return str(match["type"].iloc[0]) if len(match) else "zero_shot"


def compliance_table(a: Analysis) -> str:
    """Per arm: how answers were constrained, schema compliance with its interval, parse
    failures and lenient parses."""
    rows = []
    for _, r in a.summary.iterrows():
        mode = str(r.get("structured_output") or "")
        rows.append(
            f'<tr><td class="text">{_e(arm_name(r["strategy"], int(r["k"]), str(r["type"])))}</td>'
            f'<td class="text">{_e(CONSTRAINT.get(mode, mode))}</td>'
            f'<td>{_pct(r["schema_compliance"])} [{_pct(r["schema_ci_low"])}, '
            f'{_pct(r["schema_ci_high"])}]</td><td>{_pct(r["parse_failure_rate"])}</td>'
            f'<td>{int(r.get("lenient_parses") or 0)}</td>'
            f'<td>{_num(r.get("field_f1"))}</td></tr>')
    return ('<div class="scroll" id="compliance"><table><tr><th class="text">arm</th>'
            '<th class="text">constrained by</th><th>schema compliance (95% CI)</th>'
            '<th>not JSON</th><th>lenient parses</th><th>field F1</th></tr>'
            f'{"".join(rows)}</table></div><p class="muted">Constrained arms ask the endpoint to '
            'follow the schema (or a JSON grammar); unconstrained ones (none) show what the model '
            'writes on its own. A lenient parse is an answer that parsed only after one '
            'surrounding Markdown code fence was removed; it counts as compliant when the object '
            'inside matches the schema.</p>')


def noncompliant_samples(a: Analysis, limit: int = 12) -> str:
    """Escaped outputs that were not JSON or broke the schema, at most one per example."""
    r = a.results
    bad = r[r["error_kind"].isin(["invalid_json", "schema", "truncated", "empty"])]
    if bad.empty:
        return '<p class="muted">Every answer was JSON that matched the schema.</p>'
    bad = bad.drop_duplicates("example_id").head(limit)
    rows = "".join(
        f'<tr><td class="text">{_e(arm_name(x["strategy"], int(x["k"]), str(x["type"])))}</td>'
        f'<td class="text">{_e(x["error_kind"])}: {_e(x["error"])}</td>'
        f'<td class="text"><pre>{_e(str(x["output"])[:400])}</pre></td></tr>'
        for _, x in bad.iterrows())
    return ('<div class="scroll" id="noncompliant"><table><tr><th class="text">arm</th>'
            '<th class="text">why</th><th class="text">output</th></tr>'
            f'{rows}</table></div>')


def extraction_sections(a: Analysis) -> str:
    """The extraction-only part of the report."""
    return (f"<h2>Per field</h2>{per_field_table(a)}"
            f"<h2>Schema compliance</h2>{compliance_table(a)}"
            f"<h2>Answers that broke the format</h2>{noncompliant_samples(a)}")
