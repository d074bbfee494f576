"""The JSON Schema of config files, and error messages a person can act on.

Each message names its location (`strategies[1].shots: ...`); unknown keys and misspelt values get a
did-you-mean.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema
import yaml

from harness.kinds import CASCADE, FEW_SHOT, FINE_TUNED, SELECTIONS, STRATEGY_KINDS, TASK_KINDS

_NUM = {"type": "number"}
_POS_INT = {"type": "integer", "minimum": 1}
_STR = {"type": "string", "minLength": 1}
_NULLABLE_STR = {"type": ["string", "null"]}

_RATES = {
    "input": {"type": "number", "minimum": 0},
    "cached_input": {"type": "number", "minimum": 0},
    "output": {"type": "number", "minimum": 0},
}

_PRICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_RATES,
        "training": {"type": "number", "minimum": 0},
        # the share of these rates a Batch API request costs (OpenAI: half)
        "batch": {"type": "number", "minimum": 0, "maximum": 1},
        # a fixed monthly cost of serving the model (a self-hosted machine), USD
        "hosting_per_month": {"type": "number", "minimum": 0},
        # inference on the model's fine-tuned ids (ft:..., local-ft:...)
        "fine_tuned": {"type": "object", "additionalProperties": False, "properties": _RATES},
    },
}

_PROMPTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"system": _STR, "user": _STR, "fine_tuned_system": _STR},
}

VARIANT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"system": _STR, "user": _STR, "reasoning": {"type": "boolean"}},
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "task", "dataset", "models", "strategies"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "task": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "instructions"],
            "properties": {
                "type": {"enum": list(TASK_KINDS)},
                "instructions": _STR,
                "labels": {
                    "oneOf": [
                        {"type": "array", "items": _STR, "minItems": 2, "uniqueItems": True},
                        _STR,
                        {"type": "null"},
                    ]
                },
                "output_schema": {"type": ["object", "string"]},
                "prompts": _PROMPTS,
                # keys: default, a field or a leaf path (address.city): tasks.task_problems
                "match": {
                    "type": "object",
                    "additionalProperties": {"enum": ["exact", "normalized", "number", "set"]},
                },
            },
        },
        "dataset": {
            "type": "object",
            "additionalProperties": False,
            "required": ["eval", "input"],
            "properties": {
                "eval": _STR,
                "train": _NULLABLE_STR,
                "input": _STR,
                "target": _STR,
                "id": _NULLABLE_STR,
                "cluster": _NULLABLE_STR,
                "limit": {"type": ["integer", "null"], "minimum": 1},
                "seed": {"type": "integer"},
                "target_fields": {"type": "object", "minProperties": 1,
                                  "additionalProperties": _STR},
            },
        },
        "models": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["provider"],
                "properties": {
                    "provider": {"enum": ["local", "openai"]},
                    "model": _STR,
                    "base_url": {"oneOf": [_NULLABLE_STR, {"type": "array", "minItems": 1,
                                                           "uniqueItems": True, "items": _STR}]},
                    "servers": {"type": "integer", "minimum": 1, "maximum": 64},
                    "mode": {"enum": ["online", "batch"]},
                    "api_key_env": _NULLABLE_STR,
                    "token_param": {"enum": ["max_tokens", "max_completion_tokens"]},
                    "structured_output": {"enum": ["json_schema", "json_object", "none"]},
                    "timeout": {"type": "number", "exclusiveMinimum": 0},
                    "n_ctx": {"type": "integer", "minimum": 256},
                    "price": _PRICE,
                },
            },
        },
        "strategies": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "type"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                    "type": {"enum": list(STRATEGY_KINDS)},
                    "model": _STR,
                    # type cascade (config/cascade.py): no model, no request
                    "primary": _STR,
                    "fallback": _STR,
                    "thresholds": {"oneOf": [
                        {"const": "auto"},
                        {"type": "array", "minItems": 1,
                         "items": {"type": "number", "minimum": 0, "maximum": 1}}]},
                    "shots": {
                        "oneOf": [
                            _POS_INT,
                            {"type": "array", "items": _POS_INT, "minItems": 1, "uniqueItems": True},
                        ]
                    },
                    "selection": {"enum": list(SELECTIONS)},
                    "similarity": {"enum": ["tfidf", "embedding"]},
                    "draws": _POS_INT,
                    "structured_output": {"enum": ["json_schema", "json_object", "none"]},
                    "fine_tuned_model": {
                        "oneOf": [
                            _STR,
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": _STR,
                                    "train_if_missing": {"type": "boolean"},
                                    "training_cost_usd": {"type": "number", "minimum": 0},
                                },
                            },
                        ]
                    },
                    "prompts": _PROMPTS,
                    "samples": _POS_INT,
                    "confidence": {"enum": ["logprob", "agreement"]},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "variants": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                        # a mapping of templates, or the path of a YAML file holding one
                        "additionalProperties": {"oneOf": [VARIANT, _STR]},
                    },
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"not": {"const": CASCADE}}}},
                        "then": {"required": ["model"]},
                    },
                    {
                        "if": {"properties": {"type": {"const": FEW_SHOT}}},
                        "then": {"required": ["shots"]},
                    },
                    {
                        "if": {"properties": {"type": {"const": FINE_TUNED}}},
                        "then": {"required": ["fine_tuned_model"]},
                    },
                ],
            },
        },
        "run": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "concurrency": _POS_INT,
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_tokens": _POS_INT,
                "seed": {"type": "integer"},
                "timeout": {"type": "number", "exclusiveMinimum": 0},
                "max_attempts": _POS_INT,
                "max_wait": {"type": "number", "minimum": 0},
                "max_retry_after": {"type": "number", "minimum": 0},
                "requests_per_minute": {"type": "number", "exclusiveMinimum": 0},
                "tokens_per_minute": {"type": "number", "exclusiveMinimum": 0},
                "max_failure_rate": {"type": "number", "minimum": 0, "maximum": 1},
                "max_cost_usd": {"type": "number", "exclusiveMinimum": 0},
                "cache_ttl": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "mode": {"enum": ["online", "batch"]},
                "batch_poll_seconds": {"type": "number", "exclusiveMinimum": 0},
                # sequential evaluation: look after every round, stop once the verdict is settled
                "sequential": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "look_every": _POS_INT,
                        "min_examples": _POS_INT,
                        "max_examples": {"type": ["integer", "null"], "minimum": 1},
                        "seed": {"type": "integer"},
                    },
                },
            },
        },
        "decision": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_gain": {"type": "number", "minimum": 0},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "equivalence_margin": {"type": "number", "minimum": 0},
                "monthly_volume": {"type": ["number", "null"], "minimum": 0},
                "horizon_months": {"type": "number", "exclusiveMinimum": 0},
                "history_window": _POS_INT,
                "bootstrap": {"type": "integer", "minimum": 100},
                "min_compliance": {"type": "number", "minimum": 0, "maximum": 1},
                "metric": {"enum": ["accuracy", "field_f1"]},
                "min_schema_compliance": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                # one-off engineering cost of a fine-tune or cascade: hours x rate (USD/hour)
                "engineering_hours": {"type": ["number", "null"], "minimum": 0},
                "hourly_rate": {"type": ["number", "null"], "minimum": 0},
                # a cascade's operating point: an accuracy floor and / or a cost cap (USD per 1k)
                "cascade_min_accuracy": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "cascade_max_cost_per_1k": {"type": ["number", "null"], "minimum": 0},
            },
        },
        "finetune": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": {"type": "number", "exclusiveMinimum": 0},
                "batch_size": {"oneOf": [_POS_INT, {"const": "auto"}]},
                "learning_rate_multiplier": {"oneOf": [_NUM, {"const": "auto"}]},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                "rank": _POS_INT,
                "alpha": {"type": "number", "exclusiveMinimum": 0},
                "max_length": _POS_INT,
                "per_label": {"type": ["integer", "null"], "minimum": 1},
                "validation_fraction": {"type": "number", "minimum": 0, "maximum": 0.5},
                "suffix": _STR,
                "seed": {"type": "integer"},
                "poll_interval": {"type": "number", "exclusiveMinimum": 0},
                "max_cost_usd": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "gate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                "min_schema_compliance": {"type": "number", "minimum": 0, "maximum": 1},
                "max_drop": {"type": "number", "minimum": 0, "maximum": 1},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
        },
    },
}


def location(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def path_key(path: Any) -> tuple[tuple[int, int, str], ...]:
    """Sort key for an error location: list indexes in numeric order, keys alphabetically."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


