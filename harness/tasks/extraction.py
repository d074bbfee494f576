"""Extraction: the answer is a JSON object of fields, described by `task.output_schema`.

Scoring, per example: the answer must parse as JSON (one surrounding Markdown code fence is
tolerated, and counted: `Score.lenient`) and match the schema; an answer that does not, predicts
nothing, so every gold value counts as missed. Each field is compared with its `task.match` rule
(a missing key equals null); `correct` is the exact match of every field.

Per arm: micro precision / recall / F1 over the non-null values of the leaf fields (an object
field with `properties` is scored per leaf path, `address.city`; see harness.tasks.fields). A
predicted non-null value equal to the gold value is a true positive; a predicted non-null value
that is wrong is a false positive (and, when the gold value is non-null, also a miss); a
non-null gold value not predicted is a miss. An array leaf under `match: set` counts elements
instead (tasks.fields.set_counts). `correct` stays the whole-object exact match.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from harness.dataset import Targets
from harness.tasks.base import Score, parse_answer
from harness.tasks.fields import SET, FieldPaths, normalized_text, rule_of, set_counts, value_at

MATCHES = ("exact", "normalized", "number", "set")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def values_equal(gold: Any, pred: Any, how: str) -> bool:
    """Whether a predicted field value equals the gold one under the rule `how`."""
    if gold is None or pred is None:
        return gold is None and pred is None
    if how == "exact":
        return bool(gold == pred)
    if how == "number":
        a, b = _number(gold), _number(pred)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if how == "set":
        if not isinstance(gold, list) or not isinstance(pred, list):
            return False
        return {normalized_text(json.dumps(v) if isinstance(v, dict | list) else v) for v in gold} \
            == {normalized_text(json.dumps(v) if isinstance(v, dict | list) else v) for v in pred}
    if isinstance(gold, str) and isinstance(pred, str):
        return normalized_text(gold) == normalized_text(pred)
    if isinstance(gold, list) and isinstance(pred, list):
        return len(gold) == len(pred) and all(values_equal(g, p, how) for g, p in zip(gold, pred,
                                                                                     strict=True))
    return bool(gold == pred)


def check_schema(schema: Mapping[str, Any] | None) -> str | None:
    """Why a configured schema cannot describe extraction answers, or None if it can."""
    if schema is None:
        return "task.output_schema: an extraction task needs a JSON Schema for its answer object"
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or not props:
        return ("task.output_schema: an extraction schema must be an object schema "
                "(type: object) with the answer's fields under 'properties'")
    return None


def _type_text(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "value"
    if "enum" in spec:
        return "one of " + json.dumps(spec["enum"], ensure_ascii=False)
    kind = spec.get("type", "value")
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(str(k) for k in kinds)


@dataclass(frozen=True)
class ExtractionTask:
    """Fields extracted into one JSON object per input."""

    schema: dict[str, Any]
    match: Mapping[str, str] = field(default_factory=dict)  # field or leaf path -> rule; "default"
    name: str = "extraction"
    _validator: Any = field(default=None, init=False, repr=False, compare=False)
    _paths: FieldPaths = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", jsonschema.Draft202012Validator(self.schema))
        object.__setattr__(self, "_paths", FieldPaths.of(self.schema))

    @property
    def fields(self) -> tuple[str, ...]:
        """The answer's fields, in the schema's order."""
        return tuple(self.schema.get("properties", {}))

    @property
    def leaves(self) -> tuple[str, ...]:
        """The leaf paths field F1 and the per-field scores count (`address.city`; a flat
        schema's leaves are its fields)."""
        return self._paths.names

    def rule(self, name: str) -> str:
        """The comparison rule of one top-level field (its whole value: exact match)."""
        return self.match.get(name) or self.match.get("default") or "normalized"

    def output_schema(self) -> dict[str, Any]:
        """The configured schema."""
        return dict(self.schema)

    def prompt_fields(self) -> Mapping[str, str]:
        """{output_format}: the object's keys and their types; {fields}: the key names."""
        props = self.schema.get("properties", {})
        shape = ", ".join(f'"{k}": <{_type_text(v)}>' for k, v in props.items())
        return {"output_format": "{" + shape + "}", "fields": ", ".join(self.fields),
                "labels": ""}

    def render_target(self, target: Any) -> str:
        """The canonical JSON of a gold object (schema key order, compact, UTF-8)."""
        obj = {k: target.get(k) for k in self.fields} if isinstance(target, dict) else target
        return json.dumps(obj, ensure_ascii=False)

    def parse_target(self, raw: Any) -> Any:
        """A gold object from a data field: an object (JSONL), or a JSON string (CSV); values
        of mapped CSV columns are converted to a number or boolean where the schema asks."""
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON object ({exc.msg}, column {exc.colno})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"the expected answer must be a JSON object, not {type(raw).__name__}")
        props = self.schema.get("properties", {})
        return {k: _coerce(v, props.get(k)) for k, v in raw.items()}

    def targets(self) -> Targets:
        """How the dataset reads this task's gold answers."""
        return Targets(self.parse_target, self.check_target, self.stratum)

    def check_target(self, target: Any) -> str | None:
        """Why a gold object breaks the schema (with the schema path), or None."""
        errors = sorted(self._validator.iter_errors(target), key=lambda e: list(e.path))
        if not errors:
            return None
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        rule = "/".join(str(p) for p in e.absolute_schema_path)
        return f"gold object at {where}: {e.message[:200]} (schema path {rule})"

    def stratum(self, target: Any) -> str:
        """Which fields are non-null: the stratum of stratified sampling."""
        if not isinstance(target, dict):
            return ""
        return ",".join(k for k in self.fields if target.get(k) is not None)

    def field_correct(self, expected: Any, prediction: Any) -> dict[str, bool]:
        """Each field right or wrong (an absent prediction gets every field wrong, except where
        the gold value is null too)."""
        gold = expected if isinstance(expected, dict) else {}
        pred = prediction if isinstance(prediction, dict) else {}
        return {k: values_equal(gold.get(k), pred.get(k), self.rule(k)) for k in self.fields}

    def is_correct(self, prediction: Any, expected: Any) -> bool:
        """Every field of the predicted object equals the expected one under its rule (a
        schema-valid answer's `correct`; no object predicted: never)."""
        return isinstance(prediction, dict) and all(self.field_correct(expected,
                                                                       prediction).values())

    def score(self, output: str | None, finish_reason: str | None, expected: Any) -> Score:
        """Parse JSON, validate it, compare every field with `expected`."""
        obj, fenced, failed = parse_answer(output, finish_reason)
        if failed is not None:
            return failed
        truncated = finish_reason == "length"
        errors = sorted(self._validator.iter_errors(obj), key=lambda e: list(e.path))
        if errors or truncated:
            e = errors[0] if errors else None
            detail = ("output cut at max_tokens" if e is None else
                      f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:250]}")
            return Score(None, False, True, False, "truncated" if truncated else "schema", detail,
                         fenced)
        right = self.field_correct(expected, obj)
        ok = all(right.values())
        wrong = [k for k, v in right.items() if not v]
        return Score(obj, ok, True, True, None if ok else "wrong_values",
                     None if ok else "wrong: " + ", ".join(wrong), fenced, right)

    def field_results(self, expected: Any, prediction: Any) -> dict[str, bool]:
        """field_correct of a usable answer; every field wrong for an unusable one."""
        if isinstance(prediction, dict):
            return self.field_correct(expected, prediction)
        return dict.fromkeys(self.fields, False)

    def vote(self, predictions: Sequence[Any]) -> Any:
        """A vote per field: the most frequent value (first seen wins a tie); None if none."""
        objs = [p for p in predictions if isinstance(p, dict)]
        if not objs:
            return None
        out: dict[str, Any] = {}
        for k in self.fields:
            values = [json.dumps(o.get(k), sort_keys=True) for o in objs]
            counts = Counter(values)
            best = max(counts.values())
            out[k] = json.loads(next(v for v in values if counts[v] == best))
        return out

    def field_counts(self, expected: Sequence[Any], predicted: Sequence[Any]
                     ) -> dict[str, tuple[int, int, int, int, int]]:
        """Per leaf path: (true positives, false positives, misses, right, total). An example
        with no usable answer (not JSON, or against the schema) has every leaf wrong; an array
        leaf under `match: set` counts its elements (tasks.fields.set_counts)."""
        leaves = [(p, n, rule_of(self.match, p))
                  for p, n in zip(self._paths.leaves, self._paths.names, strict=True)]
        table = {n: [0, 0, 0, 0, 0] for _, n, _ in leaves}
        for gold_obj, pred_obj in zip(expected, predicted, strict=True):
            answered = isinstance(pred_obj, dict)
            for path, name, how in leaves:
                g = value_at(gold_obj, path)
                p = value_at(pred_obj, path) if answered else None
                row = table[name]
                row[4] += 1
                if how == SET:
                    tp, fp, fn, right = set_counts(g, p)
                    row[0] += tp if answered else 0
                    row[1] += fp if answered else 0
                    row[2] += fn  # no usable answer: every gold element missed
                    row[3] += answered and right
                    continue
                if not answered:  # no usable answer: every field wrong, every gold value missed
                    row[2] += g is not None
                    continue
                same = values_equal(g, p, how)
                row[3] += same
                if p is not None and same:
                    row[0] += 1
                elif p is not None:
                    row[1] += 1
                    row[2] += g is not None
                elif g is not None:
                    row[2] += 1
        return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in table.items()}

    def example_counts(self, expected: Any, predicted: Any) -> tuple[int, int, int]:
        """One example's (true positives, false positives, misses) summed over its leaf
        paths: its row of field F1's micro counts."""
        table = self.field_counts([expected], [predicted]).values()
        return (sum(t[0] for t in table), sum(t[1] for t in table), sum(t[2] for t in table))

    def breakdown(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, dict[str, float]]:
        """Per leaf path: accuracy, precision, recall, F1 and support (non-null gold values;
        gold elements for a set-matched array)."""
        out = {}
        for k, (tp, fp, fn, right, total) in self.field_counts(expected, predicted).items():
            out[k] = {"accuracy": right / total if total else 0.0, **_prf(tp, fp, fn),
                      "support": tp + fn}
        return out

    def micro(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """Micro precision, recall and F1 over every leaf path's non-null values."""
        tp = fp = fn = 0
        for a, b, c, _, _ in self.field_counts(expected, predicted).values():
            tp, fp, fn = tp + a, fp + b, fn + c
        return _prf(tp, fp, fn)

    def extra_metrics(self, expected: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """field_precision, field_recall, field_f1 (micro over non-null values)."""
        return {f"field_{k}": v for k, v in self.micro(expected, predicted).items()}

    def metrics(self) -> Mapping[str, str]:
        """Exact match of the whole object (the accuracy column) and micro field F1."""
        return {"accuracy": "exact match", "field_f1": "field F1 (micro)"}

    def quality(self, expected: Sequence[Any], predicted: Sequence[Any]) -> float:
        """Micro field F1."""
        return self.micro(expected, predicted)["f1"]

    def chance_accuracy(self, expected: Sequence[Any]) -> float:
        """The exact-match rate of always answering the most frequent gold object."""
        if not expected:
            return 0.0
        counts = Counter(self.render_target(t) for t in expected)
        return counts.most_common(1)[0][1] / len(expected)


def _coerce(value: Any, spec: Any) -> Any:
    """A CSV cell's string as the number or boolean its schema property asks for."""
    if not isinstance(value, str) or not isinstance(spec, dict):
        return value
    kind = spec.get("type")
    kinds = set(kind if isinstance(kind, list) else [kind])
    if "string" in kinds:
        return value
    if kinds & {"integer", "number"}:
        number = _number(value)
        if number is not None:
            return int(number) if "integer" in kinds and number.is_integer() else number
    if "boolean" in kinds and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
