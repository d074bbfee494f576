"""The report's cost-by-volume part (analysis/cost.py): each arm's monthly cost over 1K-10M
queries a month on log axes, the crossovers marked, and the sentences (laid out by
templates/cost.html.j2)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from harness.analysis import Analysis
from harness.analysis.results import CostByVolume
from harness.report.chart import chart_style, figure_svg, log_axes


def volume_svg(cost: CostByVolume) -> str:
    """Monthly cost against monthly volume, one line per arm (log-log)."""
    from matplotlib.figure import Figure

    with chart_style():
        fig = Figure(figsize=(8, 3.6), layout="constrained")
        ax = fig.subplots()
        for arm in cost.arms:
            ys = [y if y > 0 else float("nan") for y in map(arm.monthly, cost.volumes)]
            ax.plot(cost.volumes, ys, "-", label=arm.name)
        for c in cost.crossovers:
            ax.axvline(c.volume, color="#999", ls=":", lw=1)
        log_axes(ax, y_prefix="$")
        ax.set_xlabel("queries per month")
        ax.set_ylabel("USD per month")
        ax.grid(alpha=0.3)
        fig.legend(loc="outside lower center", fontsize=9, frameon=False, ncols=4)
        return figure_svg(fig, 'id="cost-by-volume" role="img" aria-label="Monthly cost against '
                               'monthly volume"')


def volume_context(a: Analysis) -> dict[str, Any] | None:
    """What templates/cost.html.j2 shows of the cost by volume: the sentences, the chart
    (Markup; None when nothing costs money) and the engineering cost's note; None without it."""
    cost = a.cost_by_volume
    if cost is None:
        return None
    eng = cost.engineering_cost_usd
    return {"sentences": list(cost.sentences),
            "chart": None if cost.unpriced else Markup(volume_svg(cost)),
            "engineering": f"${eng:,.0f}" if eng else None}


__all__ = ["volume_context", "volume_svg"]
