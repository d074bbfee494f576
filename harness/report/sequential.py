"""The report's section on a sequential run (`run.sequential`): what each arm was asked against
what the eval holds, the look at which each comparison settled, and a chart of each decisive
comparison's running estimate inside its anytime-valid interval."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from harness.analysis import Analysis
from harness.report.chart import COLORS, chart_style, figure_svg


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def running_svg(a: Analysis) -> str:
    """Each fine-tune comparison's difference by look, with its interval as a band and the
    equivalence margin; "" when the run has none."""
    looks = a.sequential
    if looks is None:
        return ""
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for look, made in enumerate(looks.history):
        for c in made:
            if c.kind == "fine_tune" and c.result.n:
                series.setdefault((c.first, c.second), []).append(
                    ((look + 1) * looks.design.look_every, c.result.estimate, c.result.low,
                     c.result.high))
    if not series:
        return ""
    from matplotlib.figure import Figure

    with chart_style():
        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax = fig.subplots()
        margin = looks.decision.equivalence_margin
        ax.axhspan(-100 * margin, 100 * margin, color="#dddddd", label="equivalence margin")
        ax.axhline(0, color="#555555", linewidth=0.8)
        for i, ((first, second), rows) in enumerate(series.items()):
            color = COLORS[i % len(COLORS)]
            xs = [r[0] for r in rows]
            ax.fill_between(xs, [100 * r[2] for r in rows], [100 * r[3] for r in rows],
                            color=color, alpha=0.18, linewidth=0)
            ax.plot(xs, [100 * r[1] for r in rows], color=color, marker="o", markersize=3,
                    label=f"{first} - {second}")
        ax.set_xlabel("examples per arm (looks)")
        ax.set_ylabel("difference, points")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
        return figure_svg(fig, 'id="sequential-chart" role="img" aria-label="running '
                               'difference of each fine-tune comparison with its anytime-valid '
                               'interval"')


def sequential_context(a: Analysis) -> dict[str, Any] | None:
    """What templates/sequential.html.j2 shows, or None for a run that was not sequential."""
    looks = a.sequential
    if looks is None:
        return None
    summary = looks.summary()
    arms = [(key, arm["requested"], arm["available"],
             "—" if arm["stopped_at_look"] is None else str(arm["stopped_at_look"] + 1))
            for key, arm in summary["arms"].items()]
    comparisons = [(c["kind"].replace("_", " "), f"{c['first']} - {c['second']}", c["state"],
                    "—" if c["settled_at_look"] is None else str(c["settled_at_look"] + 1),
                    c["n"], _points(c["estimate"]), _points(c["low"]), _points(c["high"]))
                   for c in summary["comparisons"]]
    return {"sentence": a.sequential_note or "", "arms": arms, "comparisons": comparisons,
            "look_every": summary["look_every"], "looks": summary["looks"],
            "family": summary["family"], "alpha_each": f"{summary['alpha_each']:.3g}",
            "method": summary["method"], "chart": Markup(running_svg(a))}
