"""Sequential evaluation beyond paired accuracy (issue 26, item 2): a clustered eval is observed
a whole cluster at a time, a schema-compliance floor is settled like any other comparison, and
field F1 is scored per example."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
import pytest

from harness.analysis.sequential import settle_floor
from harness.config import DecisionConfig, Prompts, SequentialConfig, TaskConfig
from harness.kinds import FINE_TUNED, ZERO_SHOT
from harness.running.sequential import Monitor
from harness.running.sequential_order import observation, request_order
from harness.tasks import Task, make_task


@dataclass(frozen=True)
class Arm:
    key: str
    strategy: str
    type: str
    k: int = 0


ARMS = [Arm("zs", "zero-shot", ZERO_SHOT), Arm("ft", "fine-tuned", FINE_TUNED)]


def test_the_order_keeps_each_cluster_together_and_is_seeded():
    clusters = {f"e{i}": f"c{i % 7}" for i in range(70)}
    examples = [(i, None) for i in clusters]
    order = request_order(examples, 3, stratify=True, clusters=clusters)
    assert sorted(order) == sorted(clusters)
    runs = [clusters[i] for i in order]
    changes = sum(a != b for a, b in itertools.pairwise(runs))
    assert changes == 6  # seven blocks, one per cluster
    assert order == request_order(examples, 3, stratify=True, clusters=clusters)
    assert order != request_order(examples, 4, stratify=True, clusters=clusters)


def _clustered_monitor(clusters: dict[str, str] | None) -> Monitor:
    """Ten clusters of 30 examples whose outcomes are identical within a cluster: the fine-tune
    is right and the base model wrong in 7 clusters, both right in 3."""
    order = [f"e{c}-{j}" for c in range(10) for j in range(30)]
    monitor = Monitor(ARMS, order, SequentialConfig(enabled=True, look_every=30,
                                                    min_examples=30), DecisionConfig(), clusters)
    for e in order:
        c = int(e[1:].split("-")[0])
        monitor.note("ft", e, 1.0)
        monitor.note("zs", e, 0.0 if c < 7 else 1.0)
    for look in range(monitor.looks):
        monitor.look(look)
        if monitor.finished:
            break
    return monitor


def test_a_clustered_eval_counts_clusters_not_examples():
    """300 examples in 10 perfectly correlated clusters carry the evidence of 10 observations:
    treated as independent examples the fine-tune is settled better; as clusters it is not."""
    flat = _clustered_monitor(None)
    assert flat.against_best["fine-tuned"] == "better"
    order = [f"e{c}-{j}" for c in range(10) for j in range(30)]
    clustered = _clustered_monitor({e: e.split("-")[0] for e in order})
    fine = [c for c in clustered.comparisons if c.kind == "fine_tune"]
    assert fine[0].result.n == 10  # one observation per complete cluster
    assert clustered.against_best["fine-tuned"] == "open"
    assert not clustered.verdict_settled


def test_a_cluster_is_observed_only_once_all_its_examples_are_in():
    order = [f"e{c}-{j}" for c in range(4) for j in range(10)]
    clusters = {e: e.split("-")[0] for e in order}
    monitor = Monitor(ARMS, order, SequentialConfig(enabled=True, look_every=15,
                                                    min_examples=15), DecisionConfig(), clusters)
    for e in order[:15]:
        monitor.note("ft", e, 1.0)
        monitor.note("zs", e, 0.0)
    monitor.look(0)
    assert [c.result.n for c in monitor.comparisons if c.kind == "fine_tune"] == [1]


def test_settle_floor_never_settles_the_wrong_side_more_often_than_alpha():
    """At a true compliance equal to the floor, looked at every 25 answers up to 500, the share
    of runs that ever call it above or below the floor stays under alpha (1,000 runs)."""
    rng = np.random.default_rng(0)
    alpha, floor, wrong = 0.05, 0.8, 0
    for _ in range(1000):
        x = (rng.random(500) < floor).astype(float)
        wrong += any(settle_floor(x[:t], alpha, floor).state != "open"
                     for t in range(25, 501, 25))
    assert wrong / 1000 <= alpha


@pytest.mark.parametrize(("share", "state"), [(0.98, "above"), (0.6, "below")])
def test_settle_floor_settles_a_clear_case(share, state):
    x = (np.random.default_rng(1).random(600) < share).astype(float)
    assert settle_floor(x, 0.05, 0.8).state == state


def _floor_monitor(valid: dict[str, float]) -> Monitor:
    order = [f"e{i}" for i in range(2000)]
    monitor = Monitor(ARMS, order, SequentialConfig(enabled=True, look_every=50,
                                                    min_examples=50),
                      DecisionConfig(min_schema_compliance=0.9))
    rng = random.Random(0)
    accuracy = {"zs": 0.6, "ft": 0.9}
    for look in range(monitor.looks):
        active = monitor.active_arms()
        for e in monitor.round(look):
            for key in active:
                monitor.note(key, e, float(rng.random() < accuracy[key]),
                             rng.random() < valid[key])
        monitor.look(look)
        if monitor.finished:
            break
    return monitor


def test_the_compliance_floor_is_part_of_the_family_and_of_settling():
    both = _floor_monitor({"zs": 0.99, "ft": 0.99})
    assert both.family == 1 + 2  # the paired comparison and one floor per unit
    assert both.floor_state["fine-tuned"] == "above"
    assert both.against_best["fine-tuned"] == "better"
    assert both.verdict_settled  # whatever zero-shot's compliance, the verdict is fine-tuning
    below = _floor_monitor({"zs": 0.99, "ft": 0.5})
    assert below.floor_state["fine-tuned"] == "below"
    assert below.against_best["fine-tuned"] == "below_floor"
    assert not below.verdict_settled  # a fine-tune below the floor is never "better"
    kinds = {c.kind for c in below.comparisons}
    assert "compliance" in kinds


def test_field_f1_observation_is_the_examples_own_f1():
    task = make_task_for_fields()
    gold = {"city": "Paris", "day": "monday", "guests": 2}
    assert observation(task, "field_f1", gold, gold, True) == 1.0
    half = {"city": "Paris", "day": "tuesday", "guests": None}
    # tp 1 (city), fp 1 (day), misses 2 (day, guests): 2 / (2 + 1 + 2)
    assert observation(task, "field_f1", gold, half, False) == pytest.approx(2 / 5)
    assert observation(task, "field_f1", gold, None, False) == 0.0  # no usable answer
    assert observation(task, "accuracy", gold, half, False) == 0.0


def make_task_for_fields() -> Task:
    schema = {"type": "object", "properties": {"city": {"type": ["string", "null"]},
                                               "day": {"type": ["string", "null"]},
                                               "guests": {"type": ["integer", "null"]}},
              "required": ["city", "day", "guests"]}
    return make_task(TaskConfig("extraction", "x", None, schema, Prompts()), [])
