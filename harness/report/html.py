"""The self-contained HTML report: verdict with the numbers behind it, arms table, learning curve
(inline SVG), paired comparisons, confusions, failures, prompts and run metadata.

One file that opens from disk: no script, no CDN, no network. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence; every data string is escaped.
The output is deterministic: the same records and metadata give the same bytes (fixed Styler
uuid, fixed matplotlib hash salt, no SVG metadata), so `harness report` reproduces it exactly.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis import Analysis
from harness.kinds import EXTRACTION
from harness.model.pricing import is_fine_tuned_id
from harness.report.cascade import cascade_section
from harness.report.chart import curve_svg
from harness.report.failures import failure_sample
from harness.report.fields import extraction_sections
from harness.report.space import TEST_NAMES, clusters_note, design_space_section, planning_note
from harness.report.volume import volume_section
from harness.running.records import RunMeta
from harness.strategies import arm_name

DASH, MINUS = "\u2013", "\u2212"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{color-scheme:light}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.25rem;color:#1d2433;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.verdict{padding:1rem 1.2rem;border-radius:8px;border-left:6px solid;margin:1rem 0}
.fine_tune{background:#eaf6ec;border-color:#2e7d32}.keep_prompting{background:#fff6e0;border-color:#c77700}
.prompting_sufficient{background:#e8f0fb;border-color:#1f5fbf}
.verdict .label{font-weight:700;text-transform:uppercase;font-size:.8rem;letter-spacing:.05em}
.verdict .sentence{margin:.3rem 0;font-size:1.1rem}
.numbers{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0;font-size:.9rem}
.numbers dt{font-weight:600}.numbers dd{margin:0}
.incomplete{background:#fdecea;border:1px solid #e0a5a0;padding:.6rem 1rem;border-radius:6px;color:#8a1c1c}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .45rem;text-align:right;vertical-align:top}
th{background:#f4f5f7}td.text,th.text{text-align:left}
.scroll{overflow-x:auto}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
pre,code.out{white-space:pre-wrap;overflow-wrap:anywhere;
font:.78rem/1.35 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f7f7f9;padding:.6rem;border-radius:6px}
td.text{overflow-wrap:break-word}#T_arms td{white-space:nowrap}#T_arms th,#T_arms td{padding:.3rem .35rem}
table.fixed{table-layout:fixed}table.fixed td{overflow-wrap:anywhere}
figure{margin:.5rem 0}svg{max-width:100%;height:auto}figcaption,.muted{color:#555;font-size:.85rem}
svg#learning-curve{display:block;width:100%;height:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr));gap:.2rem 1.2rem}
.grid>div{min-width:0}
td.label,table.labels td{word-break:normal;overflow-wrap:normal;hyphens:none}
table.fixed td.label{overflow-wrap:break-word}#failures{min-width:50rem}
.grid h3{font-size:.9rem;margin:.6rem 0 0}
footer{margin-top:2.5rem;color:#777;font-size:.8rem}
@media print{
@page{margin:1.4cm}
body{max-width:none;padding:0;font-size:11pt}
.verdict,.incomplete,th{print-color-adjust:exact;-webkit-print-color-adjust:exact}
.scroll{overflow:visible}
details::details-content{content-visibility:visible;display:block}
summary{list-style:none}
tr,figure,.verdict,pre{break-inside:avoid}
h2{break-after:avoid}
}
"""

ARM_COLUMNS = {  # the metric columns' headers come from the task (Task.metrics)
    "arm": "arm", "model_id": "model id", "n": "n", "draws": "draws", "answers": "answers",
    "coverage": "coverage", "ci": "95% CI",
    "schema_compliance": "schema ok", "parse_failure_rate": "parse fail", "errors": "errors",
    "tokens": "tokens/query (in + out)", "cost_per_1k": "USD / 1k queries",
    "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms",
}


def esc(value: Any) -> str:
    """HTML-escape any value (None and NaN as empty)."""
    return html.escape(_text(value), quote=True)


def _isnan(x: Any) -> bool:
    """True for None, NaN and pandas' missing values."""
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def _text(value: Any) -> str:
    """`value` as text, unescaped (None and NaN as empty): for cells the Styler escapes."""
    return "" if _isnan(value) else str(value)


