"""Fine-tuning data: chat examples from `dataset.train` only, split, hashed and validated."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example, normalise, stratified_sample
from harness.errors import InputError
from harness.strategies.prompts import resolve_template, system_prompt
from harness.tasks import Task, make_task

ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class TrainingData:
    """Chat fine-tuning examples, split, with their hash and token estimates."""

    train: tuple[dict[str, Any], ...]
    validation: tuple[dict[str, Any], ...]
    sha256: str
    tokens_per_example: float
    total_tokens: int


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """A rough token count (4 characters a token, plus per-message overhead)."""
    return sum(4 + len(m.get("content", "")) // 4 + 1 for m in messages) + 3


def _conversation(system: str, ex: Example, task: Task) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": ex.input},
                         {"role": "assistant", "content": task.render_target(ex.target)}]}


def _split(pool: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    if fraction <= 0 or len(pool) < 20:
        return list(pool), []
    val = stratified_sample(pool, max(1, round(len(pool) * fraction)), seed)
    ids = {ex.id for ex in val}
    return [ex for ex in pool if ex.id not in ids], val


def build_training_data(cfg: Config, strategy: StrategyConfig, data: Data, task: Task | None = None
                        ) -> TrainingData:
    """Training and validation conversations from the train pool only, in OpenAI's format."""
    ft = cfg.finetune
    pool = list(data.train)
    if ft.per_label:
        pool = _per_label(pool, ft.per_label, ft.seed)
    train, val = _split(pool, ft.validation_fraction, ft.seed)
    rng = random.Random(ft.seed)
    rng.shuffle(train)
    task = task or make_task(cfg.task, data.labels)
    template = resolve_template(cfg.task, strategy.prompts, fine_tuned=True,
                                where=f"strategies[{cfg.strategies.index(strategy)}]",
                                task_fields=frozenset(task.prompt_fields()))
    system = system_prompt(template, cfg.task.instructions, task)
    rows = tuple(_conversation(system, ex, task) for ex in train)
    vrows = tuple(_conversation(system, ex, task) for ex in val)
    blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows + vrows)
    tokens = [estimate_tokens(r["messages"]) for r in rows]
    return TrainingData(rows, vrows, hashlib.sha256(blob.encode()).hexdigest(),
                        sum(tokens) / max(1, len(tokens)), sum(tokens))


def _per_label(pool: Sequence[Example], n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    for label in sorted({ex.stratum for ex in pool}):
        group = [ex for ex in pool if ex.stratum == label]
        out += rng.sample(group, min(n, len(group)))
    return out


def validate_training_data(td: TrainingData, labels: Sequence[str], eval_inputs: set[str],
                           task: Task) -> None:
    """The checks OpenAI would make, and ours: raise InputError naming the first problem.

    Every label must be taught by at least one training answer (answers parsed by the task).
    """
    if len(td.train) < 10:
        raise InputError(f"fine-tuning data: {len(td.train)} training examples; at least 10 needed")
    seen: set[str] = set()
    for i, row in enumerate(td.train + td.validation):
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise InputError(f"fine-tuning data: example {i} has no messages")
        for m in msgs:
            if m.get("role") not in ROLES:
                raise InputError(f"fine-tuning data: example {i} has unknown role {m.get('role')!r}")
        assistant = [m for m in msgs if m["role"] == "assistant"]
        if not assistant or not all(str(m.get("content", "")).strip() for m in assistant):
            raise InputError(f"fine-tuning data: example {i} has an empty assistant turn")
        user = " ".join(m["content"] for m in msgs if m["role"] == "user")
        if normalise(user) in eval_inputs:
            raise InputError(f"fine-tuning data: example {i} also appears in the eval set")
        if i < len(td.train):
            prediction = task.score(assistant[-1]["content"], "stop", None).prediction
            if prediction is not None:
                seen.add(str(prediction))
    missing = [lab for lab in labels if lab not in seen]
    if missing:
        raise InputError(f"fine-tuning data: no training example for label {missing[0]!r} "
                         f"({len(missing)} labels missing)")


def jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
