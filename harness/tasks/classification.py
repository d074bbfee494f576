"""Classification: the answer is `{"label": <one of the labels>}`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from harness.tasks.base import Score, parse_answer

OUTPUT_FORMAT = '{"label": "<label>"}'


def default_schema(labels: Sequence[str]) -> dict[str, Any]:
    """`{"label": <one of labels>}`, nothing else."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def label_list(labels: Sequence[str]) -> str:
    """The labels as the prompt shows them: `card_arrival, lost card, "a, b"`.

    Comma-separated, each label as it is, except one that a reader could not split off
    exactly: a label that holds a comma, a quote, a backslash or a character that does not print
    (a newline, a tab), that starts or ends with a space, or is empty is written as a JSON string.
    So the list reads back unambiguously, and ordinary labels cost no more tokens than before.
    """
    return ", ".join(json.dumps(lab, ensure_ascii=False) if _needs_quotes(lab) else lab
                     for lab in labels)


def _needs_quotes(label: str) -> bool:
    return (not label or label != label.strip()
            or any(c in ',"\\' or not c.isprintable() for c in label))


def check_schema(schema: Mapping[str, Any]) -> str | None:
    """Why a configured output schema cannot serve classification, or None if it can."""
    props = schema.get("properties", {})
    if not isinstance(props, dict) or "label" not in props:
        return "task.output_schema: a classification schema needs a 'label' property"
    return None


@dataclass(frozen=True)
class ClassificationTask:
    """One label per input, from a fixed label set."""

    labels: tuple[str, ...]
    schema: dict[str, Any] | None = None  # the config's output_schema, else the default
    name: str = "classification"
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator",
                           jsonschema.Draft202012Validator(self.output_schema()))

    def output_schema(self) -> dict[str, Any]:
        """The configured schema, or `{"label": <one of labels>}`."""
        return dict(self.schema) if self.schema is not None else default_schema(self.labels)

    def prompt_fields(self) -> Mapping[str, str]:
        """{labels} and {output_format} for the system prompt."""
        return {"labels": label_list(self.labels), "output_format": OUTPUT_FORMAT}

    def render_target(self, target: Any) -> str:
        """`{"label": "..."}` exactly as few-shot turns and fine-tuning data show it."""
        return json.dumps({"label": target}, ensure_ascii=False)

    def score(self, output: str | None, finish_reason: str | None, expected: Any) -> Score:
        """Parse JSON, validate against the schema, compare the label with `expected`."""
        obj, fenced, failed = parse_answer(output, finish_reason)
        if failed is not None:
            return failed
        truncated = finish_reason == "length"
        label = obj.get("label") if isinstance(obj, dict) else None
        prediction = label if isinstance(label, str) else None
        errors = sorted(self._validator.iter_errors(obj), key=lambda e: e.path)
        valid = not errors and not truncated
        kind: str | None = None
        detail: str | None = None
        if truncated:
            kind, detail = "truncated", "output cut at max_tokens"
        elif errors:
            kind, detail = "schema", errors[0].message[:300]
        return Score(prediction, self.is_correct(prediction, expected) and valid, True, valid,
                     kind, detail, fenced)

    def is_correct(self, prediction: Any, expected: Any) -> bool:
        """The predicted label is the expected one (a schema-valid answer's `correct`)."""
        return bool(prediction == expected)

    def vote(self, predictions: Sequence[Any]) -> Any:
        """The most frequent label; a tie goes to the label listed first; None if no label."""
        counts = Counter(p for p in predictions if p is not None)
        if not counts:
            return None
        order = {lab: i for i, lab in enumerate(self.labels)}
        return min(counts, key=lambda lab: (-counts[lab], order.get(lab, len(order)), str(lab)))

    def breakdown(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support for each label present in `expected` or predicted."""
        return per_class(expected, predicted, self.labels)

    def quality(self, expected: Sequence[Any], predicted: Sequence[Any]) -> float:
        """Macro-F1 over the labels that occur."""
        table = self.breakdown(expected, predicted)
        import numpy as np  # numpy's mean, as the reports always used (pairwise summation)

        return float(np.mean([v["f1"] for v in table.values()])) if table else 0.0

    def field_results(self, expected: Any, prediction: Any) -> None:
        """A label has no fields."""
        return None

    def example_counts(self, expected: Any, prediction: Any) -> None:
        """A label has no fields."""
        return None

    def metrics(self) -> Mapping[str, str]:
        """Accuracy and macro-F1."""
        return {"accuracy": "accuracy", "macro_f1": "macro-F1"}

    def extra_metrics(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """None beyond accuracy and macro-F1."""
        return {}

    def chance_accuracy(self, expected: Sequence[Any]) -> float:
        """The better of guessing uniformly among the labels and always answering the most
        frequent label of `expected` (0.0 for no examples)."""
        if not expected:
            return 0.0
        most = Counter(expected).most_common(1)[0][1]
        return max(1.0 / max(len(self.labels), 1), most / len(expected))


def per_class(expected: Sequence[Any], predicted: Sequence[Any],
              labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label, counted array-wise (no Python loop per
    pair): a pair is right when `expected == predicted`; a wrong prediction other than None is
    a false positive of its label, and a miss of the expected one."""
    import numpy as np  # only where the reports score (harness run needs none before its answers)

    n = len(expected)
    if len(predicted) != n:
        raise ValueError(f"{n} expected values but {len(predicted)} predictions")
    gold = np.fromiter(expected, dtype=object, count=n)
    pred = np.fromiter(predicted, dtype=object, count=n)
    right = np.asarray(gold == pred, dtype=bool) if n else np.zeros(0, dtype=bool)
    tp: Counter[Any] = Counter(gold[right].tolist())
    fn: Counter[Any] = Counter(gold[~right].tolist())
    fp: Counter[Any] = Counter(pred[~right].tolist())
    fp.pop(None, None)  # no answer is a miss, not a false positive
    present = set(expected) | set(predicted)
    out: dict[str, dict[str, float]] = {}
    for lab in labels:
        if lab not in present:
            continue
        t, f_p, f_n = tp[lab], fp[lab], fn[lab]
        precision = t / (t + f_p) if t + f_p else 0.0
        recall = t / (t + f_n) if t + f_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[lab] = {"precision": precision, "recall": recall, "f1": f1, "support": t + f_n}
    return out