def _fmt(x: Any, spec: str) -> str:
    return DASH if _isnan(x) else format(x, spec)


def arm_counts(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """(examples, draws, answers) of a summary row.

    Read the same from summaries where `n` counts examples and `answers` the scored answers,
    and from older ones where `n` counted answers (examples x draws) and there is no `answers`.
    """
    d = row.get("draws")
    draws = 1 if d is None or _isnan(d) else max(int(d), 1)
    answers = row.get("answers")
    if answers is None or _isnan(answers):
        total = int(row["n"])
        return -(-total // draws), draws, total
    return int(row["n"]), draws, int(answers)


def _coverage(row: Mapping[str, Any]) -> float:
    """Scored answers / planned answers (NaN where the summary does not say)."""
    value = row.get("coverage")
    return math.nan if value is None or _isnan(value) else float(value)


def _no_price(row: Mapping[str, Any]) -> bool:
    """Tokens were measured but no price is known: the cost cannot be given."""
    return _isnan(row["cost_per_1k"]) and not _isnan(row["mean_prompt_tokens"])


def _cost(row: Mapping[str, Any]) -> str:
    return "unknown*" if _no_price(row) else _fmt(row["cost_per_1k"], ".4f")


def price_notes(summary: pd.DataFrame) -> str:
    """The footnote to 'unknown*' costs: which `price:` block to add, for each model id."""
    notes: dict[tuple[str, str], str] = {}
    for _, r in summary.iterrows():
        if not _no_price(r):
            continue
        model, model_id = str(r["model"]), str(r["model_id"])
        key = "price.fine_tuned" if is_fine_tuned_id(model_id) else "price"
        notes.setdefault((model, model_id), f"no price is known for {esc(model_id)}: add "
                         f"<code>{key}:</code> to <code>models.{esc(model)}</code> in the config")
    if not notes:
        return ""
    return ('<p class="muted" id="price-notes">* Cost unknown: ' + "; ".join(notes.values())
            + " (USD per 1M tokens: <code>input</code>, <code>cached_input</code>, "
            "<code>output</code>).</p>")


def arms_table(a: Analysis) -> str:
    """The arms table, built with pandas' Styler (cells escaped, best accuracy in bold): the
    single arms and each cascade's operating point (held out); the metric columns are the
    task's (Task.metrics), under the names the task gives them."""
    s = a.arms
    rows = [r for _, r in s.iterrows()]
    others = [m for m in a.metrics if m != "accuracy"]
    counts = [arm_counts(r) for r in rows]
    coverage = [_coverage(r) for r in rows]
    df = pd.DataFrame({
        "arm": [arm_name(r["strategy"], r["k"], r["type"]) for r in rows],
        "model_id": [_text(r.get("model_id")) for r in rows],
        "n": [str(c[0]) for c in counts],
        "draws": [str(c[1]) for c in counts],
        "answers": [str(c[2]) for c in counts],
        "coverage": [_fmt(x, ".1%") for x in coverage],
        "accuracy": [_fmt(x, ".3f") for x in s["accuracy"]],
        "ci": [DASH if _isnan(lo) or _isnan(hi) else f"{lo:.3f}{DASH}{hi:.3f}"
               for lo, hi in zip(s["ci_low"], s["ci_high"], strict=True)],
        **{m: [_fmt(x, ".3f") for x in (s[m] if m in s else [math.nan] * len(s))]
           for m in others},
        "schema_compliance": [_fmt(x, ".1%") for x in s["schema_compliance"]],
        "parse_failure_rate": [_fmt(x, ".1%") for x in s["parse_failure_rate"]],
        "errors": [str(int(x)) for x in s["errors"]],
        "tokens": [DASH if _isnan(p) and _isnan(c) else f"{_fmt(p, '.0f')} + {_fmt(c, '.0f')}"
                   for p, c in zip(s["mean_prompt_tokens"], s["mean_completion_tokens"], strict=True)],
        "cost_per_1k": [_cost(r) for r in rows],
        "latency_p50_ms": [_fmt(x, ".0f") for x in s["latency_p50_ms"]],
        "latency_p95_ms": [_fmt(x, ".0f") for x in s["latency_p95_ms"]],
    })
    if not any(x < 1 for x in coverage if not math.isnan(x)):
        df = df.drop(columns=["coverage"])  # shown only when some answers are missing
    acc_name = a.metric_name("accuracy")
    df = df.rename(columns={**ARM_COLUMNS, "accuracy": acc_name,
                            **{m: a.metric_name(m) for m in others}})
    acc = pd.to_numeric(s["accuracy"], errors="coerce").reset_index(drop=True)
    best = acc.max() if acc.notna().any() else None

    def bold_best(row: pd.Series) -> list[str]:
        hit = best is not None and acc.iloc[row.name] == best
        return ["font-weight:700" if hit and c in (acc_name, "95% CI") else "" for c in row.index]

    styler = (df.style.hide(axis="index").format(escape="html").apply(bold_best, axis=1)
              .set_uuid("arms").set_table_attributes('class="arms"')
              .set_table_styles([{"selector": "th.col0, td.col0", "props": "text-align:left"},
                                 # long ids wrap (after '-' first) so the table fits the page
                                 {"selector": "th.col1, td.col1", "props": "text-align:left;"
                                  "white-space:normal;overflow-wrap:anywhere;min-width:7em"}]))
    return str(styler.to_html(doctype_html=False))


def _numbers(a: Analysis, meta: RunMeta) -> str:
    """The figures the verdict rests on (its `figures`, each named by its arm and metric), the
    decisive comparison and the rule, as a definition list."""
    items = [(f.label, f.text(a.metric_name(f.metric))) for f in a.verdict.figures]
    c = a.evidence.comparison
    if c is not None:
        d = c.delta
        items.append((f"{c.arm_a} {MINUS} {c.arm_b}", f"{a.metric_name(c.metric)} "
                      f"{100 * d.estimate:+.1f} points [{100 * d.low:+.1f}, {100 * d.high:+.1f}], "
                      f"Holm p = {c.p_adjusted:.3g}"))
    if a.plateau is not None:
        where = f" at k={a.plateau.k_star}" if a.plateau.k_star is not None else ""
        nxt = f"; next k to try: {a.plateau.next_k}" if a.plateau.next_k is not None else ""
        items.append(("few-shot curve", f"{a.plateau.status.replace('_', ' ')}{where}{nxt}"))
    if a.evidence.break_even_text:
        items.append(("break-even", a.evidence.break_even_text))
    dec = meta.decision
    items.append(("decision rule", f"alpha {dec.alpha}, min gain {dec.min_gain}, "
                  f"equivalence margin {dec.equivalence_margin}, "
                  f"monthly volume {dec.monthly_volume or 'not given'}"))
    return '<dl class="numbers">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def _incomplete(a: Analysis, meta: RunMeta) -> str:
    if a.complete:
        return ""
    expected = meta.expected_records
    return ('<p class="incomplete" id="incomplete" role="alert"><strong>Incomplete run</strong> '
            f"(status: {esc(meta.status)}): {len(a.results)} of {expected} results recorded. "
            f"{esc(meta.message or '')} Figures cover the examples finished so far; "
            "resume the run to complete them.</p>")


def _confusions(a: Analysis, top: int = 5) -> str:
    r = a.results
    df = r[r["prediction"].notna() & ~r["correct"].astype(bool) & (r["prediction"] != r["expected"])]
    if df.empty:
        return '<p class="muted">No confusions: every parsed prediction matched its label.</p>'
    parts = []
    for (strategy, k, kind), sub in df.groupby(["strategy", "k", "type"], sort=False):
        counts = sub.groupby(["expected", "prediction"]).size().sort_values(ascending=False, kind="stable")
        rows = "".join(f'<tr><td class="text">{label_html(e)}</td><td class="text">{label_html(p)}</td>'
                       f"<td>{n}</td></tr>" for (e, p), n in counts.head(top).items())
        parts.append(f'<div><h3>{esc(arm_name(strategy, k, kind))}</h3><div class="scroll">'
                     '<table class="labels"><tr><th class="text">expected</th>'
                     f'<th class="text">predicted</th><th>count</th></tr>{rows}</table></div></div>')
    return f'<div class="grid" id="confusions">{"".join(parts)}</div>'


def label_html(label: Any) -> str:
    """An escaped label that may also wrap after `_`, `/` or `.` (a <wbr> there), so
    `card_payment_wrong_exchange_rate` breaks between its words, never inside one."""
    text = _text(label)
    return "<wbr>".join(esc(part) for part in re.split(r"(?<=[_/.])(?=.)", text))


def _clip(text: Any, limit: int = 400) -> str:
    s = _text(text)
    return s if len(s) <= limit else s[:limit] + " …"


def _failures(a: Analysis, limit: int = 20) -> str:
    """The failure sample (see failure_sample) as a table."""
    failed = a.results[~a.results["correct"].astype(bool)]
    if failed.empty:
        return '<p class="muted">No failures.</p>'
    picked = failure_sample(a.results, limit)
    total = len(failed.drop_duplicates(["strategy", "k", "example_id"]))
    n_examples = failed["example_id"].nunique()
    rows = "".join(
        f'<tr><td class="text">{esc(arm_name(r["strategy"], r["k"], r["type"]))}</td>'
        f'<td class="text">{esc(r["example_id"])}</td>'
        f'<td class="text"><code class="out">{esc(_clip(r["input"]))}</code></td>'
        f'<td class="text label">{label_html(r["expected"])}</td>'
        f'<td class="text"><code class="out">{esc(_clip(r["output"]))}</code></td>'
        f'<td class="text">{esc(r["error_kind"])}{": " if not _isnan(r["error"]) else ""}'
        f'{esc(_clip(r["error"], 160))}</td></tr>' for _, r in picked.iterrows())
    shown = picked["example_id"].nunique()
    return (f'<p class="muted">{len(picked)} of {total} failed (arm, example) pairs, showing '
            f"{shown} of the {n_examples} failed examples; no example is repeated before every "
            "failed example has a row.</p>"
            '<div class="scroll"><table id="failures" class="fixed"><colgroup><col style="width:13%">'
            '<col style="width:6%"><col style="width:27%"><col style="width:14%"><col style="width:22%">'
            '<col></colgroup><tr><th class="text">arm</th><th class="text">id</th><th class="text">input'
            '</th><th class="text">expected</th><th class="text">output</th><th class="text">error</th>'
            f"</tr>{rows}</table></div>")


def _comparisons(a: Analysis) -> str:
    if a.comparisons.empty:
        return '<p class="muted">No comparisons.</p>'
    metric = "field F1" if (a.comparisons.get("metric") == "field_f1").any() else "accuracy"
    test = TEST_NAMES.get(str(a.comparisons["test"].iloc[0]), "McNemar p")
    rows = "".join(
        f'<tr><td class="text">{esc(r["arm_a"])}</td><td class="text">{esc(r["arm_b"])}</td>'
        f"<td>{r['n']}</td><td>{r['delta']:+.3f}</td><td>{_fmt(r['delta_ci_low'], '+.3f')} … "
        f"{_fmt(r['delta_ci_high'], '+.3f')}</td><td>{r['p_value']:.3g}</td>"
        f"<td>{r['p_adjusted']:.3g}</td><td>{'yes' if r['significant'] else 'no'}</td></tr>"
        for _, r in a.comparisons.iterrows())
    return ('<div class="scroll"><table id="comparisons"><tr><th class="text">arm</th>'
            f'<th class="text">vs</th><th>n</th><th>Δ {metric}</th><th>95% CI</th><th>{test}</th>'
            f"<th>Holm p</th><th>significant</th></tr>{rows}</table></div>")


def _prompts(meta: RunMeta) -> str:
    parts, seen = [], set()
    for arm in meta.arms:
        key = (arm.strategy, arm.k)
        if key in seen:
            continue
        seen.add(key)
        name = arm_name(arm.strategy, arm.k, arm.type)
        draw = " (draw 0)" if name != arm.strategy else ""
        parts.append(f"<details><summary>{esc(name)}"
                     f"{draw} — template {esc(arm.prompt_sha256)}</summary>"
                     f"<pre>{esc(arm.prompt_example)}</pre></details>")
    return f'<div id="prompts">{"".join(parts)}</div>'


def _metadata(meta: RunMeta) -> str:
    ds = meta.dataset
    models = "; ".join(f"{n}: {m.provider} {m.model}" for n, m in meta.models.items())
    items = {
        "config": meta.config_path, "config sha256": meta.config_sha256[:16],
        "eval set": f"{ds.eval} ({ds.n_eval} of {ds.eval_total} examples)",
        "dataset sha256": ds.sha256[:16],
        "training pool": f"{ds.train} ({ds.train_pool} examples, {ds.leaked} removed as leakage)",
        "labels": len(meta.labels), "models": models,
        "counts": ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in meta.counts.items()
                              if not isinstance(v, dict)),
        "started": meta.started_at, "finished": meta.finished_at,
        "status": meta.status, "harness": meta.harness_version,
        "versions": ", ".join(f"{k} {v}" for k, v in meta.versions.items()),
    }
    rows = "".join(f'<tr><th class="text">{esc(k)}</th><td class="text">{esc(v)}</td></tr>'
                   for k, v in items.items())
    return f'<table id="metadata">{rows}</table>'


def _task_sections(a: Analysis) -> str:
    if a.task_type == EXTRACTION:
        return extraction_sections(a)
    return f"<h2>Most frequent confusions</h2>{_confusions(a)}"


def render_html(a: Analysis, meta: RunMeta) -> str:
    """The whole report as one HTML string."""
    v = a.verdict
    reasons = "".join(f"<li>{esc(r)}</li>" for r in v.reasons)
    plateau = esc(a.plateau.reason) if a.plateau else "No few-shot sweep in this run."
    be = esc(a.evidence.break_even_text or "No fine-tuned arm to compare.")
    unavailable = "".join(f"<li>{esc(arm_name(r['strategy'], r['k'], r['type']))}: "
                          f"{esc(r['unavailable'])}</li>" for _, r in a.summary.iterrows()
                          if isinstance(r.get("unavailable"), str))
    unavailable = f'<ul class="muted">{unavailable}</ul>' if unavailable else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness report: {esc(meta.name)}</title><link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body>
<h1>{esc(meta.name)}: prompt or fine-tune?</h1>
{_incomplete(a, meta)}
<section class="verdict {esc(v.recommendation)}" id="verdict">
<div class="label">{esc(v.recommendation.replace('_', ' '))}</div>
<p class="sentence">{esc(v.sentence)}</p>
{_numbers(a, meta)}
<ul>{reasons}</ul></section>
<h2>Arms</h2><div class="scroll" id="arms">{arms_table(a)}</div>{unavailable}
<p class="muted">n = examples; draws = independent draws of the few-shot examples, each used on
every example; answers = scored answers over all draws (coverage, where shown: answers over the
answers planned). Accuracy interval: Wilson for one draw, two-way bootstrap over examples and draws
otherwise. Best accuracy in bold.</p>{price_notes(a.summary)}
<h2>Learning curve</h2><figure>{curve_svg(a)}<figcaption>{plateau}</figcaption></figure>
{design_space_section(a)}{cascade_section(a)}
<h2>Paired comparisons</h2>{_comparisons(a)}{planning_note(a)}{clusters_note(a)}
<p class="muted">Δ = difference of the decision metric ({esc(meta.decision.metric)}) on the same
examples (paired bootstrap interval); p from McNemar's exact test for accuracy, from the paired
bootstrap for field F1; Holm-adjusted across this run's comparisons.</p>
<h2>Cost</h2><p>{be}</p>{volume_section(a)}
{_task_sections(a)}
<h2>Sample of failures</h2>{_failures(a)}
<h2>Prompts</h2>{_prompts(meta)}
<h2>Run</h2>{_metadata(meta)}
<footer>Made by harness {esc(meta.harness_version)} from results.jsonl and run.json;
rebuild with <code>harness report RUN_DIR</code>.</footer>
</body></html>
"""
