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
    # builds the selector for one pool once (an index over it), given the strategy's similarity
    bind: Callable[[Sequence[Example], str], Selector] | None = None


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


def similar_selector(pool: Sequence[Example], similarity: str = "tfidf") -> Selector:
    """Per input, the k pool examples most similar to it (see strategies.retrieval)."""
    from harness.strategies.retrieval import Retriever

    retriever = Retriever(pool, similarity)

    def pick(_pool: Sequence[Example], k: int, _seed: int,
             example: Example | None) -> tuple[Example, ...]:
        if example is None:
            raise InputError("selection similar chooses the examples for each input: give it one")
        return retriever.nearest(example.input, k)

    return Selector(pick, per_example=True)


def _similar_shots(pool: Sequence[Example], k: int, seed: int,
                   example: Example | None = None) -> tuple[Example, ...]:
    """selection similar without a prepared index (builds one for this call)."""
    return similar_selector(pool).pick(pool, k, seed, example)


SELECTORS: dict[str, Selector] = {
    "stratified": Selector(stratified_shots),
    "random": Selector(random_shots),
    "similar": Selector(_similar_shots, per_example=True, bind=similar_selector),
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
