"""The prompt design space: *what was tried, and which cheap levers are left?* One row per
setting of each dimension (k, selection, variant, voting) with its best arm and that arm's
paired gain over zero-shot (read from the comparisons table), and the levers the run lacks.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.arms import row_name
from harness.strategies import is_prompting

TRIED_COLUMNS = ["dimension", "setting", "arms", "best_arm", "metric", "best", "gain",
                 "gain_ci_low", "gain_ci_high", "p_adjusted"]


def _gain(comparisons: pd.DataFrame, arm: str, zero: str | None) -> dict[str, float]:
    nan = math.nan
    out = {"gain": nan, "gain_ci_low": nan, "gain_ci_high": nan, "p_adjusted": nan}
    if zero is None or arm == zero or not len(comparisons):
        return out
    for a, b, sign in ((arm, zero, 1.0), (zero, arm, -1.0)):
        row = comparisons[(comparisons["arm_a"] == a) & (comparisons["arm_b"] == b)]
        if len(row):
            r = row.iloc[0]
            lo, hi = sign * float(r["delta_ci_low"]), sign * float(r["delta_ci_high"])
            return {"gain": sign * float(r["delta"]), "gain_ci_low": min(lo, hi),
                    "gain_ci_high": max(lo, hi), "p_adjusted": float(r["p_adjusted"])}
    return out


def tried_frame(summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str = "accuracy"
                ) -> pd.DataFrame:
    """What was tried of the prompt design space: one row per setting of each dimension (k,
    selection, variant, voting), with its best arm by `metric` and that arm's paired gain over
    zero-shot with its Holm-adjusted p (from the comparisons table)."""
    ok = summary[(summary["n"] > 0) & summary[metric].notna()] if metric in summary else summary
    prompting = ok[ok["type"].map(is_prompting).astype(bool)] if len(ok) else ok
    if not len(prompting):
        return pd.DataFrame(columns=TRIED_COLUMNS)
    zs = ok[ok["type"] == "zero_shot"]
    zero = row_name(zs.iloc[0]) if len(zs) else None
    few = prompting[prompting["type"] != "zero_shot"]
    groups: list[tuple[str, str, pd.DataFrame]] = [("zero-shot", "k = 0",
                                                    prompting[prompting["type"] == "zero_shot"])]
    if len(few):
        ks = sorted({int(k) for k in few["k"]})
        groups.append(("shots (k)", f"k = {ks[0]}" if len(ks) == 1 else f"k = {ks[0]}..{ks[-1]}"
                       + f" ({', '.join(map(str, ks))})", few))
        for sel in dict.fromkeys(few["selection"].dropna()):
            groups.append(("selection", str(sel), few[few["selection"] == sel]))
    for var in dict.fromkeys(prompting["variant"].dropna()):
        groups.append(("variant", str(var), prompting[prompting["variant"] == var]))
    for n in sorted({int(x) for x in prompting["samples"] if int(x) > 1}):
        groups.append(("voting", f"{n} samples", prompting[prompting["samples"] == n]))
    rows = []
    for dimension, setting, arms in groups:
        if not len(arms):
            continue
        top = arms.loc[arms[metric].idxmax()]
        rows.append({"dimension": dimension, "setting": setting, "arms": len(arms),
                     "best_arm": row_name(top), "metric": metric, "best": float(top[metric]),
                     **_gain(comparisons, row_name(top), zero)})
    return pd.DataFrame(rows, columns=TRIED_COLUMNS)


def untried(summary: pd.DataFrame) -> tuple[str, ...]:
    """The cheap prompting levers this run did not try (empty when it has no prompting arm)."""
    prompting = summary[summary["type"].map(is_prompting).astype(bool)] if len(summary) else summary
    if not len(prompting):
        return ()
    few = prompting[prompting["type"] != "zero_shot"]
    out = []
    if not len(few):
        out.append("few-shot examples (a k sweep: type few_shot, shots [1, 2, 4, 8])")
    elif not (few["selection"].fillna("").str.startswith("similar")).any():
        out.append("similar examples (selection: similar)")
    if not (prompting["samples"] > 1).any():
        out.append("self-consistency (samples: 5 with temperature: 0.7)")
    if not prompting["variant"].notna().any():
        out.append("prompt variants (variants: on a strategy)")
    if (prompting["structured_output"] == "none").all():
        out.append("constrained decoding (structured_output: json_schema)")
    return tuple(out)


def untried_text(levers: tuple[str, ...]) -> str:
    """The sentence naming the untried levers ("" when none)."""
    return "Not tried yet, and cheap to try: " + "; ".join(levers) + "." if levers else ""


__all__ = ["TRIED_COLUMNS", "tried_frame", "untried", "untried_text"]
