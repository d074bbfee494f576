"""The learning curve of report.html: an inline SVG, as wide as the page, its legend below
the plot so that it never covers a point."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import pandas as pd

from harness.analysis import Analysis
from harness.analysis.arms import row_name
from harness.analysis.curves import zero_shot_point
from harness.analysis.results import called
from harness.strategies import is_fine_tuned


def _missing(x: Any) -> bool:
    """True for None, NaN and pandas' missing values."""
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


COLORS = ("#1f5fbf", "#b3411f", "#6a3d9a", "#1b7f79", "#8c6d1f", "#c2185b")


def chart_style() -> Any:
    """The rc context every chart is drawn and saved in: text as text, deterministic ids."""
    import matplotlib as mpl

    return mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "harness", "font.size": 10,
                           "font.family": "DejaVu Sans"})


def compact(value: float, prefix: str = "") -> str:
    """A tick label of a log axis in plain text: 1K, 10K, 1M, $0.01, $10K (no mathtext, whose
    first use costs matplotlib half a second)."""
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{prefix}{value / size:g}{unit}"
    return f"{prefix}{value:g}"


def log_axes(ax: Any, x_prefix: str = "", y_prefix: str = "") -> None:
    """Log scales on both axes, ticked and labelled at the powers of ten only (`compact`)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, prefix in ((ax.xaxis, x_prefix), (ax.yaxis, y_prefix)):
        axis.set_major_locator(LogLocator(base=10))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos, p=prefix: compact(v, p)))
        axis.set_minor_locator(NullLocator())  # (minor ticks cost most of the drawing)


def figure_svg(fig: Any, attributes: str) -> str:
    """A matplotlib figure as inline SVG (call inside `chart_style()`): no date or creator,
    so identical bytes on every rebuild; as wide as the page, its height from the viewBox
    (matplotlib's fixed size in pt dropped); `attributes` (id, role, aria-label) on the <svg>."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    head, rest = svg.split(">", 1)
    head = re.sub(r'\s(?:width|height)="[^"]*"', "", head)
    head = head.replace("<svg", f'<svg {attributes} width="100%"', 1)
    return f"{head}>{rest}"


def curve_svg(a: Analysis) -> str:
    """Accuracy vs k with its interval band (one line per few-shot curve), zero-shot and
    fine-tuned reference lines, and the plateau mark on the curve it was judged on.

    k is placed on evenly spaced categories (0, 1, 2, 4, ...), so doubling steps look alike and
    zero-shot (k=0) sits on the curve. The SVG is deterministic (fixed hash salt, no date).
    """
    if a.curve.empty:
        return '<p class="muted">No few-shot sweep in this run.</p>'
    from matplotlib.figure import Figure

    c = a.curve.reset_index(drop=True)
    summary = a.summary
    metric = "field F1" if a.evidence.metric == "field_f1" and "field_f1" in c else "accuracy"
    if metric == "field F1":  # plot the decision metric: field F1 and its interval
        c = c.assign(accuracy=c["field_f1"], ci_low=c["field_f1_ci_low"],
                     ci_high=c["field_f1_ci_high"])
        summary = summary.assign(accuracy=summary["field_f1"])
    ks = sorted({int(k) for k in c["k"]})
    xs = list(range(len(ks)))
    x_of = {k: i for i, k in enumerate(ks)}
    curves = list(dict.fromkeys(c["strategy"]))
    judged = a.plateau.strategy if a.plateau is not None and a.plateau.strategy else curves[0]
    first = summary[summary["strategy"] == judged]
    zs = zero_shot_point(summary, first.iloc[0]) if len(first) else summary.iloc[:0]
    zs = zs[zs["n"] > 0]  # the judged curve's own k=0 point, named as such
    ft = summary[summary["type"].map(is_fine_tuned).astype(bool) & (summary["errors"] < summary["n"])]
    lows = [v for v in [*c["ci_low"], *zs["accuracy"], *ft["accuracy"]] if not _missing(v)]
    ymin = max(0.0, math.floor((min(lows, default=0.0) - 0.05) * 10) / 10)
    with chart_style():
        fig = Figure(figsize=(10, 4.4), layout="constrained")
        ax = fig.subplots()
        ax.patch.set_gid("plot-area")
        for n, strategy in enumerate(curves):  # one line (and interval band) per curve
            part = c[c["strategy"] == strategy]
            px = [x_of[int(k)] for k in part["k"]]
            color = COLORS[n % len(COLORS)]
            ax.fill_between(px, part["ci_low"], part["ci_high"], alpha=0.18 if n == 0 else 0.08,
                            color=color, lw=0, label="95% CI" if n == 0 else None)
            ax.plot(px, part["accuracy"], "o-", color=color, label=str(strategy))
        if len(zs):
            ax.axhline(float(zs.iloc[0]["accuracy"]), color="#777", ls="--", lw=1,
                       label=called("zero-shot", row_name(zs.iloc[0])))
        if len(ft):
            ax.axhline(float(ft.iloc[0]["accuracy"]), color="#2e7d32", ls="-.", lw=1.5,
                       label=called("fine-tuned", row_name(ft.iloc[0])))
        star = c[(c["strategy"] == (a.plateau.strategy or curves[0]))
                 & (c["k"] == a.plateau.k_star)] if a.plateau is not None else c.iloc[:0]
        if len(star) and a.plateau is not None:
            ax.plot([x_of[int(a.plateau.k_star or 0)]], [float(star.iloc[0]["accuracy"])],
                    marker="*", ms=16, color="#c77700", ls="none",
                    label=f"plateau (k={a.plateau.k_star})")
        ax.set_xticks(xs, [str(k) for k in ks])
        ax.set_xlim(-0.3, len(xs) - 0.7)
        ax.set_xlabel("examples in the prompt (k)")
        ax.set_ylabel(metric)
        ax.set_ylim(ymin, 1.0)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        one_row = sum(len(t) for t in labels) <= 100
        # outside the axes, below them: it never covers a point, whatever the accuracy
        legend = fig.legend(handles, labels, loc="outside lower center", fontsize=9, frameon=False,
                            ncols=len(labels) if one_row else 3)
        legend.set_gid("legend")
        label = f"Learning curve: {metric} against the number of examples in the prompt"
        return figure_svg(fig, f'id="learning-curve" role="img" aria-label="{label}"')
