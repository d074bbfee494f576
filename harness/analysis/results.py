"""The typed results: *what did the analysis conclude, and from which numbers?* What the
verdict, the report, the terminal and the gate read, as frozen dataclasses. `summary.json` is
written from them (`to_dict`); nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from dataclasses import field as default
from typing import TYPE_CHECKING, Any

from harness.analysis.stats import Interval
from harness.kinds import ArmId

if TYPE_CHECKING:
    from harness.analysis.cost import BreakEven


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def called(role: str, name: str) -> str:
    """A role with the arm's own name, "zero-shot (small)"; the one name when both say the
    same ("fine-tuned")."""
    return name if not role or role == name else f"{role} ({name})"


@dataclass(frozen=True)
class Figure:
    """One number the verdict box shows: `arm` (its name as in summary.csv, with `@k=`),
    `metric` (a summary.csv column: accuracy, field_f1, schema_compliance, ...), its value and
    interval (None where there is none), and the role it plays (best prompt, zero-shot, ...)."""

    arm: str
    metric: str
    value: float
    low: float | None
    high: float | None
    role: str = ""

    @property
    def label(self) -> str:
        """Its role and the arm's own name: "best prompt (few-shot@k=4)", or the one name
        when both say the same ("fine-tuned")."""
        return called(self.role, self.arm)

    def text(self, metric_name: str) -> str:
        """The metric's own name, the value and its interval: "field F1 0.599 [0.5, 0.7]"."""
        ci = ("" if self.low is None or self.high is None
              else f" [{self.low:.3f}, {self.high:.3f}]")
        return f"{metric_name} {self.value:.3f}{ci}"

    def to_dict(self) -> dict[str, Any]:
        """summary.json → recommendation.figures[i]."""
        return {"arm": self.arm, "metric": self.metric, "value": _finite(self.value),
                "low": _finite(self.low), "high": _finite(self.high), "role": self.role}


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: arm_a minus arm_b on `metric`, over the same `n` examples."""

    arm_a: str
    arm_b: str
    metric: str
    n: int
    delta: Interval
    p_value: float
    p_adjusted: float
    significant: bool
    test: str

    def to_row(self) -> dict[str, Any]:
        """The comparisons-table row (comparisons.csv, summary.json → cascades[].comparisons)."""
        return {"arm_a": self.arm_a, "arm_b": self.arm_b, "n": self.n,
                "delta": self.delta.estimate, "delta_ci_low": self.delta.low,
                "delta_ci_high": self.delta.high, "p_value": self.p_value, "test": self.test,
                "p_adjusted": self.p_adjusted, "significant": self.significant}


@dataclass(frozen=True)
class Evidence:
    """The fine-tuned arm against the best prompt: the paired comparison on the decision
    metric and what it costs (None fields: no fine-tuned arm, or the figure is unknown)."""

    metric: str
    comparison: Comparison | None = None
    break_even: BreakEven | None = None
    break_even_text: str | None = None  # the phrase the box shows beside "break-even"
    training_cost_usd: float | None = None
    saving_per_query_usd: float | None = None
    engineering_cost_usd: float | None = None
    max_training_cost_usd: float | None = None
    min_schema_compliance: float | None = None

    @property
    def fine_tuned_arm(self) -> str | None:
        """The fine-tuned arm weighed (None: none was)."""
        return None if self.comparison is None else self.comparison.arm_a

    @property
    def best_prompting_arm(self) -> str | None:
        """The prompting arm it was weighed against."""
        return None if self.comparison is None else self.comparison.arm_b

    def to_dict(self) -> dict[str, Any]:
        """summary.json → recommendation.fine_tune (and evidence.fine_tune)."""
        out: dict[str, Any] = {"metric": self.metric}
        c = self.comparison
        if c is not None:
            out.update({
                "test": c.test, "fine_tuned_arm": c.arm_a, "best_prompting_arm": c.arm_b,
                "delta": asdict(c.delta), "p_adjusted": c.p_adjusted,
                "break_even": asdict(self.break_even) if self.break_even else None,
                "break_even_text": self.break_even_text,
                "training_cost_usd": self.training_cost_usd,
                "saving_per_query_usd": self.saving_per_query_usd,
                "engineering_cost_usd": self.engineering_cost_usd,
                "max_training_cost_usd": self.max_training_cost_usd})
        if self.min_schema_compliance is not None:
            out["min_schema_compliance"] = self.min_schema_compliance
        return out


@dataclass(frozen=True)
class Verdict:
    """The recommendation (one of `harness.kinds.VERDICTS`), its one-sentence summary, the
    reasons behind it (each once), and every number the verdict box shows (`figures`)."""

    recommendation: str
    sentence: str
    reasons: tuple[str, ...]
    figures: tuple[Figure, ...] = ()

    def with_reasons(self, *before: str, after: tuple[str, ...] = ()) -> Verdict:
        """The verdict with reasons added before and after its own, none repeated."""
        return Verdict(self.recommendation, self.sentence,
                       tuple(dict.fromkeys((*before, *self.reasons, *after))), self.figures)


@dataclass(frozen=True)
class Planning:
    """What this eval can detect, from the decisive paired comparison (power.planning)."""

    n: int
    discordance: float
    mde: float | None  # None: not even the largest difference is detectable
    power: float
    alpha: float
    method: str
    comparison: tuple[str, str]
    sentence: str
    design_effect: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """summary.json → planning."""
        out = {"n": self.n, "discordance": self.discordance, "mde": self.mde,
               "power": self.power, "alpha": self.alpha, "method": self.method,
               "comparison": list(self.comparison), "sentence": self.sentence}
        if self.design_effect is not None:
            out["design_effect"] = self.design_effect
        return out


@dataclass(frozen=True)
class FrontierPoint:
    """One threshold of a cascade, scored on every example (in sample)."""

    cascade: str
    threshold: float
    n: int
    fallback_share: float
    accuracy: float
    ci_low: float
    ci_high: float
    cost_per_1k: float
    mean_latency_ms: float
    mean_tokens: float
    schema_compliance: float
    field_f1: float
    chosen: bool
    on_frontier: bool = False


@dataclass(frozen=True)
class HeldOut:
    """A cascade's operating point, scored on held-out halves (2-fold cross-fitting)."""

    accuracy: float
    ci_low: float
    ci_high: float
    fallback_share: float
    cost_per_1k: float | None
    mean_latency_ms: float
    schema_compliance: float = math.nan
    field_f1: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """summary.json → cascades[].held_out."""
        return {"accuracy": self.accuracy, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "fallback_share": self.fallback_share, "cost_per_1k": self.cost_per_1k,
                "mean_latency_ms": self.mean_latency_ms}


