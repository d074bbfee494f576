"""The sequential monitor's stopping rules on scripted scores (issue 26): an arm stops once its
part of the decision is settled, and every arm stops once the verdict cannot change."""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.config import DecisionConfig, SequentialConfig
from harness.kinds import FEW_SHOT, FINE_TUNED, ZERO_SHOT
from harness.running.sequential import Monitor, against_best


@dataclass(frozen=True)
class Arm:
    key: str
    strategy: str
    type: str
    k: int = 0


ARMS = [Arm("zs", "zero-shot", ZERO_SHOT), Arm("fs1", "few-shot", FEW_SHOT, 1),
        Arm("fs2", "few-shot", FEW_SHOT, 2), Arm("fs4", "few-shot", FEW_SHOT, 4),
        Arm("ft", "fine-tuned", FINE_TUNED)]


def _monitor(accuracy: dict[str, float], n: int = 2000, seed: int = 0) -> Monitor:
    """Run the looks over scripted 0/1 scores of the given accuracy per arm key."""
    order = [f"e{i}" for i in range(n)]
    monitor = Monitor(ARMS, order, SequentialConfig(enabled=True, look_every=50,
                                                    min_examples=50), DecisionConfig())
    rng = random.Random(seed)
    truth = {a.key: {e: float(rng.random() < accuracy[a.key]) for e in order} for a in ARMS}
    for look in range(monitor.looks):
        active = monitor.active_arms()
        for e in monitor.round(look):
            for key in active:
                monitor.note(key, e, truth[key][e])
        monitor.look(look)
        if monitor.finished:
            break
    return monitor


def test_a_fine_tune_better_than_every_prompt_stops_the_whole_run() -> None:
    m = _monitor({"zs": 0.55, "fs1": 0.6, "fs2": 0.64, "fs4": 0.645, "ft": 0.95})
    assert m.verdict_settled and not m.active()
    requested = m.requested_by_unit()
    # the plateau step k=2 -> 4 (half a point) could never settle within the eval; it need not
    assert max(requested.values()) < 600
    assert len({m.stopped_at[u] for u in ("few-shot@k=2", "few-shot@k=4", "fine-tuned")}) == 1
    assert m.against_best["fine-tuned"] == "better"
    fine = [c for c in m.comparisons if c.kind == "fine_tune"]
    assert {c.second for c in fine} >= {"few-shot@k=4", "few-shot@k=2"}


def test_a_worse_fine_tune_stops_alone_and_the_curve_goes_on() -> None:
    m = _monitor({"zs": 0.50, "fs1": 0.60, "fs2": 0.70, "fs4": 0.80, "ft": 0.30})
    assert m.against_best["fine-tuned"] == "worse"
    assert not m.verdict_settled
    requested = m.requested_by_unit()
    assert requested["fine-tuned"] < requested["few-shot@k=4"]


def test_the_place_against_the_best_prompt() -> None:
    assert against_best(["better", "better"]) == "better"
    assert against_best(["open", "worse"]) == "worse"
    assert against_best(["better", "equivalent"]) == "equivalent"
    assert against_best(["better", "open"]) == "open"
    assert against_best([]) == "open"