_TYPE_NAMES = {
    "integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
    "object": "a mapping", "boolean": "true or false", "null": "null",
}


def _expected_form(error: jsonschema.ValidationError) -> list[str]:
    """What a failed `type` or `const` check asked for, in words."""
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return [_TYPE_NAMES.get(str(t), str(t)) for t in types]
    return [repr(error.validator_value)]


YAML_BOOLEANS = "yes/no/on/off/true/false"

# The original text of the value at a location of the document, when it is known.
Source = Callable[[Sequence[Any]], str | None]


def boolean_problem(found: Sequence[tuple[str, bool, str | None]]) -> str:
    """`where: got the boolean True - YAML reads unquoted yes/no/... as booleans; quote it ("yes")`
    for each (where, value, word as written in the file or None) found, in one message."""
    words = ", ".join(f'"{word or str(value).lower()}"' for _, value, word in found)
    places = "; ".join(f"{where}: got the boolean {value}" for where, value, _ in found)
    it = "it" if len(found) == 1 else "them"
    return f"{places} - YAML reads unquoted {YAML_BOOLEANS} as booleans; quote {it} ({words})"


def yaml_source(text: str) -> Source:
    """Look up the original text of the scalar at a location of the YAML document `text`
    (None when it is not a plain scalar there); the document is composed on first use."""
    root: list[Any] = []

    def lookup(path: Sequence[Any]) -> str | None:
        if not root:
            try:
                root.append(yaml.compose(text, Loader=yaml.SafeLoader))
            except yaml.YAMLError:
                root.append(None)
        node = root[0]
        for part in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value
                             if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                return None
        return str(node.value) if isinstance(node, yaml.ScalarNode) else None

    return lookup


