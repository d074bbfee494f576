"""Cascades: *does routing between two arms beat both?* Cascades (`type: cascade`): the primary
arm answers; when its confidence is below a threshold t (or it has none: no usable answer, no
confidence), the fallback arm's answer is used instead. Computed from the two arms' records
(draw 0), with no new request.

Per threshold: the share routed to the fallback, accuracy (exact match for extraction), cost per
1,000 queries (the primary is always paid, the fallback when routed) and mean latency (the two
calls in sequence when routed). The *cost measure* is that cost when both arms' costs are known
and not all zero, else the mean latency per query (the embedded model has no price).

The operating point: the cheapest threshold (by the cost measure) whose accuracy is not
significantly below the better of the two arms (paired: McNemar's exact test at
`decision.alpha`, or the cascade at least as accurate). So that the point is not scored on the
examples that chose it, the examples are split in two seeded halves (2-fold cross-fitting): the
threshold chosen on each half answers the other half, and the accuracy, cost, routing share and
paired comparisons reported for the operating point are those held-out answers. The threshold
to deploy is the one the same rule chooses on all examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from harness.analysis import stats
from harness.analysis.arms import row_name
from harness.analysis.comparisons import paired_test
from harness.analysis.intervals import proportion
from harness.analysis.results import (
    CascadeResult,
    Comparison,
    FrontierPoint,
    HeldOut,
    SingleArm,
)
from harness.config.cascade import CascadeConfig
from harness.kinds import ArmId
from harness.running.records import RunMeta
from harness.tasks import Task, has_fields

AUTO_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FRONTIER_COLUMNS = ["cascade", "threshold", "n", "fallback_share", "accuracy", "ci_low",
                    "ci_high", "cost_per_1k", "mean_latency_ms", "mean_tokens", "schema_compliance",
                    "field_f1", "on_frontier", "chosen"]


@dataclass(frozen=True)
class Arms:
    """The per-example answers of a cascade's two arms on the examples both answered."""

    primary: str
    fallback: str
    examples: np.ndarray  # example ids
    confidence: np.ndarray  # primary's; NaN where it has none
    right: tuple[np.ndarray, np.ndarray]  # (primary, fallback) correctness
    cost: tuple[np.ndarray, np.ndarray]  # USD per query; NaN unknown
    latency: tuple[np.ndarray, np.ndarray]  # ms per query
    tokens: tuple[np.ndarray, np.ndarray]  # prompt + completion tokens per query
    valid: tuple[np.ndarray, np.ndarray]  # schema-valid answers
    # extraction: per-example (tp, fp, fn) of field F1 (n, 3) of each arm; None otherwise
    counts: tuple[np.ndarray, np.ndarray] | None = None


def _arm_rows(df: pd.DataFrame, summary: pd.DataFrame, name: str) -> pd.DataFrame:
    """Draw 0 of the arm a cascade names (a row's display name, or a one-arm strategy)."""
    hit = summary[[row_name(r) == name for _, r in summary.iterrows()]]
    if not len(hit):
        hit = summary[summary["strategy"] == name]
    if len(hit) != 1:
        return df.iloc[:0]
    s, k = hit.iloc[0]["strategy"], int(hit.iloc[0]["k"])
    return df[(df["strategy"] == s) & (df["k"] == k) & (df["draw"] == 0)]


def _counts(x: pd.DataFrame, task: Task) -> np.ndarray:
    """Per example (tp, fp, fn) summed over the fields (Task.example_counts)."""
    return np.array([task.example_counts(gold, pred) for gold, pred
                     in zip(x["expected"], x["prediction"], strict=True)], dtype=float
                    ).reshape(-1, 3)


