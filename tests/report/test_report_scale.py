"""The parts of `harness report` shaped for large runs: the failure sample chosen on the key
columns, and results.csv streamed in chunks, each the same as the whole-frame way."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.failures import failure_sample
from harness.report.files import _csv, _write_csv_atomic


def _reference_sample(results: pd.DataFrame, limit: int) -> pd.DataFrame:
    """failure_sample over a frame of every failure (the harness's earlier code)."""
    df = results[~results["correct"].astype(bool)].drop_duplicates(["strategy", "k", "example_id"])
    ids = [str(x) for x in df["example_id"]]
    by_arm: dict[tuple[Any, Any], list[int]] = {}
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
                j = next((j for j, pos in enumerate(q) if not distinct or ids[pos] not in shown),
                         None)
                if j is None or len(picked) >= limit:
                    continue
                pos = q.pop(j)
                picked.append(pos)
                shown.add(ids[pos])
                progress = True
    return df.iloc[picked]


def _results(rng: random.Random, n: int) -> pd.DataFrame:
    rows = [{"strategy": rng.choice(["zs", "fs", "ft"]), "k": rng.choice([0, 1]),
             "example_id": str(rng.randrange(max(n // 3, 1))), "correct": rng.random() < 0.4,
             "input": f"text {i}", "cost": rng.random()} for i in range(n)]
    return pd.DataFrame(rows, columns=["strategy", "k", "example_id", "correct", "input", "cost"])


def test_the_failure_sample_is_the_one_a_frame_of_every_failure_gives() -> None:
    rng = random.Random(0)
    for _ in range(200):
        df = _results(rng, rng.randint(0, 80))
        limit = rng.choice([1, 3, 5, 20, 50])
        pd.testing.assert_frame_equal(failure_sample(df, limit), _reference_sample(df, limit))


def test_results_csv_streamed_in_chunks_is_the_whole_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 53
    df = pd.DataFrame({
        "name": [f"a, \"b\"\n{i}" for i in range(n)], "ok": rng.random(n) < 0.5,
        "k": rng.integers(0, 9, n), "latency": rng.random(n) * 1e4,
        "tokens": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 9_999_999, n)),
        "maybe": [None if i % 4 else "x" for i in range(n)],
    })
    df.loc[3, "latency"] = np.inf
    for chunk in (1, 7, 53, 1000):
        path = tmp_path / f"results{chunk}.csv"
        _write_csv_atomic(path, df, chunk_rows=chunk)
        assert path.read_text(encoding="utf-8") == _csv(df)
    _write_csv_atomic(tmp_path / "empty.csv", df.iloc[:0])
    assert (tmp_path / "empty.csv").read_text(encoding="utf-8") == _csv(df.iloc[:0])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
