"""The first strategies: zero-shot, few-shot (one arm per k and draw) and fine-tuned model ids.

Each makes one call per example; `STRATEGIES` maps a config `type:` to the function that
expands one strategy of the config into its arms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example
from harness.errors import InputError
from harness.kinds import ArmId
from harness.strategies.base import Arm, Attempt, Call, Generate, Strategy
from harness.strategies.prompts import (
    Message,
    PromptTemplate,
    build_messages,
    fine_tuned_messages,
    prompt_sha256,
    render,
    resolve_template,
)
from harness.strategies.selectors import SELECTORS, Selector, hash_seed
from harness.tasks import ReasoningFirst, Task

# Given a fine_tuned strategy, return (model id, None) or (None, reason it is unavailable).
FineTuneResolver = Callable[[StrategyConfig], tuple[str | None, str | None]]


@dataclass(frozen=True)
class SingleCall:
    """One prompt, one call: the shots are the arm's fixed ones, or chosen per input."""

    arm: Arm
    task: Task
    instructions: str
    pool: tuple[Example, ...] = ()
    selector: Selector | None = None  # a per-example selector; None: the arm's fixed shots
    seed: int = 0

    def shots_for(self, example: Example) -> tuple[Example, ...]:
        """The few-shot examples shown before `example`."""
        if self.selector is None or not self.selector.per_example:
            return self.arm.shots
        return self.selector.pick(self.pool, self.arm.k, self.seed, example)

    def messages(self, example: Example,
                 shots: tuple[Example, ...] | None = None) -> list[Message]:
        """System prompt, the shots as turns (default: `shots_for(example)`), then the input."""
        shots = self.shots_for(example) if shots is None else shots
        return build_messages(self.arm.template, self.instructions, self.task, shots,
                              example.input)

    @property
    def calls_per_example(self) -> int:
        """Requests per example: one, or one per sample of a vote."""
        return self.arm.samples

    async def answer(self, example: Example, generate: Generate) -> Attempt:
        """One call with the arm's model, whose answer is the answer; with `samples: n`, n
        calls of the same prompt (samples draw*n .. draw*n+n-1, so each is its own cache
        entry), majority-voted when the record is made."""
        shots = self.shots_for(example)
        messages = self.messages(example, shots)
        arm = self.arm
        first = arm.draw * arm.samples
        completions = await asyncio.gather(*(
            generate(messages, model_id=arm.model_id, sample=first + i,
                     temperature=arm.temperature)
            for i in range(arm.samples)))
        per_input = self.selector is not None and self.selector.per_example
        return Attempt(tuple(Call(arm.model_id, c) for c in completions),
                       shots=tuple(ex.id for ex in shots) if per_input else None,
                       voted=arm.samples > 1)


@dataclass(frozen=True)
class FineTunedCall(SingleCall):
    """A fine-tuned model's arm: one call with the conversation it was trained on.

    Its messages come from `prompts.fine_tuned_messages`, the rule the training rows are built
    by (`training.data.build_training_data`), so what is evaluated is what was taught.
    """

    def messages(self, example: Example,
                 shots: tuple[Example, ...] | None = None) -> list[Message]:
        """System prompt and the templated input (a fine-tuned arm shows no shots)."""
        if shots:
            raise ValueError(f"{self.arm.name}: a fine-tuned arm shows no few-shot examples")
        return fine_tuned_messages(self.arm.template, self.instructions, self.task, example.input)


@dataclass(frozen=True)
class Context:
    """What expanding a strategy needs besides the strategy itself."""

    cfg: Config
    data: Data
    task: Task
    resolve_ft: FineTuneResolver


def _template(ctx: Context, i: int, s: StrategyConfig, *, fine_tuned: bool = False) -> PromptTemplate:
    return resolve_template(ctx.cfg.task, s.prompts, fine_tuned=fine_tuned,
                            where=f"strategies[{i}]" + (f".variants.{s.variant}" if s.variant else ""),
                            task_fields=frozenset(ctx.task.prompt_fields()))


def _version(ctx: Context, template: PromptTemplate, shots: tuple[Example, ...] = (),
             per_example: str | None = None) -> str:
    """The arm's prompt version (see prompts.prompt_sha256)."""
    return prompt_sha256(template, ctx.cfg.task.instructions, ctx.task, shots,
                         per_example=per_example)


def _pool_key(selection: str, k: int, seed: int, pool: tuple[Example, ...]) -> str:
    """What decides the shots of a per-example selector: its name, k, seed and the pool."""
    blob = json.dumps([[ex.id, ex.input, ex.target] for ex in pool], ensure_ascii=False,
                      default=str)
    return f"{selection}|k={k}|seed={seed}|pool={hashlib.sha256(blob.encode()).hexdigest()}"


