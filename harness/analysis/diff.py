"""Diff: *which examples did a change fix, and which did it break?* Two runs (A, the earlier;
B, the later) compared arm by arm on the examples both hold: the examples B answers right and
A wrong (fixed) and the reverse (broken), which are the discordant pairs the paired test
counts, with that test's interval and p-value (analysis/comparisons.py: paired_test, B minus
A); each arm's rendered prompts side by side, line by line, and its model ids; and the config
keys that differ (analysis/changes.py).

Arms are paired as the gate pairs them (changes.pair_arms): by name, and an arm whose k changed
with its strategy's arm at the nearest k (few-shot@k=8 in A against few-shot@k=2 in B).
An example is right for an arm when most of its draws are (stats.majority_correct, as for
McNemar's test); examples an endpoint failed on have no answer and are left out, as in the
analysis. Runs with different eval sets are paired on the example ids they share, and the diff
says how many were not shared. The comparison is on exact-match correctness whatever
`decision.metric` is (the changed examples of field F1 would be a matter of degree).
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis import stats
from harness.analysis.changes import config_changes, config_leaves, pair_arms
from harness.analysis.comparisons import paired_test
from harness.errors import InputError
from harness.model.completion import is_endpoint_failure
from harness.running.records import RunMeta
from harness.running.store import read_columns, read_meta
from harness.strategies import arm_name

FIXED, BROKEN = "fixed", "broken"


@dataclass(frozen=True)
class ChangedExample:
    """One example whose correctness changed from run A to run B."""

    example_id: str
    change: str  # fixed | broken
    input: str
    expected: Any
    output_a: str  # the model's text in run A (its first draw)
    output_b: str


@dataclass(frozen=True)
class ArmDiff:
    """One arm of run B and the arm of run A it is compared with: the same arm, or for an arm
    whose k changed, its strategy's arm at the nearest k (`arm_a`)."""

    arm: str
    n: int  # examples both runs answered
    accuracy_a: float
    accuracy_b: float
    difference: stats.Interval  # B minus A, paired bootstrap
    p_value: float
    test: str  # mcnemar | clustered_mcnemar
    changed: tuple[ChangedExample, ...]  # fixed and broken, in example-id order
    model_a: str
    model_b: str
    prompt_diff: tuple[str, ...]  # unified diff of the rendered prompts; () when the same
    arm_a: str = ""  # run A's arm, when it is another (a k change); "" when the same

    @property
    def fixed(self) -> int:
        """Examples right in B and wrong in A."""
        return sum(c.change == FIXED for c in self.changed)

    @property
    def broken(self) -> int:
        """Examples right in A and wrong in B."""
        return sum(c.change == BROKEN for c in self.changed)


@dataclass(frozen=True)
class RunDiff:
    """Run A against run B."""

    run_a: str
    run_b: str
    name_a: str
    name_b: str
    arms: tuple[ArmDiff, ...]
    only_a: tuple[str, ...]  # arms only run A has
    only_b: tuple[str, ...]
    shared: int  # eval examples both runs hold
    not_shared_a: int  # examples only in A's eval set
    not_shared_b: int
    config: tuple[str, ...]  # config keys that differ, `key: old -> new`


@dataclass
class _Arm:
    """One arm of a run as the diff reads it: who it is, and per example its draws' scores and
    its first draw's (input, expected, output)."""

    name: str
    strategy: str
    type: str
    k: int
    model_id: str
    prompt: str
    scores: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    first: dict[str, tuple[str, Any, str]] = field(default_factory=dict)


