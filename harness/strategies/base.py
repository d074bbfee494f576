"""The Strategy protocol: `answer(example, generate) -> Attempt`, and what an arm is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.dataset import Example
from harness.kinds import ArmId
from harness.model.completion import Completion
from harness.strategies.prompts import Message, PromptTemplate
from harness.tasks import Task

# Strategy types (config `type:`) and what they are, in one place.
PROMPTING_TYPES = frozenset({"zero_shot", "few_shot"})
SWEEP_TYPES = frozenset({"few_shot"})  # one arm per k: the learning curve
FINE_TUNED_TYPES = frozenset({"fine_tuned"})


def is_prompting(kind: str) -> bool:
    """A prompting strategy (its best arm is what a fine-tune has to beat)."""
    return kind in PROMPTING_TYPES


def is_sweep(kind: str) -> bool:
    """A strategy swept over k (few-shot)."""
    return kind in SWEEP_TYPES


def is_fine_tuned(kind: str) -> bool:
    """A fine-tuned model's strategy."""
    return kind in FINE_TUNED_TYPES


def arm_name(strategy: str, k: int, kind: str) -> str:
    """The display name of an arm in every table: `few-shot@k=4`, `zero-shot` (ArmId)."""
    return str(ArmId.of(strategy, k if is_sweep(kind) else None))


@dataclass(frozen=True)
class Arm:
    """One cell of the comparison: a strategy at one k and one example draw."""

    strategy: str
    type: str  # zero_shot | few_shot | fine_tuned
    model: str  # the config's model name
    model_id: str  # the id sent to the endpoint
    k: int
    draw: int
    shots: tuple[Example, ...]  # the shots when they are the same for every input, else ()
    template: PromptTemplate
    # The prompt version: hash of the text sent apart from the example (rendered system prompt,
    # shots, user template; see strategies.prompts.prompt_sha256). `template.sha256` is only
    # the template's hash: it does not change with the instructions or labels filled in.
    prompt_sha256: str
    unavailable: str | None = None  # why this arm cannot be run (e.g. fine-tune missing)
    # how answers are constrained: json_schema | json_object (grammar) | none (the raw text)
    structured_output: str = "json_schema"
    selection: str | None = None  # few-shot: random | stratified | similar/tfidf | similar/embedding
    variant: str | None = None  # the prompt variant (`variants:`), part of `strategy` as S:V
    samples: int = 1  # self-consistency: answers voted per example
    temperature: float | None = None  # the strategy's own; None: run.temperature
    reasoning: bool = False  # answers start with a reasoning string (tasks.reasoning)
    logprobs: bool = False  # `confidence: logprob`: token log-probabilities are requested

    @property
    def key(self) -> str:
        """Stable identifier used in results and for resuming."""
        return f"{self.strategy}|k={self.k}|draw={self.draw}"

    @property
    def name(self) -> str:
        """Display name (see arm_name)."""
        return arm_name(self.strategy, self.k, self.type)


class Generate(Protocol):
    """One model call: messages in, one Completion out (cache, limiter and retries inside).

    `sample` tells repeated samples apart (part of the cache key when the temperature is above
    0); `temperature` overrides run.temperature.
    """

    async def __call__(self, messages: Sequence[Message], *, model_id: str,
                       sample: int = 0, temperature: float | None = None) -> Completion: ...


@dataclass(frozen=True)
class Call:
    """One call a strategy made."""

    model_id: str
    completion: Completion


@dataclass(frozen=True)
class Attempt:
    """A strategy's answer to one example: every call it made and the one that answers."""

    calls: tuple[Call, ...]
    shots: tuple[str, ...] | None = None  # ids of the examples shown, when chosen per input
    voted: bool = False  # the calls are samples of one prompt, to be majority-voted

    @property
    def final(self) -> Call:
        """The call whose output is the answer (of a vote: the last sample)."""
        return self.calls[-1]


class Strategy(Protocol):
    """An arm's way of answering: builds prompts and calls `generate` as often as it needs."""

    @property
    def arm(self) -> Arm:
        """The arm this strategy answers for."""
        ...

    @property
    def task(self) -> Task:
        """The task its answers are scored by (the run's, or it wrapped: tasks.ReasoningFirst)."""
        ...

    def messages(self, example: Example) -> list[Message]:
        """The messages of the (first) call for this example."""
        ...

    async def answer(self, example: Example, generate: Generate) -> Attempt:
        """Answer one example."""
        ...
