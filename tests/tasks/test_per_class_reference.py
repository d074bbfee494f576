"""per_class, counted array-wise, against a plain loop over the pairs."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from harness.tasks.classification import per_class

LABELS = ["a", "b", "c", "d"]


def _reference(expected: list[Any], predicted: list[Any], labels: list[str]) -> dict[str, Any]:
    tp: Counter[Any] = Counter()
    fp: Counter[Any] = Counter()
    fn: Counter[Any] = Counter()
    for e, p in zip(expected, predicted, strict=True):
        if e == p:
            tp[e] += 1
        else:
            fn[e] += 1
            if p is not None:
                fp[p] += 1
    present = set(expected) | set(predicted)
    out = {}
    for lab in labels:
        if lab in present:
            t, f_p, f_n = tp[lab], fp[lab], fn[lab]
            pr = t / (t + f_p) if t + f_p else 0.0
            rc = t / (t + f_n) if t + f_n else 0.0
            out[lab] = {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc
                        else 0.0, "support": t + f_n}
    return out


def test_per_class_matches_the_loop_on_random_answers() -> None:
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(0, 40)
        expected = [rng.choice([*LABELS, None]) for _ in range(n)]
        predicted = [rng.choice([*LABELS, None, "other", math.nan]) for _ in range(n)]
        assert per_class(expected, predicted, LABELS) == _reference(expected, predicted, LABELS)


def test_per_class_refuses_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        per_class(["a"], [], LABELS)