@dataclass(frozen=True)
class SingleArm:
    """One arm of a cascade alone, on the examples both arms answered."""

    accuracy: float
    cost_per_1k: float | None
    mean_latency_ms: float
    mean_tokens: float


@dataclass(frozen=True)
class CascadeResult:
    """One cascade (`type: cascade`): its frontier, operating point (held out), its arms alone
    and the paired comparisons of the operating point with each arm."""

    name: str
    primary: str
    fallback: str
    n: int
    cost_measure: str  # cost_per_1k | mean_latency_ms
    threshold: float
    fold_thresholds: tuple[float, ...]
    rule: str
    selection: str
    held_out: HeldOut
    single: Mapping[str, SingleArm]
    frontier: tuple[FrontierPoint, ...]
    comparisons: tuple[Comparison, ...]

    @property
    def arm(self) -> str:
        """The operating point's arm name (NAME@t=THRESHOLD), as in summary.csv."""
        return str(ArmId(self.name, threshold=self.threshold))

    @property
    def better_arm(self) -> str:
        """The more accurate of its two arms alone (the primary on a tie)."""
        names = (self.primary, self.fallback)
        return max(names, key=lambda s: self.single[s].accuracy)

    @property
    def cheaper_arm(self) -> str:
        """The other arm."""
        return self.fallback if self.better_arm == self.primary else self.primary

    def against(self, arm: str) -> Comparison:
        """The operating point's comparison with one of its arms."""
        return next(c for c in self.comparisons if c.arm_b == arm)

    def to_dict(self) -> dict[str, Any]:
        """summary.json → cascades[i]."""
        return {"name": self.name, "primary": self.primary, "fallback": self.fallback,
                "n": self.n, "cost_measure": self.cost_measure, "threshold": self.threshold,
                "fold_thresholds": list(self.fold_thresholds), "rule": self.rule,
                "selection": self.selection, "held_out": self.held_out.to_dict(),
                "single": {k: asdict(v) for k, v in self.single.items()},
                "frontier": [asdict(p) for p in self.frontier],
                "comparisons": [c.to_row() for c in self.comparisons]}


