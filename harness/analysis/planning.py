"""Planning: *how large must the eval be?* `harness plan`: what an eval of the config's size can
detect, and the size it would need, before any model is called.

The comparisons are the ones a run makes (tables.comparisons_frame: every arm against zero-shot
and against the best prompting arm, Holm-adjusted). Planning uses Holm's strictest step,
alpha / m for m planned comparisons, so the figures hold for every comparison. Discordance
(the share of examples two arms answer differently, right against wrong) comes from a pilot
run's own pairs when one is given, else from stated defaults.

Clustered evals (`dataset.cluster`): each pilot pair's design effect (the comparisons table's
`design_effect`) scales the plan: the detectable difference is that of n / deff examples and
the examples needed are deff times Connor's n for independent examples (Donner & Klar 2000,
ch. 5: the sample-size inflation 1 + (m - 1) ICC for clusters of size m), both by the normal
approximation, as the clustered test is a chi-square test. Without a pilot the design effect
is unknown; the plan then assumes 1 and says so.

The plateau rule's steps (curves.detect_plateau on each few-shot curve, curves.curves_and_plateau:
every swept strategy's ks in order, its zero-shot arm as k=0) are planned too, as paired
comparisons of their own: each step's interval is at steps.curve_confidence(m) for the m curves
judged, so each step is planned at alpha 1 - that confidence (not at the comparisons' Holm
alpha). Their discordance is the pilot's own for the pair of arms when the pilot has both, else
the stated default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.analysis import power, steps
from harness.analysis.comparisons import detectable
from harness.analysis.sequential import SequentialPlan, expected_examples
from harness.config import Config
from harness.errors import InputError
from harness.running.plan import Plan, plan
from harness.running.records import RunMeta
from harness.running.store import META, read_columns, read_meta
from harness.strategies import Arm, arm_name

if TYPE_CHECKING:
    from harness.analysis.pipeline import Analysis


@dataclass(frozen=True)
class PlanRow:
    """One planned comparison (or the default pair when there is no pilot)."""

    comparison: str
    discordance: float
    detectable: float | None  # minimum detectable paired difference at the planned n
    needed: int | None  # examples needed to detect the target difference
    method: str
    design_effect: float = 1.0  # clustered: the pilot pair's, which the figures account for


@dataclass(frozen=True)
class EvalPlan:
    """What `harness plan` prints."""

    n: int
    comparisons: int  # m, the comparisons Holm adjusts over
    alpha: float  # the familywise alpha; each figure uses alpha / m
    power: float
    delta: float
    source: str  # where the discordance came from
    accuracy: tuple[PlanRow, ...]
    compliance: tuple[PlanRow, ...]
    steps: tuple[PlanRow, ...] = ()  # the plateau rule's steps of each few-shot curve
    curves: int = 0  # m, the few-shot curves the plateau rule judges
    step_alpha: float | None = None  # each step's alpha: 1 - steps.curve_confidence(curves)
    metric: str = "accuracy"  # decision.metric, what the plateau judges the steps on
    # run.sequential: per accuracy row, the examples the design is expected to use (simulated)
    sequential: tuple[tuple[str, SequentialPlan], ...] = ()


@dataclass(frozen=True)
class PlannedStep:
    """One step of a few-shot curve that the plateau rule judges: `strategy` from k_from to
    k_to, between two arms (display names; k=0 is the curve's zero-shot arm)."""

    strategy: str
    k_from: int
    k_to: int
    arm_from: str
    arm_to: str

    @property
    def name(self) -> str:
        """How the plan names the step: `few-shot k=2 -> k=4`."""
        return f"{self.strategy} k={self.k_from} -> k={self.k_to}"


def planned_comparisons(arms: int, has_zero_shot: bool) -> int:
    """m: each of `arms` arms against zero-shot and against the best prompt (the pair of those
    two counted once), as comparisons_frame makes them."""
    if arms < 2:
        return 1
    return (arms - 1) + max(arms - 2, 0) if has_zero_shot else arms - 1


def _row(name: str, psi: float, n: int, delta: float, alpha: float, target: float,
         deff: float = 1.0) -> PlanRow:
    if not psi > 0 or math.isnan(psi):
        return PlanRow(name, psi, None, None, "no disagreement in the pilot")
    deff = 1.0 if math.isnan(deff) else max(1.0, deff)
    det = power.clustered_mde(n, psi, deff, alpha, target)
    needed: int | None = None
    method = det.method
    if delta <= psi and deff > 1:  # as clustered_mde: Connor's n, times the design effect
        needed = math.ceil(power.connor_n(delta, psi, alpha, target) * deff)
    elif delta <= psi:
        needed, method = power.required_n(delta, psi, alpha, target)
    return PlanRow(name, psi, det.mde, needed, method, deff)


def _compliance_discordance(a: Analysis) -> dict[str, float]:
    """Per comparison of the pilot: the share of examples one arm answers within the schema
    and the other not (first draw of each arm, examples both answered)."""
    from harness.analysis.arms import row_name

    df = a.results
    ok = df[(df["draw"] == 0) & ~df["endpoint_failed"]]
    table = ok.pivot_table(index="example_id", columns=["strategy", "k"], values="schema_valid",
                           aggfunc="first")
    names = {(str(r["strategy"]), int(r["k"])): row_name(r) for _, r in a.summary.iterrows()}
    out: dict[str, float] = {}
    for _, c in a.comparisons.iterrows():
        ids = [key for key, name in names.items() if name in (c["arm_a"], c["arm_b"])]
        if len(ids) == 2 and all(i in table.columns for i in ids):
            both = table[list(ids)].dropna()
            out[f"{c['arm_a']} vs {c['arm_b']}"] = power.discordance(
                both[ids[0]].astype(bool).to_numpy(), both[ids[1]].astype(bool).to_numpy())
    return out


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def check_pilot(pilot: RunMeta, task_type: str, labels: Iterable[str], arms: Iterable[str],
                source: str) -> list[str]:
    """The arms (display names: few-shot@k=4) a pilot run shares with the config being planned,
    in the config's order; an InputError when its discordance cannot stand for the config's:
    a pilot of another task type or label set (compared as the gate compares a baseline: the
    labels as sets), or one sharing no arm with the config. `source` names the pilot (--pilot)."""
    wanted = list(dict.fromkeys(arms))
    differ = []
    if pilot.task_type != task_type:
        differ.append(f"is task {pilot.task_type!r}, this config is {task_type!r}")
    mine, theirs = set(labels), set(pilot.labels)
    if not differ and mine != theirs:
        only_pilot, only_mine = sorted(theirs - mine), sorted(mine - theirs)
        parts = [f"only in the pilot: {_some([repr(x) for x in only_pilot])}" if only_pilot else "",
                 f"only in this config: {_some([repr(x) for x in only_mine])}" if only_mine else ""]
        differ.append(f"has another label set ({len(theirs)} labels, this config {len(mine)}; "
                      + "; ".join(p for p in parts if p) + ")")
    if differ:
        raise InputError(f"--pilot {source}: the pilot run " + "; it ".join(differ)
                         + "; its disagreement between arms says nothing about this config's: "
                         "plan with a pilot run of this task and label set")
    have = {arm_name(a.strategy, a.k, a.type) for a in pilot.arms}
    shared = [a for a in wanted if a in have]
    if not shared:
        raise InputError(f"--pilot {source}: the pilot run shares no arm with this config (the "
                         f"pilot has {_some(sorted(have))}; the config {_some(wanted)}); plan "
                         "with a pilot run of this config's strategies")
    return shared


def check_pilot_run(pilot_dir: str | Path, p: Plan) -> list[str]:
    """check_pilot for a pilot run folder and a planned config (`running.plan`)."""
    arms = [arm_name(s.arm.strategy, s.arm.k, s.arm.type) for s in p.strategies]
    return check_pilot(read_meta(Path(pilot_dir)), p.task.name, p.data.labels, arms,
                       str(pilot_dir))


def plan_eval(n: int, arms: int, has_zero_shot: bool, *, pilot: Analysis | None = None,
              delta: float = 0.03, target: float = 0.8, alpha: float = 0.05,
              pilot_name: str = "", clustered: bool = False,
              shared: Sequence[str] | None = None) -> EvalPlan:
    """The plan for an eval of n examples and `arms` arms (see the module); `clustered`: the
    config names a `dataset.cluster`; `shared`: the arms the pilot shares with the config
    (check_pilot), named in the plan's source line."""
    m = planned_comparisons(arms, has_zero_shot)
    a = alpha / m
    if pilot is None or pilot.comparisons.empty:
        source = (f"stated defaults: discordance {power.DEFAULT_DISCORDANCE:g} for accuracy, "
                  f"{power.DEFAULT_COMPLIANCE_DISCORDANCE:g} for schema compliance (pass "
                  "--pilot RUN_DIR for a run's own)")
        if clustered:
            source += ("; the examples are clustered (dataset.cluster) and, without a pilot, "
                       "the design effect is taken as 1: the figures are optimistic")
        acc: tuple[PlanRow, ...] = (_row("any two arms", power.DEFAULT_DISCORDANCE, n, delta, a,
                                          target),)
        comp: tuple[PlanRow, ...] = (_row("any two arms", power.DEFAULT_COMPLIANCE_DISCORDANCE,
                                          n, delta, a, target),)
        return EvalPlan(n, m, alpha, target, delta, source, acc, comp)
    rows = pilot.comparisons[pilot.comparisons["discordance"].notna()]
    if shared is not None:  # only pairs of arms this config has: no plan for arms it lacks
        keep = set(shared)
        rows = rows[rows["arm_a"].isin(keep) & rows["arm_b"].isin(keep)]
        if rows.empty:
            return plan_eval(n, arms, has_zero_shot, delta=delta, target=target, alpha=alpha,
                             clustered=clustered)
    acc = tuple(_row(f"{r['arm_a']} vs {r['arm_b']}", float(r["discordance"]), n, delta, a,
                     target, float(r.get("design_effect", 1.0))) for _, r in rows.iterrows())
    pairs = {f"{r['arm_a']} vs {r['arm_b']}" for _, r in rows.iterrows()}
    comp = tuple(_row(name, psi, n, delta, a, target)
                 for name, psi in _compliance_discordance(pilot).items() if name in pairs)
    source = f"the pilot run in {pilot_name or 'the pilot folder'} (its own pairs of arms)"
    if shared is not None:
        source += f"; it shares {len(shared)} arm(s) with this config: {_some(list(shared))}"
    if clustered and "design_effect" not in pilot.comparisons:
        source += ("; the pilot has no clusters, so the design effect is taken as 1: the "
                   "figures are optimistic")
    elif "design_effect" in pilot.comparisons:
        source += ("; accuracy rows account for each pair's design effect, schema compliance "
                   "rows assume 1")
    return EvalPlan(n, m, alpha, target, delta, source, acc, comp)


def _arm_rows(arms: Iterable[Arm]) -> list[dict[str, Any]]:
    """The columns of a run's summary that the curves are built from, one row per (strategy, k)
    in the arms' order (arms.summary_frame: the first draw's arm stands for the others)."""
    first: dict[tuple[str, int], Arm] = {}
    for a in arms:
        first.setdefault((a.strategy, a.k), a)
    return [{"strategy": a.strategy, "type": a.type, "model": a.model, "k": a.k,
             "structured_output": a.structured_output, "samples": a.samples,
             "variant": a.variant} for a in first.values()]


def curve_steps(arms: Iterable[Arm]) -> tuple[tuple[PlannedStep, ...], int]:
    """The steps the plateau rule judges in a run of these arms, and m, the number of curves it
    judges (steps.curve_steps: the same k=0 point and steps as curves.curves_and_plateau)."""
    found, judged = steps.curve_steps(_arm_rows(arms))
    return tuple(PlannedStep(*st) for st in found), judged


def step_alpha(m: int) -> float:
    """The alpha of each step of the plateau rule when m curves are judged: one minus the
    confidence of the steps' intervals (steps.curve_confidence)."""
    return 1 - steps.curve_confidence(m)


def pilot_step_discordance(pilot: Analysis, meta: RunMeta, steps: Iterable[PlannedStep]
                           ) -> dict[tuple[str, str], tuple[float, float]]:
    """Per step whose two arms the pilot has, scored on a shared example: (discordance, design
    effect) of the pair in the pilot, as the comparisons table measures a pair (comparisons.detectable:
    the majority-correct answers of the examples both arms have; a clustered pilot's design
    effect of the paired difference, else 1). A pair that never disagrees has discordance 0."""
    from harness.analysis.arms import clusters_of, row_name, score_matrix
    from harness.analysis.intervals import complete_rows

    arms = {row_name(r): (str(r["strategy"]), int(r["k"])) for _, r in pilot.summary.iterrows()}
    codes = clusters_of(meta)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for st in steps:
        if st.arm_from not in arms or st.arm_to not in arms:
            continue
        ma, mb = (score_matrix(pilot.results, *arms[x], meta.examples)
                  for x in (st.arm_to, st.arm_from))
        if not complete_rows(ma, mb).any():
            continue
        det = detectable(ma, mb, codes)
        out[(st.arm_from, st.arm_to)] = ((det.discordance, det.design_effect) if det is not None
                                         else (0.0, 1.0))
    return out


def plan_steps(n: int, steps: Sequence[PlannedStep], curves: int, *, delta: float = 0.03,
               target: float = 0.8,
               pilot: Mapping[tuple[str, str], tuple[float, float]] | None = None
               ) -> tuple[PlanRow, ...]:
    """A PlanRow per step, at the plateau rule's alpha for `curves` curves (step_alpha);
    discordance and design effect from `pilot` (pilot_step_discordance) where it has the step,
    else the stated default (named in the row's method when there is a pilot)."""
    a = step_alpha(curves)
    rows = []
    figures: dict[tuple[float, float], PlanRow] = {}  # steps of one discordance plan alike
    for st in steps:
        got = None if pilot is None else pilot.get((st.arm_from, st.arm_to))
        psi, deff = got if got is not None else (power.DEFAULT_DISCORDANCE, 1.0)
        if (psi, deff) not in figures:
            figures[(psi, deff)] = _row("", psi, n, delta, a, target, deff)
        row = dataclasses.replace(figures[(psi, deff)], comparison=st.name)
        if pilot is not None and got is None:
            row = dataclasses.replace(row, method=f"{row.method}; the stated default "
                                      "discordance: the pilot lacks this pair")
        rows.append(row)
    return tuple(rows)


def plan_config(cfg: Config, *, pilot: str | Path | None = None, delta: float = 0.03,
                target: float = 0.8, alpha: float = 0.05) -> EvalPlan:
    """`harness plan` of a config: plan_eval of its arms (from a pilot run folder's own pairs
    when given, check_pilot_run) with the plateau rule's steps of its few-shot curves
    (plan_steps). No model is called."""
    p = plan(cfg)
    arms = {(s.arm.strategy, s.arm.k) for s in p.strategies}
    zero = any(s.arm.type == "zero_shot" for s in p.strategies)
    if pilot is not None and not (Path(pilot) / META).is_file():
        raise InputError(f"--pilot {pilot}: not a run folder (no {META})")
    shared = check_pilot_run(pilot, p) if pilot is not None else None
    meta = read_meta(Path(pilot)) if pilot is not None else None
    pilot_a = None
    if pilot is not None and meta is not None:
        from harness.analysis.pipeline import analyse_columns  # (pandas: only for a pilot)

        pilot_a = analyse_columns(read_columns(Path(pilot)), meta)
    n = len(p.data.eval)
    result = plan_eval(n, len(arms), zero, pilot=pilot_a, delta=delta, target=target,
                       alpha=alpha, pilot_name=str(pilot or ""),
                       clustered=cfg.dataset.cluster is not None, shared=shared)
    steps, curves = curve_steps(s.arm for s in p.strategies)
    found = (pilot_step_discordance(pilot_a, meta, steps)
             if pilot_a is not None and meta is not None else None)
    return dataclasses.replace(result, curves=curves, metric=cfg.decision.metric,
                               step_alpha=step_alpha(curves) if steps else None,
                               steps=plan_steps(n, steps, curves, delta=delta, target=target,
                                                pilot=found),
                               sequential=_sequential_plans(cfg, p, result, delta, alpha))


def _sequential_plans(cfg: Config, p: Plan, result: EvalPlan, delta: float, alpha: float
                      ) -> tuple[tuple[str, SequentialPlan], ...]:
    """With run.sequential: each accuracy comparison's expected examples under the design, at
    the planned difference and the row's discordance, each interval at alpha / the family."""
    design = cfg.run.sequential
    if not design.enabled:
        return ()
    from harness.running.sequential import Monitor

    family = Monitor([s.arm for s in p.strategies], [], design, cfg.decision).family
    available = min(result.n, design.max_examples or result.n)
    return tuple((row.comparison, expected_examples(
        delta, row.discordance, alpha / max(1, family), look_every=design.look_every,
        min_examples=design.min_examples, available=available)) for row in result.accuracy
        if row.discordance > 0)


def _table(p: EvalPlan, first: str, rows: Sequence[PlanRow]) -> list[str]:
    """A section's column heads and one line per row."""
    def points(x: float | None) -> str:
        return "not detectable" if x is None else f"{100 * x:.1f} points"

    out = [f"  {first:<44} {'discordance':>11}  {'detectable at n=' + str(p.n):>22}"
           f"  {'n for ' + format(100 * p.delta, 'g') + ' points':>16}"]
    for r in rows:
        need = "-" if r.needed is None else f"{r.needed:,}"
        out.append(f"  {r.comparison:<44} {r.discordance:>11.3f}  {points(r.detectable):>22}"
                   f"  {need:>16}  ({r.method})")
    return out


def plan_lines(p: EvalPlan, name: str) -> list[str]:
    """The plan as the terminal shows it: the comparisons, then the plateau rule's steps."""
    out = [f"plan for {name}: n = {p.n} eval examples, {p.comparisons} planned comparison(s); "
           f"Holm's strictest step tests at alpha/{p.comparisons} = {p.alpha / p.comparisons:.4g} "
           f"(familywise alpha {p.alpha:g}), power {100 * p.power:g}%",
           f"discordance from {p.source}"]
    for title, rows in (("accuracy", p.accuracy), ("schema compliance", p.compliance)):
        out += [f"{title}:", *_table(p, "comparison", rows)]
    if p.steps and p.step_alpha is not None:
        a = p.step_alpha
        out.append(f"few-shot steps (the plateau rule's, from each k to the next; {p.curves} "
                   f"curve(s) judged, each step's interval at {100 * (1 - a):.4g}% confidence: "
                   f"each step tests at alpha {a:.4g}, not at the Holm alpha above):")
        if p.metric != "accuracy":
            out.append(f"  (the plateau judges the steps on {p.metric.replace('_', ' ')}; these "
                       "figures are McNemar's, on accuracy)")
        out += _table(p, "step", p.steps)
    for comparison, sp in p.sequential:
        out.append(f"sequential ({comparison}): at a difference of {100 * sp.delta:g} points and "
                   f"discordance {sp.discordance:.2f}, the design is expected to use "
                   f"{sp.expected:,.0f} of {sp.available:,} examples per arm "
                   f"({100 * sp.expected / sp.available:.0f}%), settling within the eval in "
                   f"{100 * sp.settled:.0f}% of {sp.runs:,} simulated runs (each interval at "
                   f"alpha {sp.alpha:.3g})")
    return out


__all__ = ["EvalPlan", "PlanRow", "PlannedStep", "check_pilot", "check_pilot_run", "curve_steps",
           "pilot_step_discordance", "plan_config", "plan_eval", "plan_lines", "plan_steps",
           "planned_comparisons", "step_alpha"]
