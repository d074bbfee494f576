"""The report's prompt-design-space section: what was tried (k, selection, variants, voting)
with each setting's best arm and paired gain over zero-shot, the self-consistency table, and
the note on what per-input examples cost (they defeat a shared-prefix prompt cache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.analysis import Analysis
from harness.analysis.calibration import expected_calibration_error
from harness.analysis.space import untried_text
from harness.report.fields import DASH, _e, _num, _pct
from harness.strategies import arm_name


def _shown(x: Any, form: Callable[[float], str]) -> str:
    """`form(x)`, or a dash where the figure is missing."""
    return DASH if _num(x) == DASH else form(float(x))


def _points(x: Any) -> str:
    return _shown(x, lambda v: f"{100 * v:+.1f}")


def _count(x: Any) -> str:
    return _shown(x, lambda v: f"{v:,.0f}")


def _ms(x: Any) -> str:
    return _shown(x, lambda v: f"{v / 1000:.2f} s")


def _usd(x: Any) -> str:
    return _shown(x, lambda v: f"${v:.4g}")


def _gain(r: pd.Series) -> str:
    if _num(r["gain"]) == DASH:
        return DASH
    return (f"{_points(r['gain'])} [{_points(r['gain_ci_low'])}, {_points(r['gain_ci_high'])}]"
            f", Holm p = {float(r['p_adjusted']):.3g}")


def tried_table(a: Analysis) -> str:
    """One row per setting tried, its best arm and that arm's gain over zero-shot."""
    t = a.tried
    if t is None or not len(t):
        return '<p class="muted">No prompting arm in this run.</p>'
    metric = str(t.iloc[0]["metric"]).replace("_", " ")
    rows = "".join(
        f"<tr><td>{_e(r['dimension'])}</td><td>{_e(r['setting'])}</td><td>{int(r['arms'])}</td>"
        f"<td>{_e(r['best_arm'])}</td><td>{_num(r['best'])}</td><td>{_gain(r)}</td></tr>"
        for _, r in t.iterrows())
    return (f'<table id="tried"><tr><th>dimension</th><th>setting</th><th>arms</th>'
            f"<th>best arm</th><th>best {_e(metric)}</th><th>gain over zero-shot, points "
            f"[95% CI]</th></tr>{rows}</table>")


def voting_table(summary: pd.DataFrame) -> str:
    """Self-consistency arms: single-sample against voted accuracy, and what the vote costs."""
    if "samples" not in summary:
        return ""
    v = summary[summary["samples"] > 1]
    if not len(v):
        return ""
    rows = "".join(
        f"<tr><td>{_e(arm_name(r['strategy'], r['k'], r['type']))}</td><td>{int(r['samples'])}"
        f"</td><td>{_num(r['single_sample_accuracy'])}</td><td>{_num(r['accuracy'])}</td>"
        f"<td>{_points(r['vote_gain'])} [{_points(r['vote_gain_ci_low'])}, "
        f"{_points(r['vote_gain_ci_high'])}]</td><td>{_pct(r['mean_vote_share'])}</td>"
        f"<td>{_count(r['mean_completion_tokens'])}</td></tr>" for _, r in v.iterrows())
    return ('<h3>Self-consistency</h3><table id="voting"><tr><th>arm</th><th>samples</th>'
            "<th>one sample</th><th>vote</th><th>vote gain, points [95% CI]</th>"
            "<th>mean vote share</th><th>completion tokens / query (all samples)</th></tr>"
            f"{rows}</table><p class=\"muted\">One sample: the mean share of samples right on "
            "their own. Cost and tokens count every sample.</p>")