def arms_of(c: CascadeConfig, df: pd.DataFrame, summary: pd.DataFrame,
            task: Task | None = None) -> Arms:
    """The two arms' answers, aligned on the examples both have an answer of the model for
    (with field F1 counts for an extraction task)."""
    a = _arm_rows(df, summary, c.primary).set_index("example_id")
    b = _arm_rows(df, summary, c.fallback).set_index("example_id")
    a, b = a[~a["endpoint_failed"]], b[~b["endpoint_failed"]]
    ids = [e for e in a.index if e in b.index]
    a, b = a.loc[ids], b.loc[ids]

    def col(x: pd.DataFrame, name: str) -> np.ndarray:
        return np.asarray(pd.to_numeric(x[name], errors="coerce").to_numpy(dtype=float))

    def tokens(x: pd.DataFrame) -> np.ndarray:
        return np.asarray(np.nan_to_num(col(x, "prompt_tokens"))
                          + np.nan_to_num(col(x, "completion_tokens")))

    return Arms(c.primary, c.fallback, np.asarray(ids, dtype=object),
                col(a, "confidence"),
                (a["correct"].astype(bool).to_numpy(), b["correct"].astype(bool).to_numpy()),
                (col(a, "cost_usd"), col(b, "cost_usd")),
                (np.nan_to_num(col(a, "latency_ms")), np.nan_to_num(col(b, "latency_ms"))),
                (tokens(a), tokens(b)),
                (a["schema_valid"].astype(bool).to_numpy(), b["schema_valid"].astype(bool).to_numpy()),
                (_counts(a, task), _counts(b, task))
                if task is not None and has_fields(task) else None)


def priced(arms: Arms) -> bool:
    """Whether the cost measure is money: both arms' costs known and not all zero."""
    both = np.concatenate(arms.cost)
    return bool(both.size) and not np.isnan(both).any() and float(both.sum()) > 0


def thresholds(c: CascadeConfig, arms: Arms) -> tuple[float, ...]:
    """The configured thresholds; `auto`: 0 (never route), the primary's confidence deciles,
    and 1 (route all but the certain)."""
    if c.thresholds is not None:
        return c.thresholds
    conf = arms.confidence[~np.isnan(arms.confidence)]
    cut = np.quantile(conf, AUTO_QUANTILES).round(3).tolist() if conf.size else []
    return tuple(sorted({0.0, 1.0, *cut}))


