"""The report's cost-by-volume part (analysis/volume.py): each arm's monthly cost over 1K-10M
queries a month on log axes, the crossovers marked, and the sentences."""

from __future__ import annotations

from harness.analysis import Analysis
from harness.analysis.results import CostByVolume
from harness.report.chart import chart_style, figure_svg
from harness.report.fields import _e


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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("queries per month")
        ax.set_ylabel("USD per month")
        ax.grid(alpha=0.3, which="both")
        fig.legend(loc="outside lower center", fontsize=9, frameon=False, ncols=4)
        return figure_svg(fig, 'id="cost-by-volume" role="img" aria-label="Monthly cost against '
                               'monthly volume"')


def volume_section(a: Analysis) -> str:
    """Sentences and chart; the sentence alone when nothing costs money."""
    cost = a.cost_by_volume
    if cost is None:
        return ""
    items = "".join(f"<li>{_e(s)}</li>" for s in cost.sentences)
    chart = "" if cost.unpriced else f"<figure>{volume_svg(cost)}</figure>"
    eng = cost.engineering_cost_usd
    note = (f" Up-front costs include ${eng:,.0f} of engineering time (decision.engineering_hours"
            " x decision.hourly_rate)." if eng else "")
    return (f'<h3 id="volume">Cost by monthly volume</h3>{chart}<ul>{items}</ul>'
            f'<p class="muted">Monthly cost = cost per query x queries a month + hosting '
            f"(price.hosting_per_month); vertical lines: crossovers.{_e(note)}</p>")


__all__ = ["volume_section", "volume_svg"]
