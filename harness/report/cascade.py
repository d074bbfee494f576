"""The report's cascade section (`type: cascade`): per cascade, its cost-accuracy frontier as a
table and a chart, the operating point held out from the examples that chose it, and its
paired comparisons with each arm alone."""

from __future__ import annotations

from harness.analysis import Analysis
from harness.analysis.results import CascadeResult, FrontierPoint, HeldOut
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


def cascade_section(a: Analysis) -> str:
    """The whole section; empty without a cascade."""
    if not a.cascades:
        return ""
    parts = []
    chosen = ' class="chosen"'
    for c in a.cascades:
        rows = "".join(
            f"<tr{chosen if r.chosen else ''}><td>{_e(c.name)}@t="
            f"{r.threshold:g}</td><td>{100 * r.fallback_share:.0f}%</td>"
            f"<td>{_num(r.accuracy)} [{_num(r.ci_low)}, {_num(r.ci_high)}]</td>"
            f"<td>{_cost(c, r)}</td><td>{r.mean_tokens:.0f}</td>"
            f"<td>{'yes' if r.on_frontier else DASH}</td></tr>" for r in c.frontier)
        h = c.held_out
        vs = "; ".join(f"against {_e(r.arm_b)} alone {100 * r.delta.estimate:+.1f} points "
                       f"[{100 * r.delta.low:+.1f}, {100 * r.delta.high:+.1f}], Holm "
                       f"p = {r.p_adjusted:.3g}" for r in c.comparisons)
        measure = ("cost per 1k queries" if c.cost_measure == "cost_per_1k" else
                   "mean latency per query (no prices known, so latency is the cost measure)")
        parts.append(
            f"<h3>{_e(c.name)}: {_e(c.primary)}, falling back to {_e(c.fallback)}</h3>"
            f"<figure>{frontier_svg(c)}</figure>"
            '<table class="cascade"><tr><th>threshold</th><th>to fallback</th><th>accuracy '
            "[95% CI] (in sample)</th><th>cost</th><th>tokens / query</th><th>frontier</th></tr>"
            f"{rows}</table>"
            f"<p>Operating point: t = {c.threshold:g}, {_e(c.rule)} (cost: "
            f"{_e(measure)}). Held out "
            f"({_e(c.selection)}; thresholds chosen on the halves: "
            f"{', '.join(f'{t:g}' for t in c.fold_thresholds)}): accuracy "
            f"{_num(h.accuracy)} [{_num(h.ci_low)}, {_num(h.ci_high)}], "
            f"{100 * h.fallback_share:.0f}% to the fallback, {_cost(c, h)}; {vs}.</p>")
    return ('<h2 id="cascade">Cascades</h2><p class="muted">Computed from the arms\' recorded '
            "answers (draw 0), with no new request: an answer of the primary with confidence "
            "below t, or with none, is replaced by the fallback's; the primary is always paid, "
            "the fallback when routed.</p>" + "".join(parts))


__all__ = ["cascade_section", "frontier_svg"]
