"""The verdict: *what should the team do, and on which numbers?*

`build` is the one function that makes the recommendation: it weighs the fine-tuned arm
against the best prompt (`fine_tune_evidence`), applies the decision rules (`rules.decide`, or
`compliance.decide_with_floor` under a schema-compliance floor), adds what the eval can detect,
the levers not tried, the cost at the stated monthly volume, each cascade's operating point,
the arms left out and the reasons to withhold, each reason once, and lists every number the
verdict box shows (`Figure`: arm, metric, value, interval), each one read from the summary
row of the arm it names. The report, the terminal and summary.json render these; none of
them composes a verdict of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.analysis import compliance, cost, power, rules, stats
from harness.analysis.arms import (
    Matrices,
    best_prompting_arm,
    clusters_of,
    price,
    reference_arm,
    row_name,
)
from harness.analysis.cascades import hybrid, routing_text
from harness.analysis.comparisons import paired
from harness.analysis.curves import PlateauResult, plateau_caution, zero_shot_point
from harness.analysis.design_space import untried_text
from harness.analysis.results import (
    CascadeResult,
    Comparison,
    CostByVolume,
    Evidence,
    Figure,
    Planning,
    Verdict,
)
from harness.kinds import HYBRID, PROMPTING_SUFFICIENT, WITHHELD
from harness.model import pricing
from harness.running.records import RunMeta
from harness.strategies import is_fine_tuned, is_prompting

# each metric's interval columns in the summary
INTERVAL_COLUMNS: Mapping[str, tuple[str, str]] = {
    "accuracy": ("ci_low", "ci_high"),
    "field_f1": ("field_f1_ci_low", "field_f1_ci_high"),
    "schema_compliance": ("schema_ci_low", "schema_ci_high"),
}


def _configured_training_cost(meta: RunMeta, strategy: str) -> float | None:
    """`training_cost_usd` of the strategy's `fine_tuned_model` mapping in the run's config."""
    return meta.config.training_cost_usd(strategy)


def training_cost(meta: RunMeta, f: pd.Series) -> float | None:
    """USD the fine-tune cost: the config's `fine_tuned_model.training_cost_usd` first (0 when
    already paid), then the registry's recorded cost, then its trained tokens at the model's
    training price (pricing.price_of: the configured `price.training`, else the table's); None
    when unknown."""
    cost = _configured_training_cost(meta, str(f["strategy"]))
    if cost is not None:
        return cost
    entry = meta.fine_tunes.get(str(f["strategy"]))
    if entry is None:
        return None
    cost = entry.training_cost_usd
    if cost is None and entry.trained_tokens:
        p = price(meta, f["model"], f["model_id"])
        if p is not None:
            cost = pricing.training_cost(p, int(entry.trained_tokens))
    return None if cost is None else float(cost)


def fine_tuned_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuned arms that answered at least once."""
    ok = summary[summary["n"] > 0]
    if not len(ok):
        return ok
    return ok[ok["type"].map(is_fine_tuned).astype(bool) & (ok["errors"] < ok["n"])]


def _comparison(comparisons: pd.DataFrame, mats: Matrices, meta: RunMeta, f: pd.Series,
                best: pd.Series) -> Comparison:
    """The fine-tuned arm minus the best prompt: the comparisons table's row (the same test,
    seed and examples), else computed here."""
    metric = meta.decision.metric
    name_a, name_b = row_name(f), row_name(best)
    match = comparisons[(comparisons["arm_a"] == name_a) & (comparisons["arm_b"] == name_b)]
    if len(match):
        r = match.iloc[0]
        return Comparison(name_a, name_b, metric, int(r["n"]),
                          stats.Interval(float(r["delta"]), float(r["delta_ci_low"]),
                                         float(r["delta_ci_high"])),
                          float(r["p_value"]), float(r["p_adjusted"]), bool(r["significant"]),
                          str(r["test"]))
    got = paired(mats, (f["strategy"], f["k"]), (best["strategy"], best["k"]),
                 n_boot=meta.decision.bootstrap, metric=metric, clusters=clusters_of(meta))
    if got is None:
        nan = stats.Interval(math.nan, math.nan, math.nan)
        test = "paired_bootstrap" if metric == "field_f1" else "mcnemar"
        return Comparison(name_a, name_b, metric, 0, nan, 1.0, 1.0, False, test)
    n, d, p, test = got
    return Comparison(name_a, name_b, metric, int(n), d, p, 1.0, False, test)


def fine_tune_evidence(summary: pd.DataFrame, comparisons: pd.DataFrame, mats: Matrices,
                       meta: RunMeta) -> tuple[Evidence, rules.ArmEvidence | None]:
    """The first fine-tuned arm against the reference arm (the best prompt reaching the
    compliance floor, if set): the paired comparison, break-even and the most training may
    cost (Evidence), and what the decision rules need of it (None: nothing to weigh)."""
    decision = meta.decision
    metric, floor = decision.metric, decision.min_schema_compliance
    ft, best = fine_tuned_rows(summary), reference_arm(summary, metric, floor)
    if best is None or not len(ft):
        return Evidence(metric, min_schema_compliance=floor), None
    f = ft.iloc[0]
    c = _comparison(comparisons, mats, meta, f, best)
    training = training_cost(meta, f)
    engineering = cost.engineering_cost(meta)
    if training is not None:  # the up-front cost: training and engineering time
        training += engineering
    be, saving, cap = None, None, None
    prompt_cost, ft_cost = best["cost_per_1k"] / 1000, f["cost_per_1k"] / 1000
    if not (math.isnan(prompt_cost) or math.isnan(ft_cost)):
        saving = float(prompt_cost) - float(ft_cost)
        hosting = (cost.hosting(meta, [str(best["model"])])
                   - cost.hosting(meta, [str(f["model"])]))
        if hosting and decision.monthly_volume:  # fixed costs, spread over the volume
            saving += hosting / decision.monthly_volume
        if training is not None:
            be = cost.break_even(training, float(prompt_cost), float(ft_cost),
                                  horizon_months=decision.horizon_months)
        if decision.monthly_volume is not None:
            cap = cost.max_training_cost(saving, decision.monthly_volume,
                                          decision.horizon_months)
    zero = saving is not None and float(prompt_cost) == 0 and float(ft_cost) == 0
    arm = rules.ArmEvidence(c.delta, c.p_adjusted, be, decision.monthly_volume, saving,
                            decision.horizon_months, zero)
    text = (rules.pays_back(arm)[1] if saving is not None
            else "no training cost known" if training is None else "no per-query cost known")
    return Evidence(metric, c, be, text, training, saving, engineering, cap, floor), arm


def _arm_format(row: pd.Series | None) -> compliance.ArmFormat | None:
    if row is None:
        return None
    so = row.get("structured_output")
    return compliance.ArmFormat(row_name(row), float(row["schema_compliance"]),
                                so if isinstance(so, str) else None)


def format_evidence(summary: pd.DataFrame, ft: pd.Series | None, floor: float, metric: str
                    ) -> compliance.FormatEvidence:
    """The compliance floor's evidence from the summary (see compliance.FormatEvidence)."""
    ok = summary[(summary["n"] > 0) & summary["schema_compliance"].notna()]
    prompting = ok[ok["type"].map(is_prompting).astype(bool)] if len(ok) else ok
    top = prompting.loc[prompting["schema_compliance"].idxmax()] if len(prompting) else None
    tried = summary[summary["type"].map(is_prompting).astype(bool)] if len(summary) else summary
    constrained = bool(len(tried)) and bool(
        (tried["structured_output"].fillna(compliance.UNCONSTRAINED)
         != compliance.UNCONSTRAINED).any())
    return compliance.FormatEvidence(floor, _arm_format(best_prompting_arm(summary, metric, floor)),
                                     _arm_format(top), _arm_format(ft), constrained)


def _decide(summary: pd.DataFrame, plateau: PlateauResult | None,
            arm: rules.ArmEvidence | None, meta: RunMeta) -> Verdict:
    """The decision rules: rules.decide, or decide_with_floor under a compliance floor."""
    decision = meta.decision
    if plateau is None:
        plateau = PlateauResult("insufficient_data", None, None, (),
                                      "no few-shot sweep in this run")
    alpha, margin, metric = decision.alpha, decision.equivalence_margin, decision.metric
    floor = decision.min_schema_compliance
    if floor is None:
        return rules.decide(plateau, arm, alpha=alpha, equivalence_margin=margin, metric=metric)
    ft = fine_tuned_rows(summary)
    fmt = format_evidence(summary, ft.iloc[0] if len(ft) else None, floor, metric)
    return compliance.decide_with_floor(plateau, arm, fmt, alpha=alpha,
                                        equivalence_margin=margin, metric=metric)


def _figure(row: pd.Series, metric: str, role: str) -> Figure | None:
    """The summary row's `metric` with its interval (None when the arm has no such figure)."""
    if metric not in row or row["n"] == 0 or pd.isna(row[metric]):
        return None
    lo, hi = INTERVAL_COLUMNS.get(metric, ("", ""))
    low = float(row[lo]) if lo in row and not pd.isna(row[lo]) else None
    high = float(row[hi]) if hi in row and not pd.isna(row[hi]) else None
    return Figure(row_name(row), metric, float(row[metric]), low, high, role)


def figures(summary: pd.DataFrame, meta: RunMeta, plateau: PlateauResult | None,
            cascades: Sequence[CascadeResult]) -> tuple[Figure, ...]:
    """Every number the verdict box shows, each from the summary row of the arm it names:
    the best prompt, the zero-shot point of the judged curve (every zero-shot arm without a
    curve), each fine-tuned arm, on the decision metric; under a compliance floor their schema
    compliance too; and each cascade's operating point (held out)."""
    decision = meta.decision
    metric, floor = decision.metric, decision.min_schema_compliance
    rows: list[tuple[pd.Series, str]] = []
    best = reference_arm(summary, metric, floor)
    if best is not None:
        rows.append((best, "best prompt"))
    curve = (summary[summary["strategy"] == plateau.strategy]
             if plateau is not None and plateau.strategy else summary.iloc[:0])
    zero = (zero_shot_point(summary, curve.iloc[0]) if len(curve)
            else summary[summary["type"] == "zero_shot"] if len(summary) else summary)
    rows += [(r, "zero-shot") for _, r in zero.iterrows()]
    rows += [(r, "fine-tuned") for _, r in fine_tuned_rows(summary).iterrows()]
    out: list[Figure] = []
    seen: set[tuple[str, str]] = set()
    for row, role in rows:
        for m in (metric, "schema_compliance") if floor is not None else (metric,):
            f = _figure(row, m, role)
            if f is not None and (f.arm, f.metric) not in seen:
                seen.add((f.arm, f.metric))
                out.append(f)
    for c in cascades:
        h = c.held_out
        out.append(Figure(c.arm, "accuracy", h.accuracy, h.ci_low, h.ci_high,
                          "cascade, held out"))
    return tuple(out)


@dataclass(frozen=True)
class Inputs:
    """What the verdict is built from: the analysis's typed results and tables."""

    summary: pd.DataFrame  # one row per single arm (cascades are in `cascades`)
    comparisons: pd.DataFrame
    plateau: PlateauResult | None
    mats: Matrices  # per-example results of decision.metric (count matrices for field F1)
    meta: RunMeta
    planning: Planning | None
    untried: tuple[str, ...]
    cascades: tuple[CascadeResult, ...]
    cost: CostByVolume | None
    missing: str | None  # --allow-missing: the arms left out
    withhold: tuple[str, ...]  # why no verdict may be given (empty: it stands)


def build(i: Inputs) -> tuple[Verdict, Evidence]:
    """The verdict and the fine-tune evidence behind it (see the module docstring)."""
    evidence, arm = fine_tune_evidence(i.summary, i.comparisons, i.mats, i.meta)
    v = _decide(i.summary, i.plateau, arm, i.meta)
    after: list[str] = []
    note = power.caution(i.planning, None if evidence.comparison is None
                         else evidence.comparison.delta.estimate)
    if note:
        after.append(note)
    if v.recommendation == PROMPTING_SUFFICIENT and (  # a verdict that rests on the plateau
            flat := plateau_caution(i.plateau, i.meta.decision.min_gain)):
        after.append(flat)
    if i.untried:
        after.append(untried_text(i.untried))
    if i.cost is not None and i.cost.at_volume is not None:
        after += i.cost.at_volume.sentences
    routes = [routing_text(c) for c in i.cascades]
    picked = hybrid(i.cascades)
    if picked is not None:  # a cascade beats both of its arms: how much of each
        c, sentence = picked
        v = Verdict(HYBRID, sentence, (routing_text(c), f"Otherwise: {v.sentence}", *v.reasons))
    v = v.with_reasons(after=(*after, *routes))
    if i.missing is not None:
        v = v.with_reasons(i.missing)
    if i.withhold:
        v = Verdict(WITHHELD, "No verdict: " + "; ".join(i.withhold) + ".",
                    tuple(dict.fromkeys((*i.withhold, *v.reasons))))
    return Verdict(v.recommendation, v.sentence, v.reasons,
                   figures(i.summary, i.meta, i.plateau, i.cascades)), evidence


__all__ = [
    "INTERVAL_COLUMNS",
    "Inputs",
    "build",
    "figures",
    "fine_tune_evidence",
    "fine_tuned_rows",
    "format_evidence",
    "training_cost",
]
