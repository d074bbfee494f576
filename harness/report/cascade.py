"""The report's cascade section (`type: cascade`): per cascade, its cost-accuracy frontier as a
table and a chart, the operating point held out from the examples that chose it, and its
paired comparisons with each arm alone. This module computes them; templates/cascade.html.j2
lays them out."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from harness.analysis import Analysis
from harness.analysis.results import CascadeResult, FrontierPoint, HeldOut
from harness.kinds import ArmId
from harness.report.chart import chart_style, figure_svg
from harness.report.fields import DASH, _e, _num


def _cost(c: CascadeResult, r: FrontierPoint | HeldOut) -> str:
    if c.cost_measure == "cost_per_1k" and r.cost_per_1k is not None:
        return f"${r.cost_per_1k:.4g}"
    return f"{r.mean_latency_ms / 1000:.2f} s"


def frontier_svg(c: CascadeResult) -> str:
    """Accuracy against the cost measure, one point per threshold, the frontier joined, the
    two arms alone and the chosen point marked."""
    from matplotlib.figure import Figure

    money = c.cost_measure == "cost_per_1k"
    key = "cost_per_1k" if money else "mean_latency_ms"
    pts = c.frontier

    def x(p: object) -> float:
        value = getattr(p, key)
        return float("nan") if value is None else float(value)

    with chart_style():
        fig = Figure(figsize=(8, 3.6), layout="constrained")
        ax = fig.subplots()
        ax.plot([x(p) for p in pts], [p.accuracy for p in pts], "o", color="#8fb3d9",
                label="thresholds")
        on = sorted((p for p in pts if p.on_frontier), key=x)
        ax.plot([x(p) for p in on], [p.accuracy for p in on], "-", color="#1f5fa8",
                label="frontier")
        for p in pts:
            ax.annotate(f"t={p.threshold:g}", (x(p), p.accuracy), fontsize=8,
                        xytext=(4, -10), textcoords="offset points")
        for name, marker in ((c.primary, "s"), (c.fallback, "D")):
            s = c.single[name]
            ax.plot([x(s)], [s.accuracy], marker, color="#555", ls="none", label=f"{name} alone")
        chosen = [p for p in pts if p.chosen]
        if chosen:
            ax.plot([x(chosen[0])], [chosen[0].accuracy], "*", ms=15, color="#c77700",
                    ls="none", label=f"chosen t={chosen[0].threshold:g}")
        ax.set_xlabel("cost per 1k queries (USD)" if money else "mean latency per query (ms)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        fig.legend(loc="outside lower center", fontsize=9, frameon=False, ncols=5)
        return figure_svg(fig, f'class="frontier" role="img" aria-label="Cost-accuracy frontier '
                               f'of {_e(c.name)}"')


def cascade_context(a: Analysis) -> list[dict[str, Any]]:
    """Per cascade, what templates/cascade.html.j2 shows: its frontier rows, chart (Markup),
    operating point held out and comparisons, formatted; empty without a cascade."""
    out = []
    for c in a.cascades:
        h = c.held_out
        out.append({
            "name": c.name, "primary": c.primary, "fallback": c.fallback,
            "chart": Markup(frontier_svg(c)),
            "rows": [(r.chosen, str(ArmId(c.name, threshold=r.threshold)), f"{100 * r.fallback_share:.0f}%",
                      f"{_num(r.accuracy)} [{_num(r.ci_low)}, {_num(r.ci_high)}]", _cost(c, r),
                      f"{r.mean_tokens:.0f}", "yes" if r.on_frontier else DASH)
                     for r in c.frontier],
            "threshold": f"{c.threshold:g}", "rule": c.rule, "selection": c.selection,
            "measure": ("cost per 1k queries" if c.cost_measure == "cost_per_1k" else
                        "mean latency per query (no prices known, so latency is the cost measure)"),
            "fold_thresholds": ", ".join(f"{t:g}" for t in c.fold_thresholds),
            "held_out": {"accuracy": _num(h.accuracy), "low": _num(h.ci_low), "high": _num(h.ci_high),
                         "share": f"{100 * h.fallback_share:.0f}%", "cost": _cost(c, h)},
            "comparisons": [(r.arm_b, f"{100 * r.delta.estimate:+.1f}", f"{100 * r.delta.low:+.1f}",
                             f"{100 * r.delta.high:+.1f}", f"{r.p_adjusted:.3g}")
                            for r in c.comparisons],
        })
    return out


__all__ = ["cascade_context", "frontier_svg"]
