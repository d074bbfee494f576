"""Cost: *what does each arm cost, and when does fine-tuning pay back?* Break-even (training
cost / saving per query) and the most training may cost; then cost by monthly volume: what each
arm costs a month as a function of queries a month, where two arms cross, and when the
fine-tuned arm (or a cascade) pays back what it cost up front.

For an arm at V queries a month: monthly(V) = cost per query x V + hosting, where hosting is
the `price.hosting_per_month` of its model (a cascade: of both its models, each once). The
up-front cost of a fine-tuned arm is its training cost plus the engineering time
(`decision.engineering_hours` x `decision.hourly_rate`); a cascade's is the engineering time
(plus the training of a fine-tuned arm it routes from); a prompt's is nothing.

Two arms a, b cross where monthly_a(V) = monthly_b(V): V* = (hosting_a - hosting_b) /
(per_query_b - per_query_a), when that is positive. The months to pay back an up-front cost U
at volume V against a reference arm r: U / (monthly_r(V) - monthly(V)), when that saving is
positive. When every price is zero and nothing is hosted (the embedded model), there is no
money to compare: the figures are tokens and latency per query instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.arms import reference_arm, row_name
from harness.analysis.results import ArmCost, AtVolume, CascadeResult, CostByVolume, Crossover
from harness.running.records import RunMeta
from harness.strategies import is_fine_tuned


@dataclass(frozen=True)
class BreakEven:
    """When a fine-tuned model's per-query saving repays its training cost."""

    training_cost: float
    saving_per_query: float
    queries: float | None
    monthly_volume_to_pay_back: float | None
    horizon_months: float = 3.0

    def describe(self) -> str:
        """One phrase, e.g. 'pays back after 12,345 queries (4,115/month over 3 months)'."""
        if self.queries is None or self.monthly_volume_to_pay_back is None:
            if self.saving_per_query < 0:
                return (f"never pays back: the fine-tuned model costs "
                        f"${-self.saving_per_query:.6g} more per query")
            return "never pays back: the fine-tuned model costs the same per query"
        months = "month" if self.horizon_months == 1 else "months"
        return (f"pays back after {math.ceil(self.queries):,} queries "
                f"({math.ceil(self.monthly_volume_to_pay_back):,}/month over "
                f"{self.horizon_months:g} {months})")


def break_even(
    training_cost: float, prompt_cost_per_query: float, ft_cost_per_query: float, *,
    horizon_months: float = 3.0,
) -> BreakEven:
    """Queries needed for the fine-tuned arm's saving per query to repay its training cost.

    saving = prompt_cost_per_query - ft_cost_per_query (USD); queries = training_cost / saving,
    or None ("never") when saving <= 0; monthly volume to pay back = queries / horizon_months.
    """
    values = (training_cost, prompt_cost_per_query, ft_cost_per_query, horizon_months)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"costs and horizon must be finite, got {values}")
    if training_cost < 0 or horizon_months <= 0:
        raise ValueError("need training_cost >= 0 and horizon_months > 0")
    saving = prompt_cost_per_query - ft_cost_per_query
    if saving <= 0:
        return BreakEven(training_cost, saving, None, None, horizon_months)
    queries = training_cost / saving
    return BreakEven(training_cost, saving, queries, queries / horizon_months, horizon_months)


def max_training_cost(saving_per_query: float, monthly_volume: float,
                      horizon_months: float) -> float:
    """The most a fine-tune may cost and still pay back within the horizon (USD):
    saving_per_query x monthly_volume x horizon_months, or 0 when it saves nothing."""
    return max(0.0, saving_per_query) * monthly_volume * horizon_months


VOLUMES = tuple(float(v) for v in np.logspace(3, 7, 41))  # 1K to 10M a month, log-spaced
SENTENCE_VOLUMES = (1e4, 1e5, 1e6, 1e7)


def crossover(a: ArmCost, b: ArmCost) -> float | None:
    """The monthly volume where a and b cost the same, None when they never cross."""
    slope = b.per_query - a.per_query
    if slope == 0 or math.isnan(slope):
        return None
    v = (a.hosting_per_month - b.hosting_per_month) / slope
    return v if v > 0 else None


def payback_months(arm: ArmCost, ref: ArmCost, volume: float) -> float | None:
    """Months for `arm`'s monthly saving over `ref` at `volume` to repay its up-front cost;
    None when it saves nothing there."""
    saving = ref.monthly(volume) - arm.monthly(volume)
    if not saving > 0:
        return None
    return arm.up_front / saving


