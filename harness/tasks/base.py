"""The Task protocol: the one place that knows what an answer looks like."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Score:
    """How one answer scored against its expected target."""

    prediction: Any  # the task's parsed answer (a label for classification), None if none
    correct: bool
    parse_ok: bool
    schema_valid: bool
    error_kind: str | None
    error: str | None
    lenient: bool = False  # parsed only after a documented leniency (one Markdown code fence)
    fields: Mapping[str, bool] | None = None  # per field right or wrong (tasks with fields)


def has_fields(task: Task) -> bool:
    """Whether the task's answers have fields scored one by one (it reports field F1)."""
    return "field_f1" in task.metrics()


def parse_answer(output: str | None, finish_reason: str | None
                 ) -> tuple[Any, bool, Score | None]:
    """(parsed JSON, whether one surrounding ``` fence was removed, None) for an answer that
    parses; (None, fenced, the failure's Score) for one that is empty, cut off or not JSON.

    The one documented leniency of every task: a single Markdown code fence around the JSON.
    """
    content = (output or "").strip()
    if not content:
        return None, False, Score(None, False, False, False, "empty", "the answer was empty")
    lines = content.splitlines()
    fenced = len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```"
    text = "\n".join(lines[1:-1]) if fenced else content
    try:
        return json.loads(text), fenced, None
    except json.JSONDecodeError as exc:
        if finish_reason == "length":
            return None, fenced, Score(None, False, False, False, "truncated",
                                       "output cut at max_tokens", fenced)
        return None, fenced, Score(None, False, False, False, "invalid_json",
                                   f"not JSON ({exc.msg})", fenced)


class Task(Protocol):
    """What a strategy, the runner and the analysis need to know about answers.

    A task renders a gold target as the canonical answer text (few-shot turns, fine-tuning
    data), gives the JSON Schema every answer must match, parses and scores one answer, and
    combines several answers into one (majority vote).
    """

    @property
    def name(self) -> str:
        """The task type (`task.type` in the config)."""
        ...

    def output_schema(self) -> dict[str, Any]:
        """The JSON Schema every answer must match."""
        ...

    def prompt_fields(self) -> Mapping[str, str]:
        """Placeholder values the task gives the system prompt (besides {instructions})."""
        ...

    def render_target(self, target: Any) -> str:
        """The exact answer text for a gold target."""
        ...

    def score(self, output: str | None, finish_reason: str | None, expected: Any) -> Score:
        """Parse the model's text, check it against the schema, compare with `expected`."""
        ...

    def is_correct(self, prediction: Any, expected: Any) -> bool:
        """Whether a stored prediction (of a schema-valid answer) equals `expected` as `score`
        compares them: what a record's `correct` must say (store.read_columns checks it)."""
        ...

    def vote(self, predictions: Sequence[Any]) -> Any:
        """One prediction from several (majority; ties broken deterministically)."""
        ...

    def quality(self, expected: Sequence[Any], predicted: Sequence[Any]) -> float:
        """The task's headline quality figure besides accuracy (macro-F1 for classification)."""
        ...

    def field_results(self, expected: Any, prediction: Any) -> Mapping[str, bool] | None:
        """Each field of the answer right or wrong (an unusable answer has every field wrong);
        None for a task whose answers have no fields."""
        ...

    def example_counts(self, expected: Any, prediction: Any) -> tuple[int, int, int] | None:
        """One example's (true positives, false positives, misses) over its fields, its row of
        field F1's micro counts; None for a task whose answers have no fields."""
        ...

    def metrics(self) -> Mapping[str, str]:
        """The task's metrics as summary columns -> the name a header or a sentence gives
        them (e.g. accuracy -> "exact match", field_f1 -> "field F1 (micro)"), headline
        first."""
        ...

    def extra_metrics(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """Per-arm figures only this task type has (extraction: field precision, recall, F1)."""
        ...

    def chance_accuracy(self, expected: Sequence[Any]) -> float:
        """The accuracy of the best answer that ignores the input (a verdict needs better)."""
        ...

    def breakdown(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, dict[str, float]]:
        """Per-class (or per-field) precision, recall, F1 and support."""
        ...