def cache_note(summary: pd.DataFrame) -> str:
    """Per-input examples change the prompt's prefix for every input: the measured cost."""
    if "selection" not in summary:
        return ""
    per = summary[summary["selection"].fillna("").str.startswith("similar")]
    if not len(per):
        return ""
    fixed = summary[summary["selection"].notna() & ~summary.index.isin(per.index)]
    items = []
    for _, r in per.iterrows():
        same = fixed[(fixed["k"] == r["k"]) & (fixed["model"] == r["model"])]
        vs = ""
        if len(same):
            f = same.iloc[0]
            vs = (f"; {_e(arm_name(f['strategy'], f['k'], f['type']))} (the same examples for "
                  f"every input): {_count(f['mean_prompt_tokens'])} prompt tokens, p50 latency "
                  f"{_ms(f['latency_p50_ms'])}, {_usd(f['cost_per_1k'])} per 1k queries")
        items.append(f"<li>{_e(arm_name(r['strategy'], r['k'], r['type']))}: "
                     f"{_count(r['mean_prompt_tokens'])} prompt tokens, p50 latency "
                     f"{_ms(r['latency_p50_ms'])}, {_usd(r['cost_per_1k'])} per 1k queries"
                     f"{vs}</li>")
    return ('<p class="muted" id="cache-note">Examples chosen for each input (selection: '
            "similar) make every prompt's prefix different, so a shared-prefix prompt cache "
            "(OpenAI's cached input tokens, llama.cpp's reuse of the previous prompt) cannot "
            "serve them: each query pays for its whole prompt. Measured per query:</p>"
            f"<ul class=\"muted\">{''.join(items)}</ul>")


def calibration_table(a: Analysis) -> str:
    """Confidence bins against accuracy per arm, and its expected calibration error."""
    t = a.calibration
    if t is None or not len(t):
        return ""
    ece = expected_calibration_error(t)
    rows = "".join(
        f"<tr><td>{_e(arm_name(str(s), int(k), 'few_shot' if int(k) else 'zero_shot'))}</td>"
        f"<td>{_num(e)}</td><td>"
        + "; ".join(f"{r['bin_low']:.1f}{DASH}{r['bin_high']:.1f}: n={int(r['n'])}, confidence "
                    f"{r['mean_confidence']:.2f}, accuracy {r['accuracy']:.2f}"
                    for _, r in t[(t["strategy"] == s) & (t["k"] == k)].iterrows())
        + "</td></tr>" for (s, k), e in ece.items())
    return ('<h3>Calibration</h3><table id="calibration"><tr><th>arm</th><th>ECE</th>'
            f"<th>confidence bins (vote share, or the answer's token probability) against "
            f"accuracy</th></tr>{rows}</table>")


TEST_NAMES = {"mcnemar": "McNemar p", "paired_bootstrap": "bootstrap p",
              "clustered_mcnemar": "clustered McNemar p", "cluster_bootstrap": "cluster bootstrap p"}


def clusters_note(a: Analysis) -> str:
    """A clustered run (`dataset.cluster`): its clusters, each arm's design effect, and how
    the intervals and tests account for them."""
    c = a.clustering
    if c is None:
        return ""
    s = a.summary
    effects = "; ".join(f"{_e(arm_name(r['strategy'], r['k'], r['type']))} "
                        f"{_shown(r['design_effect'], lambda v: f'{v:.2f}')}"
                        for _, r in s.iterrows()) if "design_effect" in s else ""
    return (f'<p id="clusters">Clustered eval (dataset.cluster: {_e(c.field)}): '
            f"{c.clusters} clusters, {c.mean_cluster_size:.1f} examples each on average "
            f"(largest {c.details.get('max_cluster_size')}). Design effect of each arm's accuracy (its "
            f"variance over that of independent examples): {effects}. Intervals: "
            f"{_e(c.interval)}; paired bootstraps and the plateau's steps resample clusters; "
            f"paired test: {_e(c.paired_test)}.</p>")


def planning_note(a: Analysis) -> str:
    """What the eval can detect (power.planning), under the comparisons table."""
    return f'<p id="planning">{_e(a.planning.sentence)}</p>' if a.planning else ""


def design_space_section(a: Analysis) -> str:
    """The whole section: what was tried, the levers left, voting and the cache note."""
    left = untried_text(a.untried)
    return (f"<h2>What was tried</h2>{tried_table(a)}"
            + (f'<p id="untried">{_e(left)}</p>' if left else "")
            + voting_table(a.summary) + calibration_table(a) + cache_note(a.summary))


__all__ = ["TEST_NAMES", "cache_note", "clusters_note", "design_space_section", "planning_note",
           "tried_table", "voting_table"]
