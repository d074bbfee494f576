"""Which failures report.html shows: a small sample, as many distinct inputs as it can hold."""

from __future__ import annotations

import numpy as np
import pandas as pd


def failure_sample(results: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """At most `limit` failed (arm, example) pairs to show, as distinct as the failures allow.

    One pair per (arm, example) (an arm's first draw). Arms take turns; while some failed
    example is not yet shown, an arm's turn goes to its next failure on an example not yet
    shown (an arm with none left passes), so one input failed by every arm appears once, not
    once per arm, until every failed example has a row. Then the turns go on over the pairs
    left, so the other arms' answers to those inputs fill what room remains.
    """
    # chosen on the key columns alone; only the rows picked are taken from `results`
    failed = np.flatnonzero(~results["correct"].astype(bool).to_numpy())
    keys = results[["strategy", "k", "example_id"]].iloc[failed]
    first = failed[~keys.duplicated().to_numpy()]  # one row per (arm, example): its first draw
    arm = results[["strategy", "k"]].iloc[first].groupby(["strategy", "k"], sort=False,
                                                         dropna=False).ngroup().to_numpy()
    # an arm's turns use at most `limit` of its failures and pass over at most `limit` shown
    # examples, so the first 2 * limit + 1 of each arm (arms in first-seen order) decide it
    queues = [first[arm == a][:2 * limit + 1].tolist() for a in range(arm.max() + 1 if len(arm) else 0)]
    ids = results["example_id"]
    picked: list[int] = []
    shown: set[str] = set()
    for distinct in (True, False):
        progress = True
        while progress and len(picked) < limit:
            progress = False
            for q in queues:
                j = next((j for j, row in enumerate(q)
                          if not distinct or str(ids.iloc[row]) not in shown), None)
                if j is None or len(picked) >= limit:
                    continue
                row = q.pop(j)
                picked.append(row)
                shown.add(str(ids.iloc[row]))
                progress = True
    return results.iloc[picked]