def _boolean_for_string(error: jsonschema.ValidationError) -> bool:
    """A `type` check that asked for a string and got a boolean (an unquoted yes/no...)."""
    if error.validator != "type" or not isinstance(error.instance, bool):
        return False
    types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    return "string" in types


def _booleans(errors: Sequence[jsonschema.ValidationError], source: Source | None) -> str:
    found = {location(e.absolute_path): (e.instance, source(e.absolute_path) if source else None)
             for e in errors}
    return boolean_problem([(where, value, word) for where, (value, word) in found.items()])


def describe(error: jsonschema.ValidationError, source: Source | None = None) -> str:
    """`location: problem` for one schema error; `source` gives the original text of a value
    (to quote an unquoted yes/no back to the user)."""
    where = location(error.absolute_path)
    if _boolean_for_string(error):
        return _booleans([error], source)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}) if isinstance(error.schema, dict) else {})
        extra = [k for k in error.instance if k not in known]
        parts = []
        for key in extra:
            guess = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known keys: {', '.join(known)})"
            parts.append(f"{where}: unknown key {key!r}{hint}")
        return "; ".join(parts)
    if error.validator == "oneOf" and error.context:
        # A boolean where a branch wanted a string is an unquoted yes/no: say so first.
        booleans = [e for e in error.context if _boolean_for_string(e)]
        if booleans:
            return _booleans(booleans, source)
        # A branch whose type fits the value explains the problem best ("0 is less than the
        # minimum of 1", not "0 is not of type 'array'"); if none fits, list what would.
        relevant = [e for e in error.context if e.validator not in ("type", "const")]
        if relevant:
            return "; ".join(dict.fromkeys(describe(e, source) for e in relevant))
        forms = list(dict.fromkeys(f for e in error.context for f in _expected_form(e)))
        expected = ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]
        return f"{where}: expected {expected}, got {error.instance!r}"
    if error.validator == "enum" and isinstance(error.instance, str):
        guess = difflib.get_close_matches(error.instance, [str(v) for v in error.validator_value], n=1)
        if guess:
            return f"{where}: {error.message} (did you mean {guess[0]!r}?)"
    return f"{where}: {error.message}"
