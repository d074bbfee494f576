"""The format floor: *which recommendation stands when answers must match the schema?* The
schema-compliance floor of the verdict (`decision.min_schema_compliance`): an arm whose answers
match the output schema less often than the floor cannot be recommended.

With a floor the verdict tells three cases apart:

* *fine-tune for format*: no prompting arm reaches the floor and the fine-tuned arm does;
* *constrained decoding already gives the format*: the best prompting arm that reaches the floor
  decodes under a constraint (`structured_output` json_schema or json_object) and the fine-tuned
  arm is not significantly better than it on the decision metric (nor as good and paying back
  its cost), so fine-tuning for format is not needed;
* otherwise the metric case of `rules.decide`, over the arms that reach the floor.

Pure functions; compliance figures are fractions in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.analysis.curves import PlateauResult
from harness.analysis.results import Verdict
from harness.analysis.rules import (
    METRIC_NAMES,
    ArmEvidence,
    decide,
    p_text,
    pays_back,
    points,
)
from harness.kinds import FINE_TUNE, KEEP_PROMPTING, PROMPTING_SUFFICIENT

UNCONSTRAINED = "none"  # structured_output of an arm that decodes without a constraint


@dataclass(frozen=True)
class ArmFormat:
    """One arm's schema compliance and how its decoding was constrained."""

    name: str
    compliance: float  # NaN when no answer was scored
    structured_output: str | None  # json_schema | json_object | none (None: not recorded)

    def reaches(self, floor: float) -> bool:
        """Whether its compliance is at least the floor (an unknown compliance is not)."""
        return not math.isnan(self.compliance) and self.compliance >= floor

    @property
    def constrained(self) -> bool:
        """Whether the model decoded under a schema or JSON constraint."""
        return self.structured_output not in (None, UNCONSTRAINED)


@dataclass(frozen=True)
class FormatEvidence:
    """What the floor needs: the floor, the best prompting arm that reaches it (None when none
    does), the most compliant prompting arm, the fine-tuned arm (None when none), and whether
    the run already has a prompting arm that decodes under a constraint."""

    floor: float
    best_prompt: ArmFormat | None
    most_compliant_prompt: ArmFormat | None
    fine_tuned: ArmFormat | None
    constrained_tried: bool = False  # some prompting arm already decodes under a constraint


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _the_fine_tuned(arm: ArmFormat) -> str:
    """'the fine-tuned arm, NAME,' (the name left out when it says the same)."""
    return "the fine-tuned arm" if arm.name == "fine-tuned" else f"the fine-tuned arm, {arm.name},"


def _how(arm: ArmFormat) -> str:
    return "constrained" if arm.constrained else "unconstrained"


def decide_with_floor(
    plateau: PlateauResult, ft: ArmEvidence | None, fmt: FormatEvidence, *, alpha: float = 0.05,
    equivalence_margin: float = 0.02, metric: str = "accuracy",
) -> Verdict:
    """The verdict when `decision.min_schema_compliance` is set (see the module docstring).

    ``ft`` compares the fine-tuned arm with ``fmt.best_prompt`` (or, when no prompting arm
    reaches the floor, with the best prompting arm regardless of it). The rules, in order:

    1. no prompting arm reaches the floor: fine_tune ("Fine-tune for format") when the
       fine-tuned arm does, else keep_prompting (no arm can be recommended yet);
    2. the fine-tuned arm is below the floor: `rules.decide` without it;
    3. the best prompting arm reaching the floor is constrained and the fine-tuned arm is
       neither significantly better (delta > 0, Holm-adjusted p < alpha) nor as good
       (delta.low > -equivalence_margin) and paying back: prompting_sufficient, "Constrained
       decoding already gives the format"; "at equal <metric>" when p >= alpha or the whole
       interval lies within the margin, else "at a higher <metric>";
    4. otherwise `rules.decide` (the metric case).
    """
    floor, noun = fmt.floor, METRIC_NAMES[metric]
    rule = f"the {_pct(floor)} schema-compliance floor (decision.min_schema_compliance)"
    f = fmt.fine_tuned

    def metric_case(arm: ArmEvidence | None, no_ft: str | None = None) -> Verdict:
        return decide(plateau, arm, alpha=alpha, equivalence_margin=equivalence_margin,
                      metric=metric, no_ft=no_ft)

    compliance = [f"{a.name} ({_how(a)}): schema compliance {_pct(a.compliance)}"
                  for a in (fmt.best_prompt or fmt.most_compliant_prompt, f) if a is not None]
    if fmt.best_prompt is None:
        top = fmt.most_compliant_prompt
        best = (f"the most compliant prompt, {top.name} ({_how(top)}), reaches "
                f"{_pct(top.compliance)}" if top is not None and not math.isnan(top.compliance)
                else "no prompting arm was scored")
        reasons = [f"no prompting arm reaches {rule}", *compliance]
        if ft is not None:
            reasons.append(f"fine-tuned minus best prompt: {points(ft.ft_delta)}, Holm-adjusted "
                           f"{p_text(ft.ft_p_adjusted)}")
        if f is not None and f.reaches(floor):
            return Verdict(FINE_TUNE, f"Fine-tune for format: only {_the_fine_tuned(f)} "
                           f"reaches {rule} ({_pct(f.compliance)}); {best}.", tuple(reasons))
        ft_text = (f"; {_the_fine_tuned(f)} reaches {_pct(f.compliance)}"
                   if f is not None and not math.isnan(f.compliance) else "")
        advice = ("Try a better prompt: constrained decoding was tried and does not reach it"
                  if fmt.constrained_tried
                  else "Try constrained decoding (structured_output: json_schema) or a better prompt")
        return Verdict(KEEP_PROMPTING, f"Keep prompting: no arm reaches {rule}, so none can be "
                       f"recommended; {best}{ft_text}. {advice}.", tuple(reasons))
    bp = fmt.best_prompt
    if f is None or ft is None or not f.reaches(floor):
        no_ft = None if f is None else (f"{_the_fine_tuned(f)} cannot be recommended: "
                                        f"its schema compliance {_pct(f.compliance)} is below "
                                        f"{rule}")
        v = metric_case(None, no_ft)
        return Verdict(v.recommendation, v.sentence, (*v.reasons, *compliance))
    d, p = ft.ft_delta, ft.ft_p_adjusted
    better = d.estimate > 0 and p < alpha
    pays = d.low > -equivalence_margin and pays_back(ft)[0]
    if bp.constrained and not better and not pays:
        equal = p >= alpha or (d.low > -equivalence_margin and d.high < equivalence_margin)
        level = "equal" if equal else "a higher"
        v = metric_case(ft)
        return Verdict(PROMPTING_SUFFICIENT, f"Constrained decoding already gives the format: "
                       f"{bp.name} reaches {_pct(bp.compliance)} compliance at {level} {noun} "
                       f"(fine-tuned minus it: {points(d)}, Holm-adjusted {p_text(p)}); "
                       "fine-tuning for format is not needed.", (*v.reasons, *compliance))
    v = metric_case(ft)
    return Verdict(v.recommendation, v.sentence, (*v.reasons, *compliance))
