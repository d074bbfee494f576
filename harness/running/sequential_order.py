"""Which examples does a sequential run request when, and what does its folder record of it?
The seeded request order (stratified by label, or whole clusters at a time), the run folder's
`sequential.json` (the design and the order, so that a resumed run and `harness report` find
the same looks), and the score each answer contributes to the looks.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.config import SequentialConfig
from harness.errors import InputError
from harness.files import write_json_atomic
from harness.tasks import Task

SEQUENTIAL = "sequential.json"  # the run folder's design and request order
VERSION = 1


def _rank(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def request_order(examples: Sequence[tuple[str, Any]], seed: int, stratify: bool,
                  clusters: Mapping[str, str] | None = None) -> list[str]:
    """The example ids in the order they are requested: seeded and random. With `clusters`
    (example id -> its `dataset.cluster`), whole clusters in a random order, each cluster's
    examples together, since a clustered eval is observed a cluster at a time; else with
    `stratify` (a classification eval), the targets interleaved in proportion, so every round
    holds each label about as often as the eval does."""
    if clusters:
        groups: dict[str, list[str]] = defaultdict(list)
        for example_id, _ in examples:
            groups[clusters[example_id]].append(example_id)
        order = sorted(groups, key=lambda c: _rank(seed, f"cluster:{c}"))
        return [i for c in order for i in sorted(groups[c], key=lambda i: _rank(seed, i))]
    if not stratify:
        return [i for i, _ in sorted(examples, key=lambda e: _rank(seed, e[0]))]
    by_label: dict[str, list[str]] = defaultdict(list)
    for example_id, target in examples:
        by_label[str(target)].append(example_id)
    keyed = []
    for members in by_label.values():
        members.sort(key=lambda i: _rank(seed, i))
        n = len(members)
        keyed += [((j + _rank(seed + 1, i)) / n, i) for j, i in enumerate(members)]
    return [i for _, i in sorted(keyed)]


def observation(task: Task, metric: str, expected: Any, prediction: Any,
                correct: bool) -> float:
    """What one answer contributes to the looks on `decision.metric`: 1 or 0 for accuracy;
    for field F1, the example's own F1 over its fields, 2 tp / (2 tp + fp + misses) (1 when
    the example has no field values to find and none were given), in [0, 1]. The sequential
    comparisons of field F1 are therefore of its mean per example, not of the micro F1 the
    fixed-size analysis pools."""
    if metric != "field_f1":
        return float(correct)
    counts = task.example_counts(expected, prediction)
    if counts is None:
        return float(correct)
    tp, fp, fn = counts
    return 1.0 if not tp + fp + fn else 2 * tp / (2 * tp + fp + fn)


def write_design(run_dir: Path, design: SequentialConfig, order: Sequence[str],
                 clusters: Mapping[str, str] | None = None) -> None:
    """The run folder's `sequential.json`; a resumed run must find the same design there."""
    path = run_dir / SEQUENTIAL
    data: dict[str, Any] = {"version": VERSION, "look_every": design.look_every,
                            "min_examples": design.min_examples,
                            "max_examples": design.max_examples,
                            "seed": design.seed, "order": list(order)}
    if clusters:
        data["clusters"] = {i: clusters[i] for i in order}
    if path.exists():
        try:
            old = read_design(run_dir)
        except InputError:
            old = None
        if old is not None and old != data:
            raise InputError(f"{path}: this run was started with another sequential design or "
                             "request order; resume it with the config it was started with")
    write_json_atomic(path, data)


def read_design(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's sequential design, or None for a run that was not sequential."""
    path = run_dir / SEQUENTIAL
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("order"), list):
        raise InputError(f"{path}: not a sequential design (no `order` list)")
    if not isinstance(data.get("clusters", {}), dict):
        raise InputError(f"{path}: `clusters` is not a mapping of example ids to clusters")
    return data
