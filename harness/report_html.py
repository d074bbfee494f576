"""The self-contained HTML report: verdict, arms table, learning curve (inline SVG), confusions,
failures, prompts and run metadata. No CDN, no script; every data string is escaped."""

from __future__ import annotations

import html
import io
import math
from typing import Any

import pandas as pd

from harness.analysis import Analysis

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5rem;color:#1d2433}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.verdict{padding:1rem 1.2rem;border-radius:8px;border-left:6px solid;margin:1rem 0}
.fine_tune{background:#eaf6ec;border-color:#2e7d32}.keep_prompting{background:#fff6e0;border-color:#c77700}
.prompting_sufficient{background:#e8f0fb;border-color:#1f5fbf}
.verdict .label{font-weight:700;text-transform:uppercase;font-size:.8rem;letter-spacing:.05em}
.verdict p{margin:.3rem 0;font-size:1.1rem}.incomplete{background:#fdecea;padding:.6rem 1rem;
border-radius:6px;color:#8a1c1c}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .45rem;text-align:right;vertical-align:top}
th{background:#f4f5f7}td.text,th.text{text-align:left}
.scroll{overflow-x:auto}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f9;padding:.6rem;border-radius:6px;
font-size:.8rem}svg{max-width:100%;height:auto}.muted{color:#666;font-size:.85rem}
@media print{details{display:block}details>*{display:block}body{max-width:none}}
"""

ARM_COLUMNS = {
    "arm": "arm", "n": "n", "accuracy": "accuracy", "ci": "95% CI", "macro_f1": "macro-F1",
    "schema_compliance": "schema ok", "parse_failure_rate": "parse fail", "errors": "errors",
    "tokens": "tokens/query", "cost_per_1k": "USD / 1k queries", "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
}


def esc(value: Any) -> str:
    """HTML-escape any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _arm_name(row: Any) -> str:
    return f"{row['strategy']} (k={row['k']})" if row["type"] == "few_shot" else str(row["strategy"])


def _fmt(x: Any, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec)


def arms_table(a: Analysis) -> str:
    """The arms table, built with pandas' Styler (values escaped)."""
    s = a.summary
    df = pd.DataFrame({
        "arm": [_arm_name(r) for _, r in s.iterrows()],
        "n": s["n"],
        "accuracy": [_fmt(x, ".3f") for x in s["accuracy"]],
        "ci": [f"{_fmt(lo, '.3f')}–{_fmt(hi, '.3f')}" for lo, hi in zip(s["ci_low"], s["ci_high"],
                                                                        strict=True)],
        "macro_f1": [_fmt(x, ".3f") for x in s["macro_f1"]],
        "schema_compliance": [_fmt(x, ".1%") for x in s["schema_compliance"]],
        "parse_failure_rate": [_fmt(x, ".1%") for x in s["parse_failure_rate"]],
        "errors": s["errors"],
        "tokens": [f"{_fmt(p, '.0f')} + {_fmt(c, '.0f')}" for p, c in
                   zip(s["mean_prompt_tokens"], s["mean_completion_tokens"], strict=True)],
        "cost_per_1k": [_fmt(x, ".4f") for x in s["cost_per_1k"]],
        "latency_p50_ms": [_fmt(x, ".0f") for x in s["latency_p50_ms"]],
        "latency_p95_ms": [_fmt(x, ".0f") for x in s["latency_p95_ms"]],
    }).rename(columns=ARM_COLUMNS)
    styler = (df.style.hide(axis="index").format(escape="html")
              .set_table_attributes('class="arms" id="arms-table"')
              .set_table_styles([{"selector": "th.col0, td.col0", "props": "text-align:left"}]))
    return styler.to_html(doctype_html=False)


def curve_svg(a: Analysis) -> str:
    """Accuracy vs k with its interval band, zero-shot / fine-tuned reference lines, plateau mark."""
    if a.curve.empty:
        return '<p class="muted">No few-shot sweep in this run.</p>'
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "harness", "font.size": 10})
    fs = a.curve[a.curve["k"] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    xs = [int(k) for k in fs["k"]]
    ax.fill_between(xs, fs["ci_low"], fs["ci_high"], alpha=0.2, color="#1f5fbf", label="95% CI")
    ax.plot(xs, fs["accuracy"], "o-", color="#1f5fbf", label=str(fs.iloc[0]["strategy"]))
    zs = a.summary[a.summary["type"] == "zero_shot"]
    if len(zs):
        ax.axhline(zs.iloc[0]["accuracy"], color="#888", ls="--", label="zero-shot")
    ft = a.summary[(a.summary["type"] == "fine_tuned") & (a.summary["errors"] < a.summary["n"])]
    if len(ft):
        ax.axhline(ft.iloc[0]["accuracy"], color="#2e7d32", ls="-.", label="fine-tuned")
    if a.plateau is not None and a.plateau.k_star is not None and a.plateau.k_star in xs:
        y = float(fs[fs["k"] == a.plateau.k_star]["accuracy"].iloc[0])
        ax.plot([a.plateau.k_star], [y], marker="*", ms=16, color="#c77700", ls="none",
                label=f"plateau (k={a.plateau.k_star})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("examples in the prompt (k)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):].replace("<svg", '<svg id="learning-curve" role="img"', 1)


def _confusions(a: Analysis, top: int = 5) -> str:
    df = a.results[a.results["prediction"].notna() & ~a.results["correct"].astype(bool)]
    if df.empty:
        return '<p class="muted">No confusions.</p>'
    parts = []
    for (strategy, k), sub in df.groupby(["strategy", "k"], sort=False):
        counts = sub.groupby(["expected", "prediction"]).size().sort_values(ascending=False)
        rows = "".join(f'<tr><td class="text">{esc(e)}</td><td class="text">{esc(p)}</td>'
                       f"<td>{n}</td></tr>" for (e, p), n in counts.head(top).items())
        parts.append(f"<details><summary>{esc(strategy)} (k={k})</summary><table>"
                     '<tr><th class="text">expected</th><th class="text">predicted</th>'
                     f"<th>count</th></tr>{rows}</table></details>")
    return "".join(parts)


def _failures(a: Analysis, limit: int = 20) -> str:
    df = a.results[~a.results["correct"].astype(bool)].head(limit)
    if df.empty:
        return '<p class="muted">No failures.</p>'
    rows = "".join(
        f'<tr><td class="text">{esc(r["strategy"])} k={r["k"]}</td><td class="text">'
        f'{esc(r["input"])}</td><td class="text">{esc(r["expected"])}</td><td class="text">'
        f'{esc(r["output"] or r["error"])}</td><td class="text">{esc(r["error_kind"])}</td></tr>'
        for _, r in df.iterrows())
    return ('<div class="scroll"><table id="failures"><tr><th class="text">arm</th>'
            '<th class="text">input</th><th class="text">expected</th><th class="text">output</th>'
            f'<th class="text">error</th></tr>{rows}</table></div>')


def _comparisons(a: Analysis) -> str:
    if a.comparisons.empty:
        return '<p class="muted">No comparisons.</p>'
    rows = "".join(
        f'<tr><td class="text">{esc(r["arm_a"])}</td><td class="text">{esc(r["arm_b"])}</td>'
        f"<td>{r['n']}</td><td>{r['delta']:+.3f}</td><td>{_fmt(r['delta_ci_low'], '+.3f')} … "
        f"{_fmt(r['delta_ci_high'], '+.3f')}</td><td>{r['p_value']:.3g}</td>"
        f"<td>{r['p_adjusted']:.3g}</td><td>{'yes' if r['significant'] else 'no'}</td></tr>"
        for _, r in a.comparisons.iterrows())
    return ('<table id="comparisons"><tr><th class="text">arm</th><th class="text">vs</th><th>n</th>'
            "<th>Δ accuracy</th><th>95% CI</th><th>McNemar p</th><th>Holm p</th>"
            f"<th>significant</th></tr>{rows}</table>")


def _prompts(meta: dict[str, Any]) -> str:
    parts, seen = [], set()
    for arm in meta["arms"]:
        key = (arm["strategy"], arm["k"])
        if key in seen:
            continue
        seen.add(key)
        name = f"{arm['strategy']} (k={arm['k']})" if arm["type"] == "few_shot" else arm["strategy"]
        parts.append(f"<details><summary>{esc(name)} — template {esc(arm['prompt_sha256'])}</summary>"
                     f"<pre>{esc(arm['prompt_example'])}</pre></details>")
    return "".join(parts)


def _metadata(meta: dict[str, Any]) -> str:
    ds = meta["dataset"]
    items = {
        "config": meta["config"]["path"], "config sha256": meta["config"]["sha256"][:16],
        "eval set": f"{ds['eval']} ({ds['n_eval']} of {ds['eval_total']} examples)",
        "dataset sha256": ds["sha256"][:16],
        "training pool": f"{ds['train']} ({ds['train_pool']} examples, {ds['leaked']} removed as leakage)",
        "labels": len(meta["labels"]), "started": meta.get("started_at"),
        "finished": meta.get("finished_at"), "status": meta.get("status"),
        "versions": ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
    }
    rows = "".join(f'<tr><th class="text">{esc(k)}</th><td class="text">{esc(v)}</td></tr>'
                   for k, v in items.items())
    return f'<table id="metadata">{rows}</table>'


def render_html(a: Analysis, meta: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    v = a.verdict
    warn = "" if a.complete else (
        '<p class="incomplete" id="incomplete">This run is incomplete: '
        f"{esc(meta.get('status'))}. {esc(meta.get('message') or '')} Figures cover the examples "
        "finished so far.</p>")
    reasons = "".join(f"<li>{esc(r)}</li>" for r in v.reasons)
    plateau = esc(a.plateau.reason) if a.plateau else "no few-shot sweep"
    be = esc(a.evidence.get("break_even_text", "no fine-tuned arm to compare"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness report: {esc(meta['name'])}</title><style>{CSS}</style></head>
<body>
<h1>{esc(meta['name'])}: prompt or fine-tune?</h1>
<div class="verdict {esc(v.recommendation)}" id="verdict">
<div class="label">{esc(v.recommendation.replace('_', ' '))}</div><p>{esc(v.sentence)}</p>
<ul>{reasons}</ul></div>
{warn}
<h2>Arms</h2><div class="scroll">{arms_table(a)}</div>
<h2>Learning curve</h2>{curve_svg(a)}<p>{plateau}</p>
<h2>Paired comparisons</h2>{_comparisons(a)}
<p class="muted">Δ = accuracy difference on the same examples (paired bootstrap interval);
p from McNemar's exact test, Holm-adjusted across this run's comparisons.</p>
<h2>Cost</h2><p>{be}</p>
<h2>Most frequent confusions</h2>{_confusions(a)}
<h2>Sample of failures</h2>{_failures(a)}
<h2>Prompts</h2>{_prompts(meta)}
<h2>Run</h2>{_metadata(meta)}
</body></html>
"""
