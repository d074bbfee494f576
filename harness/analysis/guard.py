"""The guard: *may a verdict be given at all?* When no verdict may be given: the checks that
stand between the statistics and a decision.

A verdict is advice on sound evidence only. It is withheld, with the reasons, when the run is
incomplete, when the endpoint failed on more answers than `run.max_failure_rate` allows, when an
arm could not be evaluated at all, when the arms the decision rests on score at or below chance,
or when their schema compliance has collapsed below `decision.min_compliance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from harness.analysis.arms import reference_arm, row_name
from harness.running.records import RunMeta, endpoint_failure_share
from harness.strategies import is_fine_tuned
from harness.tasks import Task


def endpoint_failure_rate(results: pd.DataFrame, meta: RunMeta) -> tuple[int, int]:
    """(endpoint failures, answers planned) over the arms that were available."""
    failed = results[results["endpoint_failed"]] if len(results) else results
    by_arm = failed.groupby("arm").size().to_dict() if len(failed) else {}
    return endpoint_failure_share(meta, by_arm)


def withhold_reasons(results: pd.DataFrame, summary: pd.DataFrame, meta: RunMeta, task: Task,
                     complete: bool, expected: Sequence[object]) -> list[str]:
    """Why no verdict may be given for this run ([] when one may)."""
    reasons: list[str] = []
    if not complete:
        got = len(results)
        reasons.append(f"the run is incomplete (status {meta.status}: {got} of "
                       f"{meta.expected_records} answers recorded)")
    failed, planned = endpoint_failure_rate(results, meta)
    limit = meta.run.max_failure_rate
    if planned and failed / planned > limit:
        reasons.append(f"the endpoint failed on {failed} of {planned} answers "
                       f"({100 * failed / planned:.1f}%, above run.max_failure_rate "
                       f"{100 * limit:g}%); resume the run to request them again")
    for a in meta.arms:
        if a.unavailable and not meta.allow_missing:  # --allow-missing: a verdict over the rest
            reasons.append(f"arm {a.key} is unavailable: {a.unavailable}")
    if len(summary) == 0:
        return reasons
    chance = task.chance_accuracy(list(expected))
    best = reference_arm(summary, meta.decision.metric, meta.decision.min_schema_compliance)
    answered = summary[(summary["answers"] > 0) & summary["accuracy"].notna()]
    fine_tuned = answered[answered["type"].map(is_fine_tuned).astype(bool)] if len(answered) \
        else answered
    decisive = ([best] if best is not None else []) + [r for _, r in fine_tuned.iterrows()]
    if decisive and all(float(r["accuracy"]) <= chance for r in decisive):
        reasons.append(f"no arm the decision rests on scores above chance ({chance:.3f}: the "
                       "best answer that ignores the input); check the task, the output schema "
                       "and the prompts")
    else:
        for _, r in fine_tuned.iterrows():
            if float(r["accuracy"]) <= chance:
                reasons.append(f"{row_name(r)} scores at or below chance "
                               f"({float(r['accuracy']):.3f} <= {chance:.3f}); check that model")
    floor = meta.decision.min_compliance
    compliance = [float(r["schema_compliance"]) for r in decisive]
    if compliance and all(not math.isnan(c) and c < floor for c in compliance):
        # one arm's low compliance is a finding (say, an unconstrained prompt); every arm's is a
        # broken task or schema
        shown = ", ".join(f"{row_name(r)} {100 * c:.0f}%" for r, c in
                          zip(decisive, compliance, strict=True))
        reasons.append(f"schema compliance has collapsed ({shown}, all below "
                       f"decision.min_compliance {100 * floor:g}%): most answers are unusable; "
                       "check the output schema and the prompts")
    return reasons


def missing_note(meta: RunMeta) -> str | None:
    """With --allow-missing, the sentence that names the arms the verdict leaves out."""
    gone = [a for a in meta.arms if a.unavailable]
    if not meta.allow_missing or not gone:
        return None
    return ("The verdict is over the arms that were evaluated (--allow-missing): "
            + "; ".join(f"{a.key} {a.unavailable}" for a in gone) + ".")
