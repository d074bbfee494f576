"""The plateau rule's steps: *which steps of which curves are judged, and at what confidence?*
A few-shot curve starts at its zero-shot point (`zero_shot_index`: the zero-shot arm of the same
model, constrained the same way and sampled as often; of the same prompt variant when there is
one, else one without a variant) and steps from each k to the next (`curve_steps`); with m
curves judged, each step's interval is at `curve_confidence(m)` = 1 - 0.05/m (Bonferroni over
the curves). Pure, over plain rows (mappings), so that `harness plan` plans exactly the steps the
analysis's curves judge (curves.py) without importing pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from harness.kinds import ZERO_SHOT, ArmId
from harness.strategies import is_sweep


def curve_confidence(m: int) -> float:
    """The interval confidence of each curve's steps when m curves are judged."""
    return 1 - 0.05 / max(m, 1)


def zero_shot_index(rows: Sequence[Mapping[str, Any]], first: Mapping[str, Any]) -> int | None:
    """The index in `rows` (summary rows: type, model, structured_output, samples, variant) of
    the k=0 point of the curve whose first row is `first`; None when there is none."""
    picked = [i for i, r in enumerate(rows)
              if r.get("type") == ZERO_SHOT and r.get("model") == first.get("model")]
    mode = first.get("structured_output")
    if mode is not None and any("structured_output" in r for r in rows):
        picked = [i for i in picked if rows[i].get("structured_output") == mode]
    if any("samples" in r for r in rows):
        picked = [i for i in picked if rows[i].get("samples") == first.get("samples", 1)]
    if any("variant" in r for r in rows):
        variant = first.get("variant")
        same = ([i for i in picked if rows[i].get("variant") == variant]
                if isinstance(variant, str) else [])
        plain = [i for i in picked if not isinstance(rows[i].get("variant"), str)]
        picked = same or plain or picked
    return picked[0] if picked else None


def curve_rows(rows: Sequence[Mapping[str, Any]], strategy: str) -> list[Mapping[str, Any]]:
    """A swept strategy's rows with its k=0 point (zero_shot_index) first."""
    own = [r for r in rows if r.get("strategy") == strategy]
    if not own:
        return []
    at = zero_shot_index(rows, own[0])
    return own if at is None else [rows[at], *own]


def curve_steps(rows: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, int, int, str, str]],
                                                             int]:
    """Each step the plateau rule judges, as (strategy, k_from, k_to, arm_from, arm_to), and m,
    the number of curves it judges (two points or more: a k and its k=0, or two ks)."""
    out: list[tuple[str, int, int, str, str]] = []
    judged = 0
    for strategy in dict.fromkeys(str(r["strategy"]) for r in rows
                                  if is_sweep(str(r.get("type")))):
        points = sorted((int(r["k"]), str(ArmId.of(str(r["strategy"]),
                                                    int(r["k"]) if is_sweep(str(r.get("type")))
                                                    else None)))
                        for r in curve_rows(rows, strategy))
        judged += len(points) >= 2
        out.extend((strategy, k0, k1, a0, a1) for (k0, a0), (k1, a1) in pairwise(points))
    return out, judged


__all__ = ["curve_confidence", "curve_rows", "curve_steps", "zero_shot_index"]
