"""The self-contained HTML report: verdict with the numbers behind it, arms table, learning curve
(inline SVG), paired comparisons, confusions, failures, prompts and run metadata.

One file that opens from disk: no script, no CDN, no network. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence; every data string is escaped.
The output is deterministic: the same records and metadata give the same bytes (fixed Styler
uuid, fixed matplotlib hash salt, no SVG metadata), so `harness report` reproduces it exactly.

The markup is in jinja2 templates (templates/report.html.j2, one include per section, and its
stylesheet templates/report.css); this module and the section modules compute what they show,
formatted: numbers as text, table rows, and the SVG charts and the Styler's arms table, which
alone go in as Markup. Every other value is escaped on output (`_finalize`: html.escape).
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from harness.analysis import Analysis
from harness.kinds import EXTRACTION
from harness.model.pricing import is_fine_tuned_id
from harness.report.cascade import cascade_context
from harness.report.chart import curve_svg
from harness.report.failures import failure_sample
from harness.report.fields import extraction_context
from harness.report.sequential import sequential_context
from harness.report.space import TEST_NAMES, clusters_context, design_space_context, planning_sentence
from harness.report.volume import volume_context
from harness.running.records import RunMeta
from harness.strategies import arm_name

if TYPE_CHECKING:
    import jinja2

DASH, MINUS = "\u2013", "\u2212"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TEMPLATES = "templates"  # beside this module, shipped as package data (pyproject.toml)
PAGE, MACROS = "report.html.j2", "macros.html.j2"
# the stylesheet the page's <style> tag includes (templates/report.css)
CSS = (resources.files("harness.report") / TEMPLATES / "report.css").read_text(encoding="utf-8")

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


def _finalize(value: Any) -> Any:
    """Every `{{ value }}` of the templates, before jinja2's autoescape: Markup (the charts, the
    arms table, the output of a macro or include) as it is; anything else escaped as `esc` does
    (html.escape, quotes too: `&#x27;`, not markupsafe's `&#39;`), None and NaN as empty."""
    return value if hasattr(value, "__html__") else Markup(esc(value))


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment, made once: autoescape, undefined names an error, the
    templates compiled once and never reloaded. jinja2 is imported only here."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, finalize=_finalize, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, auto_reload=False)


def _macro(name: str) -> Any:
    """A macro of templates/macros.html.j2, callable from Python (returns Markup)."""
    return getattr(environment().get_template(MACROS).module, name)


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


def price_note_items(summary: pd.DataFrame) -> list[dict[str, str]]:
    """The arms whose cost is 'unknown*', once per (model, model id): the `price:` block to add
    (`price`, or `price.fine_tuned` for a fine-tuned id) to `models.MODEL`."""
    notes: dict[tuple[str, str], dict[str, str]] = {}
    for _, r in summary.iterrows():
        if not _no_price(r):
            continue
        model, model_id = str(r["model"]), str(r["model_id"])
        key = "price.fine_tuned" if is_fine_tuned_id(model_id) else "price"
        notes.setdefault((model, model_id), {"model": model, "model_id": model_id, "key": key})
    return list(notes.values())


def price_notes(summary: pd.DataFrame) -> str:
    """The footnote to 'unknown*' costs as HTML (the macro `price_notes`); "" when every cost is
    known."""
    return str(_macro("price_notes")(price_note_items(summary)))


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


def _numbers(a: Analysis, meta: RunMeta) -> list[tuple[str, str]]:
    """The figures the verdict rests on (its `figures`, each named by its arm and metric), the
    decisive comparison and the rule: (term, text) pairs."""
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
    return items


def verdict_context(a: Analysis, meta: RunMeta) -> dict[str, Any]:
    """The verdict box (templates/verdict.html.j2): the verdict, its sentence, the numbers
    behind it and its reasons."""
    v = a.verdict
    return {"recommendation": v.recommendation, "label": v.recommendation.replace("_", " "),
            "sentence": v.sentence, "numbers": _numbers(a, meta), "reasons": list(v.reasons)}


def incomplete_context(a: Analysis, meta: RunMeta) -> dict[str, str] | None:
    """The incomplete-run banner's figures; None for a complete run."""
    if a.complete:
        return None
    return {"status": _text(meta.status), "recorded": str(len(a.results)),
            "expected": str(meta.expected_records), "message": _text(meta.message or "")}


def label_parts(label: Any) -> list[str]:
    """A label (unescaped) cut after each `_`, `/` or `.`: the macro `label` joins the parts
    with <wbr>, so `card_payment_wrong_exchange_rate` breaks between its words, never inside one."""
    return re.split(r"(?<=[_/.])(?=.)", _text(label))


def label_html(label: Any) -> str:
    """An escaped label that may also wrap after `_`, `/` or `.` (a <wbr> there)."""
    return str(_macro("label")(label_parts(label)))


def confusions_context(a: Analysis, top: int = 5) -> list[tuple[str, list[tuple[list[str], list[str], str]]]]:
    """Per arm, its `top` most frequent (expected, predicted, count) confusions (labels cut by
    `label_parts`); empty when every parsed prediction matched its label."""
    r = a.results
    df = r[r["prediction"].notna() & ~r["correct"].astype(bool) & (r["prediction"] != r["expected"])]
    out = []
    for (strategy, k, kind), sub in df.groupby(["strategy", "k", "type"], sort=False):
        counts = sub.groupby(["expected", "prediction"]).size().sort_values(ascending=False, kind="stable")
        out.append((arm_name(strategy, k, kind), [(label_parts(e), label_parts(p), str(n))
                                                  for (e, p), n in counts.head(top).items()]))
    return out


def _clip(text: Any, limit: int = 400) -> str:
    s = _text(text)
    return s if len(s) <= limit else s[:limit] + " …"


def failures_context(a: Analysis, limit: int = 20) -> dict[str, Any] | None:
    """The failure sample (see failure_sample): its counts and rows; None without a failure."""
    failed = a.results[~a.results["correct"].astype(bool)]
    if failed.empty:
        return None
    picked = failure_sample(a.results, limit)
    rows = [{"arm": arm_name(r["strategy"], r["k"], r["type"]), "example_id": _text(r["example_id"]),
             "input": _clip(r["input"]), "expected": label_parts(r["expected"]),
             "output": _clip(r["output"]),
             "error": _text(r["error_kind"]) + ("" if _isnan(r["error"]) else ": ")
             + _clip(r["error"], 160)} for _, r in picked.iterrows()]
    return {"rows": rows, "shown_pairs": str(len(picked)),
            "total_pairs": str(len(failed.drop_duplicates(["strategy", "k", "example_id"]))),
            "shown_examples": str(picked["example_id"].nunique()),
            "failed_examples": str(failed["example_id"].nunique())}


def comparisons_context(a: Analysis) -> dict[str, Any] | None:
    """The paired comparisons' rows, the metric and the test's name; None without any."""
    cmp = a.comparisons
    if cmp.empty:
        return None
    rows = [(_text(r["arm_a"]), _text(r["arm_b"]), str(r["n"]), f"{r['delta']:+.3f}",
             f"{_fmt(r['delta_ci_low'], '+.3f')} … {_fmt(r['delta_ci_high'], '+.3f')}",
             f"{r['p_value']:.3g}", f"{r['p_adjusted']:.3g}", "yes" if r["significant"] else "no")
            for _, r in cmp.iterrows()]
    return {"rows": rows, "metric": "field F1" if (cmp.get("metric") == "field_f1").any() else "accuracy",
            "test": TEST_NAMES.get(str(cmp["test"].iloc[0]), "McNemar p")}


def _prompts(meta: RunMeta) -> list[tuple[str, str, str, str]]:
    """(arm, " (draw 0)" or "", template sha256, the prompt of one example), once per strategy
    and k."""
    out, seen = [], set()
    for arm in meta.arms:
        key = (arm.strategy, arm.k)
        if key in seen:
            continue
        seen.add(key)
        name = arm_name(arm.strategy, arm.k, arm.type)
        out.append((name, " (draw 0)" if name != arm.strategy else "", _text(arm.prompt_sha256),
                    _text(arm.prompt_example)))
    return out


def _metadata(meta: RunMeta) -> list[tuple[str, str]]:
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
    return [(k, _text(v)) for k, v in items.items()]


def page_context(a: Analysis, meta: RunMeta) -> dict[str, Any]:
    """Everything templates/report.html.j2 shows, computed and formatted: one entry per section."""
    unavailable = [(arm_name(r["strategy"], r["k"], r["type"]), r["unavailable"])
                   for _, r in a.summary.iterrows() if isinstance(r.get("unavailable"), str)]
    return {
        "csp": Markup(CSP), "name": _text(meta.name), "incomplete": incomplete_context(a, meta),
        "verdict": verdict_context(a, meta),
        "arms": {"table": Markup(arms_table(a)), "unavailable": unavailable,
                 "price_notes": price_note_items(a.summary)},
        "curve": Markup(curve_svg(a)),
        "curve_caption": a.plateau.reason if a.plateau else "No few-shot sweep in this run.",
        "space": design_space_context(a), "cascades": cascade_context(a),
        "comparisons": comparisons_context(a), "planning": planning_sentence(a),
        "sequential": sequential_context(a),
        "clusters": clusters_context(a), "decision_metric": _text(meta.decision.metric),
        "break_even": a.evidence.break_even_text or "No fine-tuned arm to compare.",
        "volume": volume_context(a),
        "extraction": extraction_context(a) if a.task_type == EXTRACTION else None,
        "confusions": [] if a.task_type == EXTRACTION else confusions_context(a),
        "failures": failures_context(a), "prompts": _prompts(meta), "metadata": _metadata(meta),
        "harness_version": _text(meta.harness_version),
    }


def render_html(a: Analysis, meta: RunMeta, diff: Mapping[str, Any] | None = None) -> str:
    """The whole report as one HTML string (templates/report.html.j2 over `page_context`);
    `diff` (report.diff.diff_context) adds the section on what changed against another run."""
    return environment().get_template(PAGE).render({**page_context(a, meta), "diff": diff})
