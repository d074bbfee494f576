"""The column-wise tables (columns_frame, frame_metrics, score_matrix, paired_mean_difference)
against plain per-row references: the same frame, figures and intervals as a loop would give."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pandas as pd
import pytest
from run_helpers import FIXTURE_RUNS

from harness.analysis import stats
from harness.analysis.arms import (
    RESULT_COLUMNS,
    columns_frame,
    price,
    results_frame,
    score_matrix,
)
from harness.analysis.comparisons import paired_mean_difference
from harness.analysis.metrics import arm_metrics, frame_metrics
from harness.analysis.pipeline import meta_task
from harness.model import pricing
from harness.running.records import Record, RunMeta
from harness.running.store import read_columns, read_meta, read_records


def _reference_frame(records: list[Record], meta: RunMeta) -> pd.DataFrame:
    """results_frame as a loop over Records (the harness's earlier code)."""
    arm_order = {a.key: i for i, a in enumerate(meta.arms)}
    ex_order = {e: i for i, e in enumerate(meta.examples)}
    rows = sorted(records, key=lambda r: (arm_order.get(r.arm, 1 << 30),
                                          ex_order.get(r.example_id, 1 << 30)))
    # (to_dict leaves out `replica` and `batch_id` when they are None; the frame has them)
    df = pd.DataFrame([{**r.to_dict(), "replica": r.replica, "batch_id": r.batch_id}
                       for r in rows], columns=[*RESULT_COLUMNS, "arm"])
    costs = []
    for r in rows:
        p = price(meta, r.model, r.model_id)
        if r.cached or p is None:
            costs.append(0.0 if r.cached else math.nan)
        else:
            costs.append(pricing.query_cost(p, r.prompt_tokens or 0, r.completion_tokens or 0,
                                            r.cached_tokens or 0))
    df["cost_usd"] = costs
    df["lenient"] = np.array([r.lenient for r in rows], dtype=bool)
    df["endpoint_failed"] = np.array([r.endpoint_failed for r in rows], dtype=bool)
    df["vote_share"] = np.array([math.nan if r.vote_share is None else r.vote_share
                                 for r in rows], dtype=float)
    df["confidence"] = df["vote_share"].copy()
    df["sample_accuracy"] = np.array([sum(r.sample_correct) / len(r.sample_correct)
                                      if r.sample_correct else math.nan for r in rows],
                                     dtype=float)
    return df


def _shuffled(records: list[Record], seed: int) -> list[Record]:
    """The records in another order, some cached, a few with a priced model id and odd values."""
    rng = random.Random(seed)
    out = []
    for r in records:
        change: dict[str, object] = {}
        if rng.random() < 0.2:
            change["cached"] = True
        if rng.random() < 0.3:
            change["model_id"] = "gpt-4o-mini"
        if rng.random() < 0.1:
            change["prompt_tokens"] = None
        if rng.random() < 0.1:
            change["latency_ms"] = 0
        if rng.random() < 0.1:
            change["error_kind"] = rng.choice(["timeout", "refusal", "schema", None])
        out.append(dataclasses.replace(r, **change))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("name", ["complete", "interrupted", "version1"])
def test_columns_frame_is_the_per_record_frame(name: str) -> None:
    meta = read_meta(FIXTURE_RUNS / name)
    records = read_records(FIXTURE_RUNS / name)
    got = columns_frame(read_columns(FIXTURE_RUNS / name), meta)
    pd.testing.assert_frame_equal(got, _reference_frame(records, meta), check_exact=True)
    for seed in range(3):
        shuffled = _shuffled(records, seed)
        pd.testing.assert_frame_equal(results_frame(shuffled, meta),
                                      _reference_frame(shuffled, meta), check_exact=True)


def test_an_empty_run_has_the_empty_frame() -> None:
    meta = read_meta(FIXTURE_RUNS / "complete")
    pd.testing.assert_frame_equal(results_frame([], meta), _reference_frame([], meta))


@pytest.mark.parametrize("name", ["complete", "interrupted", "version1"])
def test_frame_metrics_are_the_row_metrics(name: str) -> None:
    meta = read_meta(FIXTURE_RUNS / name)
    task = meta_task(meta)
    for seed in range(3):
        df = results_frame(_shuffled(read_records(FIXTURE_RUNS / name), seed), meta)
        for _, sub in df.groupby(["strategy", "k"], sort=False):
            want = dataclasses.asdict(arm_metrics(sub.to_dict("records"), task))
            got = dataclasses.asdict(frame_metrics(sub, task))
            assert got.keys() == want.keys()
            for key, value in want.items():
                assert got[key] == value or (math.isnan(got[key]) and math.isnan(value)), key
        assert math.isnan(frame_metrics(df.iloc[:0], task).accuracy)


def test_score_matrix_places_each_answer_by_example_and_draw() -> None:
    meta = read_meta(FIXTURE_RUNS / "complete")
    df = results_frame(read_records(FIXTURE_RUNS / "complete"), meta)
    examples = [*meta.examples, "never-run"]
    mat = score_matrix(df, "few-shot", 1, examples)
    sub = df[(df["strategy"] == "few-shot") & (df["k"] == 1)]
    draws = sorted(sub["draw"].unique())
    want = np.full((len(examples), len(draws)), np.nan)
    for _, r in sub.iterrows():
        if not r["endpoint_failed"]:
            want[examples.index(str(r["example_id"])), draws.index(r["draw"])] = float(r["correct"])
    np.testing.assert_array_equal(mat, want)
    assert np.isnan(mat[-1]).all()


def test_paired_mean_difference_is_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    a, b = (rng.random(500) < 0.8).astype(float), (rng.random(500) < 0.7).astype(float)
    want = stats.paired_difference(a, b, n_boot=300, seed=0)
    assert paired_mean_difference(a, b, n_boot=300) == want
    assert paired_mean_difference(a.copy(), b.copy(), n_boot=300) == want  # remembered by value
    assert paired_mean_difference(b, a, n_boot=300) == stats.paired_difference(b, a, n_boot=300,
                                                                                seed=0)