@dataclass(frozen=True)
class ArmCost:
    """What one arm costs: per query, a month fixed, and once."""

    name: str
    per_query: float  # USD; NaN unknown
    hosting_per_month: float
    up_front: float  # USD: training and engineering
    tokens_per_query: float
    latency_ms: float
    kind: str = "prompt"  # prompt | fine_tuned | cascade

    def monthly(self, volume: float) -> float:
        """USD a month at `volume` queries a month."""
        return self.per_query * volume + self.hosting_per_month


@dataclass(frozen=True)
class Crossover:
    """The monthly volume where two arms cost the same, and which is cheaper above it."""

    a: str
    b: str
    volume: float
    cheaper_above: str


@dataclass(frozen=True)
class AtVolume:
    """The point on the cost curves that `decision.monthly_volume` picks."""

    volume: float
    monthly: Mapping[str, float]
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class CostByVolume:
    """Each arm's monthly cost over `volumes`, the crossovers and the sentences."""

    volumes: tuple[float, ...]
    arms: tuple[ArmCost, ...]
    reference: str | None
    unpriced: bool
    engineering_cost_usd: float
    sentences: tuple[str, ...]
    crossovers: tuple[Crossover, ...] = ()
    at_volume: AtVolume | None = None

    def to_dict(self) -> dict[str, Any]:
        """summary.json → cost_by_volume."""
        out: dict[str, Any] = {
            "volumes": list(self.volumes),
            "arms": [{**asdict(a), "monthly": [a.monthly(v) for v in self.volumes]}
                     for a in self.arms],
            "reference": self.reference, "unpriced": self.unpriced,
            "engineering_cost_usd": self.engineering_cost_usd}
        if not self.unpriced:
            out["crossovers"] = [asdict(c) for c in self.crossovers]
        out["sentences"] = list(self.sentences)
        if self.at_volume is not None:
            out["at_volume"] = {"volume": self.at_volume.volume,
                                "monthly": dict(self.at_volume.monthly),
                                "sentences": list(self.at_volume.sentences)}
        return out


@dataclass(frozen=True)
class Clustering:
    """A clustered run's clusters (`dataset.cluster`) and the methods that account for them."""

    field: str | None
    clusters: int
    mean_cluster_size: float
    details: Mapping[str, Any] = default(default_factory=dict)  # clustered.summary's other figures
    interval: str = ("Wilson at the effective size n / design effect, t with K - 1 degrees of "
                     "freedom (Korn & Graubard 1998); cluster bootstrap for draws and F1")
    paired_test: str = "clustered McNemar (Durkalski et al. 2003, Stat Med 22: 2417-2428)"

    def to_dict(self) -> dict[str, Any]:
        """summary.json → clustering."""
        return {"field": self.field, "clusters": self.clusters,
                "mean_cluster_size": self.mean_cluster_size, **self.details,
                "interval": self.interval, "paired_test": self.paired_test}


__all__ = [
    "ArmCost",
    "AtVolume",
    "CascadeResult",
    "Clustering",
    "Comparison",
    "CostByVolume",
    "Crossover",
    "Evidence",
    "Figure",
    "FrontierPoint",
    "HeldOut",
    "Planning",
    "SingleArm",
    "Verdict",
    "called",
]
