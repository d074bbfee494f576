"""Few-shot example selectors, in a plain dict. Each sees the example being asked."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.dataset import Example
from harness.errors import InputError


@dataclass(frozen=True)
class Selector:
    """`pick(pool, k, seed, example)`; `per_example=False`: the example is not looked at, so an
    arm's shots (and its prompt prefix) are the same for every input."""

    pick: Callable[[Sequence[Example], int, int, Example | None], tuple[Example, ...]]
    per_example: bool = False


def _check(pool: Sequence[Example], k: int) -> None:
    if not 0 <= k <= len(pool):
        raise InputError(f"cannot select {k} examples from a pool of {len(pool)}")


def random_shots(pool: Sequence[Example], k: int, seed: int,
                 example: Example | None = None) -> tuple[Example, ...]:
    """k examples drawn uniformly without replacement (seeded)."""
    _check(pool, k)
    return tuple(random.Random(seed).sample(list(pool), k))


def stratified_shots(pool: Sequence[Example], k: int, seed: int,
                     example: Example | None = None) -> tuple[Example, ...]:
    """k examples spread over as many targets as possible (seeded), in shuffled order."""
    _check(pool, k)
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in pool:
        by_label[ex.stratum].append(ex)
    labels = sorted(by_label)
    rng.shuffle(labels)
    queues = {lab: rng.sample(by_label[lab], len(by_label[lab])) for lab in labels}
    chosen: list[Example] = []
    while len(chosen) < k:
        for lab in labels:
            if queues[lab] and len(chosen) < k:
                chosen.append(queues[lab].pop())
    rng.shuffle(chosen)
    return tuple(chosen)


SELECTORS: dict[str, Selector] = {
    "stratified": Selector(stratified_shots),
    "random": Selector(random_shots),
}


def select_shots(pool: Sequence[Example], k: int, selection: str, seed: int,
                 example: Example | None = None) -> tuple[Example, ...]:
    """k examples from the pool by the named selector.

    The same (pool, k, selection, seed, example) gives the same examples in every process.
    """
    return SELECTORS[selection].pick(pool, k, seed, example)


def hash_seed(*parts: int) -> int:
    """A deterministic seed from integers (Python's hash() of str is salted per process)."""
    seed = 1469598103934665603
    for p in parts:
        seed = (seed ^ (p & 0xFFFFFFFF)) * 1099511628211 % (1 << 63)
    return seed
