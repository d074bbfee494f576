"""Strategies expand into arms: one (strategy, k, draw) with its model, examples and prompt."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example
from harness.errors import InputError
from harness.prompts import PromptTemplate, build_messages, render, resolve_template


@dataclass(frozen=True)
class Arm:
    """One cell of the comparison: a strategy at one k and one example draw."""

    strategy: str
    type: str  # zero_shot | few_shot | fine_tuned
    model: str  # the config's model name
    model_id: str  # the id sent to the endpoint
    k: int
    draw: int
    shots: tuple[Example, ...]
    template: PromptTemplate
    unavailable: str | None = None  # why this arm cannot be run (e.g. fine-tune missing)

    @property
    def key(self) -> str:
        """Stable identifier used in results and for resuming."""
        return f"{self.strategy}|k={self.k}|draw={self.draw}"


# Given a fine_tuned strategy, return (model id, None) or (None, reason it is unavailable).
FineTuneResolver = Callable[[StrategyConfig], tuple[str | None, str | None]]


def select_shots(
    pool: Sequence[Example], k: int, selection: str, seed: int
) -> tuple[Example, ...]:
    """k examples from the pool; `stratified` spreads them over as many labels as possible.

    The same (pool, k, selection, seed) gives the same examples in every process.
    """
    if not 0 <= k <= len(pool):
        raise InputError(f"cannot select {k} examples from a pool of {len(pool)}")
    rng = random.Random(seed)
    if selection == "random":
        return tuple(rng.sample(list(pool), k))
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in pool:
        by_label[ex.target].append(ex)
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


def expand(cfg: Config, data: Data, resolve_ft: FineTuneResolver) -> list[Arm]:
    """All arms of a run, in a stable order (strategy order, then k, then draw)."""
    arms: list[Arm] = []
    for i, s in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        model = cfg.models[s.model]
        template = resolve_template(
            cfg.task, s.prompts, fine_tuned=s.type == "fine_tuned", where=where
        )
        if s.type == "zero_shot":
            arms.append(Arm(s.name, s.type, s.model, model.model, 0, 0, (), template))
        elif s.type == "few_shot":
            for k in s.shots:
                if k > len(data.train):
                    if cfg.dataset.train is None:
                        src = "there is no training pool (set dataset.train)"
                    else:
                        src = f"the training pool holds only {len(data.train)} examples"
                        if data.leaked:
                            src += f" ({data.leaked} removed: also in the eval set)"
                    raise InputError(f"{where}.shots: k={k} is more than the pool can give: {src}")
                for draw in range(s.draws):
                    seed = hash_seed(cfg.dataset.seed, k, draw)
                    shots = select_shots(data.train, k, s.selection, seed)
                    arms.append(Arm(s.name, s.type, s.model, model.model, k, draw, shots, template))
        else:
            model_id, reason = resolve_ft(s)
            arms.append(
                Arm(s.name, s.type, s.model, model_id or str(s.fine_tuned_model), 0, 0, (),
                    template, unavailable=reason)
            )
    return arms


def hash_seed(*parts: int) -> int:
    """A deterministic seed from integers (Python's hash() of str is salted per process)."""
    seed = 1469598103934665603
    for p in parts:
        seed = (seed ^ (p & 0xFFFFFFFF)) * 1099511628211 % (1 << 63)
    return seed


def messages_for(arm: Arm, cfg: Config, labels: Sequence[str], text: str) -> list[dict[str, str]]:
    """The chat messages this arm sends for one input."""
    return build_messages(arm.template, cfg.task, labels, arm.shots, text)


def rendered_prompt(arm: Arm, cfg: Config, labels: Sequence[str], example: Example) -> str:
    """One rendered prompt of the arm, for the report."""
    return render(messages_for(arm, cfg, labels, example.input))