def _arms(run_dir: Path) -> tuple[RunMeta, dict[str, _Arm]]:
    meta = read_meta(run_dir)
    cols = read_columns(run_dir)
    arms: dict[str, _Arm] = {}
    for a in meta.arms:
        name = arm_name(a.strategy, a.k, a.type)
        if name not in arms:
            arms[name] = _Arm(name, a.strategy, a.type, a.k, a.model_id, a.prompt_example)
    endpoint = {kind: is_endpoint_failure(kind) for kind in set(cols["error_kind"])}
    for strategy, k, kind, ex, correct, draw, text, expected, output, err in zip(
            cols["strategy"], cols["k"], cols["type"], cols["example_id"], cols["correct"],
            cols["draw"], cols["input"], cols["expected"], cols["output"], cols["error_kind"],
            strict=True):
        arm = arms.get(arm_name(strategy, k, kind))
        if arm is None or endpoint[err]:
            continue
        arm.scores[str(ex)].append(bool(correct))
        if draw == 0 or str(ex) not in arm.first:
            arm.first[str(ex)] = (text, expected, output or "")
    return meta, arms


def _prompt_diff(arm: str, a: str, b: str) -> tuple[str, ...]:
    if a == b:
        return ()
    return tuple(difflib.unified_diff(a.splitlines(), b.splitlines(), fromfile=f"A: {arm}",
                                      tofile=f"B: {arm}", lineterm=""))


def diff_runs(run_a: Path, run_b: Path, *, arm: str | None = None, n_boot: int = 2000
              ) -> RunDiff:
    """Run A against run B (B the later), arm by arm; `arm` keeps one arm. InputError for a
    folder that is not a run, for runs that share no example, and for an `arm` not in both."""
    for run in (run_a, run_b):
        if not (run / "run.json").is_file():
            raise InputError(f"{run}: not a run folder (no run.json)")
    meta_a, arms_a = _arms(run_a)
    meta_b, arms_b = _arms(run_b)
    ids_a, ids_b = set(meta_a.examples), set(meta_b.examples)
    shared = ids_a & ids_b
    if not shared:
        raise InputError(f"{run_a} and {run_b} share no example id: nothing to compare")
    pairs = pair_arms(arms_a, arms_b)  # B's arm -> A's: by name, else the nearest k
    both = [n for n in arms_b if n in pairs]
    if arm is not None:
        if arm not in both:
            raise InputError(f"--arm {arm}: not an arm of both runs (both have: "
                             f"{', '.join(both) or 'none'})")
        both = [arm]
    clusters = dict(zip(meta_b.examples, meta_b.clusters, strict=True)) if meta_b.clusters else None
    out = []
    for name in both:
        a, b = arms_a[pairs[name]], arms_b[name]
        ids = sorted(i for i in shared if a.scores.get(i) and b.scores.get(i))
        if not ids:
            continue
        x = np.array([np.mean(b.scores[i]) for i in ids])
        y = np.array([np.mean(a.scores[i]) for i in ids])
        test = paired_test(x, y, n_boot=n_boot,
                           clusters=None if clusters is None else [clusters[i] for i in ids])
        right_b, right_a = stats.majority_correct(x), stats.majority_correct(y)
        changed = tuple(
            ChangedExample(i, FIXED if rb else BROKEN, b.first[i][0], b.first[i][1],
                           a.first[i][2], b.first[i][2])
            for i, ra, rb in zip(ids, right_a, right_b, strict=True) if ra != rb)
        out.append(ArmDiff(name, len(ids), float(y.mean()), float(x.mean()), test.difference,
                           test.p_value, test.test, changed, a.model_id, b.model_id,
                           _prompt_diff(name, a.prompt, b.prompt),
                           "" if a.name == name else a.name))
    config = tuple(config_changes(config_leaves(meta_a.config_raw),
                                  config_leaves(meta_b.config_raw)))
    paired_a = set(pairs.values())
    return RunDiff(str(run_a), str(run_b), meta_a.name, meta_b.name, tuple(out),
                   tuple(n for n in arms_a if n not in paired_a),
                   tuple(n for n in arms_b if n not in pairs),
                   len(shared), len(ids_a - ids_b), len(ids_b - ids_a), config)


def expected_text(value: Any) -> str:
    """An expected answer as text: a label as it is, a structured one as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)