def _usd(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def _volume(v: float) -> str:
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if v >= size:
            return f"{v / size:g}{unit}"
    return f"{v:g}"


def hosting(meta: RunMeta, models: Sequence[str]) -> float:
    """USD a month of hosting the models (price.hosting_per_month), each model once."""
    return float(sum(meta.models[m].hosting_per_month or 0.0 for m in dict.fromkeys(models)
                     if m in meta.models))


def engineering_cost(meta: RunMeta) -> float:
    """decision.engineering_hours x decision.hourly_rate (0 when either is unset)."""
    d = meta.decision
    return float((d.engineering_hours or 0.0) * (d.hourly_rate or 0.0))


def arm_costs(summary: pd.DataFrame, meta: RunMeta, training: dict[str, float | None],
              cascades: Sequence[CascadeResult]) -> list[ArmCost]:
    """Every answered single arm, and each cascade's operating point (held out)."""
    eng = engineering_cost(meta)
    out, model_of = [], {}
    single = summary[summary["n"] > 0]
    for _, r in single.iterrows():
        ft = is_fine_tuned(str(r["type"]))
        tokens = float(np.nansum([r["mean_prompt_tokens"], r["mean_completion_tokens"]]))
        model_of[row_name(r)] = str(r["model"])
        out.append(ArmCost(row_name(r), float(r["cost_per_1k"]) / 1000,
                           hosting(meta, [str(r["model"])]),
                           (training.get(str(r["strategy"])) or 0.0) + eng if ft else 0.0,
                           tokens, float(r["latency_p50_ms"]), "fine_tuned" if ft else "prompt"))
    by_name = {a.name: a for a in out}
    for c in cascades:
        h = c.held_out
        pair = [by_name.get(c.primary), by_name.get(c.fallback)]
        trained = sum(a.up_front - eng for a in pair if a is not None and a.kind == "fine_tuned")
        per = h.cost_per_1k / 1000 if h.cost_per_1k is not None else math.nan
        weights = (1.0, h.fallback_share)  # the primary always answers, the fallback if routed
        tokens = sum(a.tokens_per_query * w for a, w in zip(pair, weights, strict=True) if a)
        models = [model_of[n] for n in (c.primary, c.fallback) if n in model_of]
        out.append(ArmCost(c.arm, per, hosting(meta, models), eng + trained, tokens,
                           h.mean_latency_ms, "cascade"))
    return out


def _unpriced_sentence(arms: Sequence[ArmCost]) -> str:
    return ("Every price is zero and nothing is hosted (the embedded model): no arm costs money "
            "per query, so per query: " + "; ".join(
                f"{a.name} {a.tokens_per_query:,.0f} tokens, " + (
                    f"{a.latency_ms / 1000:.2f} s" if a.latency_ms == a.latency_ms
                    else "latency not measured (every answer came from the cache)")
                for a in arms) + ".")


def _accuracy_cost(c: CascadeResult) -> tuple[bool, str]:
    """Whether a cascade's operating point is significantly less accurate than its better arm
    alone (then no saving is advertised), and the accuracy it gives up, for beside a saving."""
    vs = c.against(c.better_arm)
    worse = vs.significant and vs.delta.estimate < 0
    text = (f" (held-out accuracy {c.held_out.accuracy:.3f}, {100 * vs.delta.estimate:+.1f} "
            f"points against {c.better_arm} alone, Holm p = {vs.p_adjusted:.3g})")
    return worse, text


def volume_analysis(summary: pd.DataFrame, meta: RunMeta, training: dict[str, float | None],
                    cascades: Sequence[CascadeResult]) -> CostByVolume | None:
    """summary.json → cost_by_volume: each arm's monthly cost over VOLUMES, the crossovers, the
    sentences, and the point `decision.monthly_volume` picks (None: no arm has a known cost).

    A cascade's saving is stated with the accuracy it gives up beside it, and a cascade that
    is significantly less accurate than its better arm alone gets no saving sentence."""
    arms = [a for a in arm_costs(summary, meta, training, cascades) if not math.isnan(a.per_query)]
    if not arms:
        return None
    ref_row = reference_arm(summary, meta.decision.metric, meta.decision.min_schema_compliance)
    ref = next((a for a in arms if ref_row is not None and a.name == row_name(ref_row)), None)
    unpriced = all(a.per_query == 0 and a.hosting_per_month == 0 for a in arms)

    def result(sentences: Sequence[str], crossovers: Sequence[Crossover] = (),
               at: AtVolume | None = None) -> CostByVolume:
        return CostByVolume(VOLUMES, tuple(arms), ref.name if ref else None, unpriced,
                            engineering_cost(meta), tuple(sentences), tuple(crossovers), at)

    if unpriced:
        return result([_unpriced_sentence(arms)])
    crossings = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            v = crossover(a, b)
            if v is not None:
                cheap = a if a.monthly(v * 2) < b.monthly(v * 2) else b
                crossings.append(Crossover(a.name, b.name, v, cheap.name))
    by_volume: dict[float, list[str]] = {}
    volumes = list(dict.fromkeys([*SENTENCE_VOLUMES, *(
        [float(meta.decision.monthly_volume)] if meta.decision.monthly_volume else [])]))
    routes = {c.arm: c for c in cascades}
    for a in arms:  # what is more than a prompt, against the best prompt
        if ref is None or a is ref or a.kind == "prompt":
            continue
        worse, cost = _accuracy_cost(routes[a.name]) if a.name in routes else (False, "")
        for v in volumes:
            saving = ref.monthly(v) - a.monthly(v)
            if saving > 0 and worse:
                continue  # a saving bought with significantly lower accuracy is not one
            if saving > 0:
                months = payback_months(a, ref, v)
                back = (f"; it pays back its {_usd(a.up_front)} up front in {months:.1f} months"
                        if a.up_front > 0 and months is not None else "")
                text = (f"At {_volume(v)} queries/month {a.name} saves {_usd(saving)}/month "
                        f"over {ref.name}{cost}{back}.")
            else:
                text = (f"At {_volume(v)} queries/month {a.name} costs {_usd(-saving)}/month "
                        f"more than {ref.name}.")
            by_volume.setdefault(v, []).append(text)
    sentences = [t for v in volumes for t in by_volume.get(v, [])]
    sentences += [f"{c.a} and {c.b} cost the same at {c.volume:,.0f} queries/month; above it "
                  f"{c.cheaper_above} is cheaper." for c in crossings]
    at = None
    if meta.decision.monthly_volume:
        v = float(meta.decision.monthly_volume)
        at = AtVolume(v, {a.name: a.monthly(v) for a in arms}, tuple(by_volume.get(v, [])))
    return result(sentences, crossings, at)


__all__ = ["VOLUMES", "ArmCost", "BreakEven", "arm_costs", "break_even", "crossover",
           "engineering_cost", "hosting", "max_training_cost", "payback_months", "volume_analysis"]
