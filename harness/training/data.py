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
from harness.strategies.prompts import PromptTemplate, fine_tuned_messages, resolve_template
from harness.tasks import Task, make_task

ROLES = {"system", "user", "assistant"}
# The version of the rule by which training conversations are built, kept in registry entries
# so that a fine-tune trained under an older rule is recognised: 1 put the raw input in the
# user turn; 2 builds system and user turns with `prompts.fine_tuned_messages`, as the
# evaluation of the fine-tuned arm does (the user template applied).
CONVERSATION_RULE = 2


@dataclass(frozen=True)
class TrainingData:
    """Chat fine-tuning examples, split, with their hash and token estimates.

    `inputs` are the raw inputs of the rows (train, then validation, in order) before the user
    template: what the leakage check compares with the eval set. They are not in the hash,
    which covers the rows as sent.
    """

    train: tuple[dict[str, Any], ...]
    validation: tuple[dict[str, Any], ...]
    sha256: str
    tokens_per_example: float
    total_tokens: int
    inputs: tuple[str, ...]


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """A rough token count (4 characters a token, plus per-message overhead)."""
    return sum(4 + len(m.get("content", "")) // 4 + 1 for m in messages) + 3


def _conversation(template: PromptTemplate, instructions: str, ex: Example, task: Task
                  ) -> dict[str, Any]:
    """One training row: what the evaluation sends the fine-tuned arm, then the answer."""
    messages = fine_tuned_messages(template, instructions, task, ex.input)
    messages.append({"role": "assistant", "content": task.render_target(ex.target)})
    return {"messages": messages}


def _split(pool: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    if fraction <= 0 or len(pool) < 20:
        return list(pool), []
    val = stratified_sample(pool, max(1, round(len(pool) * fraction)), seed)
    ids = {ex.id for ex in val}
    return [ex for ex in pool if ex.id not in ids], val


def build_training_data(cfg: Config, strategy: StrategyConfig, data: Data, task: Task | None = None
                        ) -> TrainingData:
    """Training and validation conversations from the train pool only, in OpenAI's format.

    Each row's system and user turns are `prompts.fine_tuned_messages` of the strategy's
    template, as the evaluation sends them (see CONVERSATION_RULE), then the target answer.
    """
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
    instructions = cfg.task.instructions
    rows = tuple(_conversation(template, instructions, ex, task) for ex in train)
    vrows = tuple(_conversation(template, instructions, ex, task) for ex in val)
    blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows + vrows)
    tokens = [estimate_tokens(r["messages"]) for r in rows]
    return TrainingData(rows, vrows, hashlib.sha256(blob.encode()).hexdigest(),
                        sum(tokens) / max(1, len(tokens)), sum(tokens),
                        tuple(ex.input for ex in train + val))


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
    `eval_inputs` are the eval set's normalised raw inputs; they are compared with the rows' raw
    inputs (`td.inputs`), not with the user turns, which the user template may have changed.
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
        if i < len(td.train):
            prediction = task.score(assistant[-1]["content"], "stop", None).prediction
            if prediction is not None:
                seen.add(str(prediction))
    for i, raw in enumerate(td.inputs):
        if normalise(raw) in eval_inputs:
            raise InputError(f"fine-tuning data: example {i} also appears in the eval set")
    missing = [lab for lab in labels if lab not in seen]
    if missing:
        raise InputError(f"fine-tuning data: no training example for label {missing[0]!r} "
                         f"({len(missing)} labels missing)")


def jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
