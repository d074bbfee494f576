"""Which failures report.html shows: a small sample, as many distinct inputs as it can hold."""

from __future__ import annotations

from typing import Any

import pandas as pd


def failure_sample(results: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """At most `limit` failed (arm, example) pairs to show, as distinct as the failures allow.

    One pair per (arm, example) (an arm's first draw). Arms take turns; while some failed
    example is not yet shown, an arm's turn goes to its next failure on an example not yet
    shown (an arm with none left passes), so one input failed by every arm appears once, not
    once per arm, until every failed example has a row. Then the turns go on over the pairs
    left, so the other arms' answers to those inputs fill what room remains.
    """
    df = results[~results["correct"].astype(bool)].drop_duplicates(["strategy", "k", "example_id"])
    ids = [str(x) for x in df["example_id"]]
    by_arm: dict[tuple[Any, Any], list[int]] = {}  # row positions per arm, arms in first-seen order
    for pos, arm in enumerate(zip(df["strategy"], df["k"], strict=True)):
        by_arm.setdefault(arm, []).append(pos)
    queues = list(by_arm.values())
    picked: list[int] = []
    shown: set[str] = set()
    for distinct in (True, False):
        progress = True
        while progress and len(picked) < limit:
            progress = False
            for q in queues:
                j = next((j for j, pos in enumerate(q) if not distinct or ids[pos] not in shown), None)
                if j is None or len(picked) >= limit:
                    continue
                pos = q.pop(j)
                picked.append(pos)
                shown.add(ids[pos])
                progress = True
    return df.iloc[picked]