def routed(arms: Arms, t: float, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Which examples go to the fallback at threshold t: confidence below t, or none."""
    conf = arms.confidence[rows]
    return np.asarray(np.isnan(conf) | (conf < t))


def outcome(arms: Arms, t: float, rows: np.ndarray | slice = slice(None)
            ) -> dict[str, np.ndarray]:
    """Per example at threshold t: routed, correct, cost, latency and tokens of the cascade."""
    r = routed(arms, t, rows)
    (pa, pb), (ca, cb) = arms.right, arms.cost
    (la, lb), (ta, tb) = arms.latency, arms.tokens
    va, vb = arms.valid
    extra = {} if arms.counts is None else {
        "counts": np.where(r[:, None], arms.counts[1][rows], arms.counts[0][rows])}
    return {**extra, "routed": r, "correct": np.where(r, pb[rows], pa[rows]),
            "valid": np.where(r, vb[rows], va[rows]),
            "cost": ca[rows] + np.where(r, cb[rows], 0.0),
            "latency": la[rows] + np.where(r, lb[rows], 0.0),
            "tokens": ta[rows] + np.where(r, tb[rows], 0.0)}


def _measure(o: dict[str, np.ndarray], money: bool) -> float:
    return float(np.mean(o["cost"] if money else o["latency"])) if len(o["cost"]) else math.nan


@dataclass(frozen=True)
class Rule:
    """How the operating point is chosen: by default the cheapest threshold not significantly
    less accurate than the better arm; with `decision.cascade_min_accuracy` the cheapest at or
    above that accuracy; with `decision.cascade_max_cost_per_1k` (priced arms only) the most
    accurate within that cost; with both, the cheapest meeting both. When no threshold meets
    them, the default rule."""

    alpha: float
    min_accuracy: float | None = None
    max_cost_per_1k: float | None = None

    def describe(self, money: bool) -> str:
        """The rule in words."""
        cap = self.max_cost_per_1k if money else None
        if self.min_accuracy is not None:
            within = f" within ${cap:g} per 1k queries" if cap is not None else ""
            return f"the cheapest threshold with accuracy at least {self.min_accuracy:g}{within}"
        if cap is not None:
            return f"the most accurate threshold within ${cap:g} per 1k queries"
        return ("the cheapest threshold whose accuracy is not significantly below the better "
                f"arm alone (McNemar, alpha {self.alpha:g})")


def choose(arms: Arms, ts: Sequence[float], rows: np.ndarray, rule: Rule | float) -> float:
    """The threshold `rule` picks on `rows` (see Rule; a bare number is the default rule's
    alpha); ties: the more accurate, then the lower t."""
    rule = rule if isinstance(rule, Rule) else Rule(float(rule))
    money = priced(arms)
    cap = rule.max_cost_per_1k if money else None
    if rule.min_accuracy is not None or cap is not None:
        met = []
        for t in ts:
            o = outcome(arms, t, rows)
            acc, measure = float(o["correct"].mean()), _measure(o, money)
            if (rule.min_accuracy is None or acc >= rule.min_accuracy) and (
                    cap is None or 1000 * measure <= cap):
                met.append((measure, -acc, t) if rule.min_accuracy is not None
                           else (-acc, measure, t))
        if met:
            return min(met)[2]
    alpha = rule.alpha
    pa, pb = arms.right[0][rows], arms.right[1][rows]
    best = pa if pa.mean() >= pb.mean() else pb
    ok = []
    for t in ts:
        o = outcome(arms, t, rows)
        right = o["correct"]
        if right.mean() >= best.mean() or stats.mcnemar_exact(right, best) >= alpha:
            ok.append((_measure(o, money), -float(right.mean()), t))
    return min(ok)[2] if ok else max(ts, key=lambda t: outcome(arms, t, rows)["correct"].mean())


def folds(examples: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded halves of the examples (index arrays)."""
    order = np.random.default_rng(seed).permutation(len(examples))
    half = len(examples) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def cross_fit(arms: Arms, ts: Sequence[float], seed: int, alpha: Rule | float
              ) -> tuple[list[float], dict[str, np.ndarray]]:
    """2-fold cross-fitting: the threshold `choose` picks on each seeded half (folds), and
    every example's cascade outcome under the threshold chosen on the other half."""
    n = len(arms.examples)
    held = {"correct": np.zeros(n, dtype=bool), "routed": np.zeros(n, dtype=bool),
            "valid": np.zeros(n, dtype=bool), "cost": np.zeros(n), "latency": np.zeros(n)}
    if arms.counts is not None:
        held["counts"] = np.zeros((n, 3))
    chosen = []
    a_idx, b_idx = folds(arms.examples, seed)
    for pick, score in ((a_idx, b_idx), (b_idx, a_idx)):
        t = choose(arms, ts, pick, alpha)
        chosen.append(t)
        o = outcome(arms, t, score)
        for key in held:
            held[key][score] = o[key]
    return chosen, held


def _frontier(values: list[tuple[float, float]]) -> list[bool]:
    """Pareto frontier of (cost measure, accuracy): no other point is cheaper-or-equal and
    more accurate, or cheaper and as accurate."""
    return [not any((c2 <= c and a2 > a) or (c2 < c and a2 >= a) for c2, a2 in values)
            for c, a in values]


def evaluate(c: CascadeConfig, df: pd.DataFrame, summary: pd.DataFrame, meta: RunMeta,
             n_boot: int, task: Task | None = None) -> CascadeResult | None:
    """One cascade's frontier, chosen point (cross-fitted) and paired comparisons; None when
    its arms share no answered example. Extraction tasks: field F1 per threshold too."""
    arms = arms_of(c, df, summary, task)
    n = len(arms.examples)
    if n < 2:
        return None
    ts = thresholds(c, arms)
    money = priced(arms)
    alpha = meta.decision.alpha
    rule = Rule(alpha, meta.decision.cascade_min_accuracy, meta.decision.cascade_max_cost_per_1k)
    deploy = choose(arms, ts, np.arange(n), rule)
    rows, points = [], []
    for t in ts:
        o = outcome(arms, t)
        ci = proportion(int(o["correct"].sum()), n)
        points.append((_measure(o, money), ci.estimate))
        rows.append((t, float(o["routed"].mean()), ci,
                     1000 * float(o["cost"].mean()) if money else math.nan,
                     float(o["latency"].mean()), float(o["tokens"].mean()),
                     float(o["valid"].mean()),
                     stats.micro_f1(o["counts"]) if "counts" in o else math.nan))
    frontier = tuple(FrontierPoint(c.name, t, n, share, ci.estimate, ci.low, ci.high, cost, lat,
                                   tok, valid, f1, t == deploy, on)
                     for (t, share, ci, cost, lat, tok, valid, f1), on
                     in zip(rows, _frontier(points), strict=True))
    chosen_on, held = cross_fit(arms, ts, meta.dataset.seed, rule)
    name = str(ArmId(c.name, threshold=deploy))
    tests = [(other, paired_test(held["correct"].astype(float), right.astype(float),
                                 n_boot=n_boot))
             for other, right in ((c.primary, arms.right[0]), (c.fallback, arms.right[1]))]
    adjusted = stats.holm_adjust([t.p_value for _, t in tests])
    comparisons = tuple(Comparison(name, other, "accuracy", n, t.difference, t.p_value, adj,
                                   adj < alpha, t.test)
                        for (other, t), adj in zip(tests, adjusted, strict=True))
    ci = proportion(int(held["correct"].sum()), n)
    return CascadeResult(
        c.name, c.primary, c.fallback, n, "cost_per_1k" if money else "mean_latency_ms", deploy,
        tuple(chosen_on), rule.describe(money),
        "2-fold cross-fitting: the threshold chosen on each seeded half answers the other "
        "half; the operating point's figures are those held-out answers",
        HeldOut(ci.estimate, ci.low, ci.high, float(held["routed"].mean()),
                1000 * float(held["cost"].mean()) if money else None,
                float(held["latency"].mean()), float(held["valid"].mean()),
                stats.micro_f1(held["counts"]) if "counts" in held else math.nan),
        {c.primary: _single(arms, 0, money), c.fallback: _single(arms, 1, money)},
        frontier, comparisons)


def _single(arms: Arms, i: int, money: bool) -> SingleArm:
    return SingleArm(float(arms.right[i].mean()),
                     1000 * float(arms.cost[i].mean()) if money else None,
                     float(arms.latency[i].mean()), float(arms.tokens[i].mean()))


def evaluate_all(df: pd.DataFrame, summary: pd.DataFrame, meta: RunMeta, n_boot: int,
                 task: Task | None = None) -> list[CascadeResult]:
    """Every cascade of the run's config (evaluate), those with answers to route."""
    out = []
    for c in meta.config.cascades:
        got = evaluate(c, df, summary, meta, n_boot, task)
        if got is not None:
            out.append(got)
    return out


def frontier_frame(cascades: Sequence[CascadeResult]) -> pd.DataFrame:
    """cascade.csv: every cascade's thresholds with their figures (in sample)."""
    rows = [asdict(p) for c in cascades for p in c.frontier]
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


def summary_rows(cascades: Sequence[CascadeResult]) -> pd.DataFrame:
    """The cascade rows of summary.csv and the arms table: one per cascade, its operating point
    (NAME@t=THRESHOLD) with the held-out figures (the in-sample ones are in cascade.csv)."""
    rows = []
    for c in cascades:
        h = c.held_out
        rows.append({"strategy": c.arm, "type": "cascade",
                     "model": f"{c.primary} -> {c.fallback}", "k": 0, "n": c.n,
                     "draws": 1, "answers": c.n, "accuracy": h.accuracy,
                     "ci_low": h.ci_low, "ci_high": h.ci_high, "errors": 0,
                     "failures": 0, "endpoint_failures": 0, "cache_hits": 0,
                     "coverage": 1.0, "fallback_share": h.fallback_share,
                     "schema_compliance": h.schema_compliance, "field_f1": h.field_f1,
                     "cost_per_1k": math.nan if h.cost_per_1k is None else h.cost_per_1k,
                     "latency_mean_ms": h.mean_latency_ms, "cascade_chosen": True})
    return pd.DataFrame(rows)


def _cost_text(cost_per_1k: float | None, latency_ms: float) -> str:
    if cost_per_1k is not None:
        return f"${cost_per_1k:.4g} per 1k queries"
    return f"{latency_ms / 1000:.2f} s per query (no prices: latency compared)"


def _cost(c: CascadeResult, arm: str | None = None) -> float | None:
    """The cost measure of the operating point (arm None) or of one arm alone."""
    if arm is None:
        h = c.held_out
        return h.cost_per_1k if c.cost_measure == "cost_per_1k" else h.mean_latency_ms
    one = c.single[arm]
    return one.cost_per_1k if c.cost_measure == "cost_per_1k" else one.mean_latency_ms


def is_hybrid(c: CascadeResult) -> bool:
    """Whether the held-out operating point routes some but not all traffic, is significantly
    more accurate than the cheaper arm alone, not significantly less accurate than the more
    accurate arm, and cheaper than it (by the cost measure)."""
    h, best, cheap = c.held_out, c.better_arm, c.cheaper_arm
    mine, theirs = _cost(c), _cost(c, best)
    if not (0 < h.fallback_share < 1 and mine is not None and theirs is not None
            and mine < theirs):
        return False
    over, against = c.against(cheap), c.against(best)
    return (over.significant and over.delta.estimate > 0
            and not (against.significant and against.delta.estimate < 0))


def routing_text(c: CascadeResult) -> str:
    """One reason on the cascade's operating point: its held-out accuracy, cost and paired
    differences with both arms alone, whatever the verdict."""
    h, best, cheap = c.held_out, c.better_arm, c.cheaper_arm
    over, against = c.against(cheap), c.against(best)
    worse = against.significant and against.delta.estimate < 0
    head = (f"Routing is not recommended: {c.arm} is significantly less accurate than {best} "
            "alone" if worse else f"{c.arm}")
    return (f"{head}: held-out accuracy {h.accuracy:.3f} [{h.ci_low:.3f}, {h.ci_high:.3f}], "
            f"{100 * h.fallback_share:.0f}% routed to {c.fallback}, "
            f"{_cost_text(h.cost_per_1k, h.mean_latency_ms)}; "
            f"{100 * against.delta.estimate:+.1f} points against {best} alone (Holm p = "
            f"{against.p_adjusted:.3g}), {100 * over.delta.estimate:+.1f} over {cheap} alone "
            f"(Holm p = {over.p_adjusted:.3g}); {c.selection}.")


def hybrid(cascades: Sequence[CascadeResult]) -> tuple[CascadeResult, str] | None:
    """The cascade of the `hybrid` verdict (the first that is_hybrid) and its sentence; None
    when none is."""
    for c in cascades:
        if not is_hybrid(c):
            continue
        h, best, one = c.held_out, c.better_arm, c.single[c.better_arm]
        sentence = (f"Route answers of {c.primary} with confidence below {c.threshold:g} to "
                    f"{c.fallback}: {100 * h.fallback_share:.0f}% of traffic, accuracy "
                    f"{h.accuracy:.3f} vs {one.accuracy:.3f} ({best} alone), "
                    f"{_cost_text(h.cost_per_1k, h.mean_latency_ms)} vs "
                    f"{_cost_text(one.cost_per_1k, one.mean_latency_ms)}.")
        return c, sentence
    return None


__all__ = ["FRONTIER_COLUMNS", "Arms", "Rule", "arms_of", "choose", "cross_fit", "evaluate",
           "evaluate_all", "folds", "frontier_frame", "hybrid", "is_hybrid", "outcome",
           "routing_text", "summary_rows", "thresholds"]
