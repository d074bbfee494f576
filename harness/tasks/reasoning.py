"""Reasoning first: a task's answer with a `reasoning` string before its own fields.

A prompt variant with `reasoning: true` asks the model to think before it answers. The answer
object then starts with `"reasoning": "..."`, which the output schema requires (so constrained
decoding makes the model write it first), and which scoring strips before the wrapped task
scores the rest: only the answer is scored. The extra completion tokens show in the arm's
token and cost figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.tasks.base import Score, Task, parse_answer

FIELD = "reasoning"


def with_reasoning(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` (an object schema) with a required `reasoning` string as its first property."""
    props = dict(schema.get("properties") or {})
    props.pop(FIELD, None)
    return {**schema, "type": "object",
            "properties": {FIELD: {"type": "string"}, **props},
            "required": [FIELD, *[r for r in schema.get("required", []) if r != FIELD]]}


@dataclass(frozen=True)
class ReasoningFirst:
    """`inner`'s task with a reasoning field before the answer (see the module)."""

    inner: Task

    @property
    def name(self) -> str:
        """The wrapped task's type."""
        return self.inner.name

    def output_schema(self) -> dict[str, Any]:
        """The wrapped schema with `reasoning` first (with_reasoning)."""
        return with_reasoning(self.inner.output_schema())

    def prompt_fields(self) -> Mapping[str, str]:
        """The wrapped task's placeholders, {output_format} with the reasoning first."""
        fields = dict(self.inner.prompt_fields())
        shape = fields.get("output_format", "")
        if shape.startswith("{"):
            rest = shape[1:].lstrip()
            fields["output_format"] = ('{"reasoning": "<your reasoning, step by step>"'
                                       + (", " + rest if rest != "}" else "}"))
        return fields

    def render_target(self, target: Any) -> str:
        """The answer text with an empty reasoning (used to re-score a vote)."""
        body = json.loads(self.inner.render_target(target))
        return json.dumps({FIELD: "", **body} if isinstance(body, dict) else body,
                          ensure_ascii=False)

    def score(self, output: str | None, finish_reason: str | None, expected: Any) -> Score:
        """Parse; an object without a reasoning string breaks the schema (and predicts
        nothing); otherwise the wrapped task scores the object without it."""
        obj, fenced, failed = parse_answer(output, finish_reason)
        if failed is not None:
            return failed
        if not isinstance(obj, dict) or not isinstance(obj.get(FIELD), str):
            return Score(None, False, True, False, "schema",
                         f"the answer has no {FIELD!r} string before its fields", fenced)
        rest = {k: v for k, v in obj.items() if k != FIELD}
        s = self.inner.score(json.dumps(rest, ensure_ascii=False), finish_reason, expected)
        return Score(s.prediction, s.correct, s.parse_ok, s.schema_valid, s.error_kind, s.error,
                     s.lenient or fenced)

    def is_correct(self, prediction: Any, expected: Any) -> bool:
        """The wrapped task's comparison (the reasoning is not part of the prediction)."""
        return self.inner.is_correct(prediction, expected)

    def vote(self, predictions: Sequence[Any]) -> Any:
        """The wrapped task's vote."""
        return self.inner.vote(predictions)

    def quality(self, expected: Sequence[Any], predicted: Sequence[Any]) -> float:
        """The wrapped task's quality figure."""
        return self.inner.quality(expected, predicted)

    def field_results(self, expected: Any, prediction: Any) -> Mapping[str, bool] | None:
        """The wrapped task's per-field results."""
        return self.inner.field_results(expected, prediction)

    def example_counts(self, expected: Any, prediction: Any) -> tuple[int, int, int] | None:
        """The wrapped task's field counts."""
        return self.inner.example_counts(expected, prediction)

    def metrics(self) -> Mapping[str, str]:
        """The wrapped task's metrics."""
        return self.inner.metrics()

    def extra_metrics(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """The wrapped task's extra figures."""
        return self.inner.extra_metrics(expected, predicted)

    def chance_accuracy(self, expected: Sequence[Any]) -> float:
        """The wrapped task's chance accuracy."""
        return self.inner.chance_accuracy(expected)

    def breakdown(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, dict[str, float]]:
        """The wrapped task's per-class or per-field breakdown."""
        return self.inner.breakdown(expected, predicted)


__all__ = ["FIELD", "ReasoningFirst", "with_reasoning"]