def _mode(ctx: Context, s: StrategyConfig) -> str:
    """The arm's structured-output mode: the strategy's, else its model's."""
    return s.structured_output or ctx.cfg.models[s.model].structured_output


def _settings(ctx: Context, s: StrategyConfig) -> dict[str, Any]:
    """The Arm fields every arm of a strategy shares besides its prompt."""
    return {"structured_output": _mode(ctx, s), "variant": s.variant, "samples": s.samples,
            "temperature": s.temperature, "reasoning": s.reasoning,
            "logprobs": s.confidence == "logprob"}


def _task(ctx: Context, s: StrategyConfig) -> Task:
    """The task the strategy's answers are scored by: the run's, with reasoning first if asked."""
    return ReasoningFirst(ctx.task) if s.reasoning else ctx.task


def _zero_shot(ctx: Context, i: int, s: StrategyConfig) -> list[Strategy]:
    model_id = ctx.cfg.models[s.model].model
    template = _template(ctx, i, s)
    task = _task(ctx, s)
    version = prompt_sha256(template, ctx.cfg.task.instructions, task, ())
    arm = Arm(s.name, s.type, s.model, model_id, 0, 0, (), template, version, **_settings(ctx, s))
    return [SingleCall(arm, task, ctx.cfg.task.instructions)]


def _few_shot(ctx: Context, i: int, s: StrategyConfig) -> list[Strategy]:
    cfg, data = ctx.cfg, ctx.data
    template = _template(ctx, i, s)
    selector = SELECTORS[s.selection]
    if selector.bind is not None:  # e.g. similar: one index over the pool for every k and draw
        selector = selector.bind(data.train, s.similarity)
    out: list[Strategy] = []
    for k in s.shots:
        if k > len(data.train):
            if cfg.dataset.train is None:
                src = "there is no training pool (set dataset.train)"
            else:
                src = f"the training pool holds only {len(data.train)} examples"
                if data.leaked:
                    src += f" ({data.leaked} removed: also in the eval set)"
            raise InputError(f"strategies[{i}].shots: k={k} is more than the pool can give: {src}")
        for draw in range(s.draws):
            seed = hash_seed(cfg.dataset.seed, k, draw)
            shots = () if selector.per_example else selector.pick(data.train, k, seed, None)
            selection = s.selection + (f"/{s.similarity}" if s.selection == "similar" else "")
            per = _pool_key(selection, k, seed, data.train) if selector.per_example else None
            arm = Arm(s.name, s.type, s.model, cfg.models[s.model].model, k, draw, shots, template,
                      _version(ctx, template, shots, per), selection=selection, **_settings(ctx, s))
            out.append(SingleCall(arm, ctx.task, cfg.task.instructions, data.train, selector, seed))
    return out


def _fine_tuned(ctx: Context, i: int, s: StrategyConfig) -> list[Strategy]:
    model_id, reason = ctx.resolve_ft(s)
    template = _template(ctx, i, s, fine_tuned=True)
    arm = Arm(s.name, s.type, s.model, model_id or str(s.fine_tuned_model), 0, 0, (), template,
              _version(ctx, template), unavailable=reason, **_settings(ctx, s))
    return [FineTunedCall(arm, ctx.task, ctx.cfg.task.instructions)]


# config `type:` -> expansion into arms; a plain dict
STRATEGIES: dict[str, Callable[[Context, int, StrategyConfig], list[Strategy]]] = {
    "zero_shot": _zero_shot,
    "few_shot": _few_shot,
    "fine_tuned": _fine_tuned,
}


def variants_of(s: StrategyConfig) -> list[StrategyConfig]:
    """The strategy itself, or one strategy per prompt variant: named `S:VARIANT`, the
    variant's templates over the strategy's own."""
    if not s.variants:
        return [s]
    return [dataclasses.replace(s, name=str(ArmId(s.name, v.name)), prompts=s.prompts.merged(v.prompts),
                                variants=(), variant=v.name, reasoning=v.reasoning)
            for v in s.variants]


def expand(cfg: Config, data: Data, task: Task, resolve_ft: FineTuneResolver) -> list[Strategy]:
    """All arms of a run, in a stable order (strategy order, then variant, k and draw)."""
    ctx = Context(cfg, data, task, resolve_ft)
    out: list[Strategy] = []
    for i, s in enumerate(cfg.strategies):
        for one in variants_of(s):
            out.extend(STRATEGIES[one.type](ctx, i, one))
    return out


def rendered_prompt(strategy: Strategy, example: Example) -> str:
    """One rendered prompt of the arm, for the report."""
    return render(strategy.messages(example))


__all__ = ["STRATEGIES", "FineTuneResolver", "FineTunedCall", "SingleCall", "expand", "rendered_prompt",
           "variants_of"]

