"""The JSON Schema of config files (its first sections, what is evaluated, in
schema_sections.py), and error messages a person can act on.

Each message names its location (`strategies[1].shots: ...`); unknown keys and misspelt values get a
did-you-mean.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema
import yaml

from harness.config.schema_sections import (
    _NAME_PATTERN,
    _NUM,
    _POS_INT,
    _STR,
    SECTIONS,
    _d,
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "task", "dataset", "models", "strategies"],
    "properties": {
        "name": _d("The eval's name: it names the run folder (`reports/NAME-TIMESTAMP`), the "
                   "history entries and the fine-tunes' registry names.",
                   {"type": "string", "pattern": _NAME_PATTERN}),
        **SECTIONS,
        "run": _d("How requests are made: concurrency, sampling, retries, rate limits, spend.", {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "concurrency": _d("Requests in flight at once (`--concurrency` overrides).",
                                  _POS_INT),
                "temperature": _d("The sampling temperature of every request (a strategy's "
                                  "`temperature` overrides).",
                                  {"type": "number", "minimum": 0, "maximum": 2}),
                "max_tokens": _d("The completion token cap of every request.", _POS_INT),
                "seed": _d("The sampling seed sent with every request (sent only when set).",
                           {"type": "integer"}),
                "timeout": _d("Seconds one request may take before it is retried.",
                              {"type": "number", "exclusiveMinimum": 0}),
                "max_attempts": _d("Attempts per request, the first included (retries of "
                                   "408/409/429, 5xx, connection errors, timeouts).", _POS_INT),
                "max_wait": _d("Total seconds of retry waiting per example.",
                               {"type": "number", "minimum": 0}),
                "max_retry_after": _d("The longest `Retry-After` a server may ask for, in "
                                      "seconds; a longer one stops the request.",
                                      {"type": "number", "minimum": 0}),
                "requests_per_minute": _d("A client-side request rate limit (every attempt "
                                          "counts); unset: none.",
                                          {"type": "number", "exclusiveMinimum": 0}),
                "tokens_per_minute": _d("A client-side token rate limit; unset: none.",
                                        {"type": "number", "exclusiveMinimum": 0}),
                "max_failure_rate": _d("Endpoint failures above this share make the run "
                                       "incomplete (no verdict).",
                                       {"type": "number", "minimum": 0, "maximum": 1}),
                "max_cost_usd": _d("A hard spend cap (USD) for one invocation: the run stops "
                                   "before a request that could pass it (`--max-cost` "
                                   "overrides).", {"type": "number", "exclusiveMinimum": 0}),
                "cache_ttl": _d("Seconds a cached answer is served; null: no expiry.",
                                {"type": ["number", "null"], "exclusiveMinimum": 0}),
                "mode": _d("`online`, or `batch`: the OpenAI Batch API at its batch price "
                           "(`models.NAME.mode` overrides).", {"enum": ["online", "batch"]}),
                "batch_poll_seconds": _d("Batch mode: seconds between status polls.",
                                         {"type": "number", "exclusiveMinimum": 0}),
                # sequential evaluation: look after every round, stop once the verdict is settled
                "sequential": _d("Sequential evaluation: request the examples in a seeded random "
                                 "order, in rounds, and stop an arm (or the run) once its part in "
                                 "the decision is settled.", {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": _d("Turn sequential evaluation on.", {"type": "boolean"}),
                        "look_every": _d("Examples per arm in each round; the evidence is "
                                         "looked at after every round.", _POS_INT),
                        "min_examples": _d("Examples per arm before the first look that may "
                                           "stop.", _POS_INT),
                        "max_examples": _d("A cap on the examples per arm (null: the whole "
                                           "eval).", {"type": ["integer", "null"], "minimum": 1}),
                        "seed": _d("The seed of the order the examples are requested in.",
                                   {"type": "integer"}),
                    },
                }),
            },
        }),
        "decision": _d("The rules of the verdict: the plateau, significance, equivalence, "
                       "cost and floors.", {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_gain": _d("The smallest gain of a few-shot step that counts as real (a "
                               "fraction: 0.02 = 2 points); smaller steps are flat.",
                               {"type": "number", "minimum": 0}),
                "alpha": _d("The significance level of the paired comparisons, Holm-adjusted "
                            "over the run's comparisons.",
                            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
                "equivalence_margin": _d("A fine-tuned arm whose paired interval against the "
                                         "best prompt lies above minus this margin counts as "
                                         "being as good as it.", {"type": "number", "minimum": 0}),
                "monthly_volume": _d("Queries a month: the verdict checks the fine-tune's "
                                     "payback at this volume; null: unknown.",
                                     {"type": ["number", "null"], "minimum": 0}),
                "horizon_months": _d("The months within which a fine-tune must pay back its "
                                     "cost.", {"type": "number", "exclusiveMinimum": 0}),
                "history_window": _d("How many of an arm's latest prompt versions `harness "
                                     "history` needs, all inside the best one's 95% interval, "
                                     "to flag a plateau (`--window` overrides).", _POS_INT),
                "bootstrap": _d("Seeded resamples behind the run's bootstrap intervals.",
                                {"type": "integer", "minimum": 100}),
                "min_compliance": _d("A decisive arm below this schema compliance: no verdict.",
                                     {"type": "number", "minimum": 0, "maximum": 1}),
                "metric": _d("What the plateau, the comparisons and the verdict use: "
                             "`accuracy` (exact match, McNemar) or `field_f1` (extraction "
                             "only: micro F1 over non-null fields, paired bootstrap).",
                             {"enum": ["accuracy", "field_f1"]}),
                "min_schema_compliance": _d("A floor: an arm below this schema compliance is "
                                            "never recommended (null: none).",
                                            {"type": ["number", "null"], "minimum": 0,
                                             "maximum": 1}),
                # one-off engineering cost of a fine-tune or cascade: hours x rate (USD/hour)
                "engineering_hours": _d("One-off engineering hours of what is more than a "
                                        "prompt (a fine-tune, a cascade), costed at "
                                        "`hourly_rate` and added to the training cost.",
                                        {"type": ["number", "null"], "minimum": 0}),
                "hourly_rate": _d("USD per engineering hour.",
                                  {"type": ["number", "null"], "minimum": 0}),
                # a cascade's operating point: an accuracy floor and / or a cost cap (USD per 1k)
                "cascade_min_accuracy": _d("A cascade's operating point: the cheapest threshold "
                                           "at or above this accuracy (null: the default rule).",
                                           {"type": ["number", "null"], "minimum": 0,
                                            "maximum": 1}),
                "cascade_max_cost_per_1k": _d("A cascade's operating point: the most accurate "
                                              "threshold within this cost per 1,000 queries, USD "
                                              "(priced arms only; null: none).",
                                              {"type": ["number", "null"], "minimum": 0}),
            },
        }),
        "finetune": _d("How `harness finetune` (and `train_if_missing`) trains: an OpenAI job "
                       "or a local LoRA.", {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": _d("Passes over the training data (may be fractional locally).",
                             {"type": "number", "exclusiveMinimum": 0}),
                "batch_size": _d("Examples per optimiser step (`auto`: the provider's choice; "
                                 "8 locally).", {"oneOf": [_POS_INT, {"const": "auto"}]}),
                "learning_rate_multiplier": _d("OpenAI jobs: the learning rate multiplier "
                                               "(`auto`: the provider's choice).",
                                               {"oneOf": [_NUM, {"const": "auto"}]}),
                "learning_rate": _d("Local LoRA: the learning rate.",
                                    {"type": "number", "exclusiveMinimum": 0}),
                "rank": _d("Local LoRA: the adapter's rank.", _POS_INT),
                "alpha": _d("Local LoRA: the adapter's alpha (scaling).",
                            {"type": "number", "exclusiveMinimum": 0}),
                "max_length": _d("Local LoRA: the tokens of one training conversation, at most.",
                                 _POS_INT),
                "per_label": _d("Train on a stratified subset of this many examples per label "
                                "(null: the whole pool).", {"type": ["integer", "null"], "minimum": 1}),
                "validation_fraction": _d("The share of the training pool held out, stratified "
                                          "by label, as the validation file (0: none; a pool "
                                          "under 20 examples is not split).",
                                          {"type": "number", "minimum": 0, "maximum": 0.5}),
                "suffix": _d("OpenAI jobs: the suffix of the fine-tuned model's id (changes no "
                             "weight).", _STR),
                "seed": _d("The training seed.", {"type": "integer"}),
                "poll_interval": _d("OpenAI jobs: the first wait between status checks, in "
                                    "seconds (it grows by half each time, up to 60).",
                                    {"type": "number", "exclusiveMinimum": 0}),
                "max_cost_usd": _d("A fine-tuning estimate above this (USD) is refused.",
                                   {"type": "number", "exclusiveMinimum": 0}),
            },
        }),
        "gate": _d("The defaults of `harness gate` and `assert_gate`: what a run may lose "
                   "against its baseline, and absolute floors.", {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_accuracy": _d("An absolute floor every arm's accuracy must reach (a point "
                                   "estimate); unset: none.",
                                   {"type": "number", "minimum": 0, "maximum": 1}),
                "min_schema_compliance": _d("An absolute floor every arm's schema compliance "
                                            "must reach; unset: none.",
                                            {"type": "number", "minimum": 0, "maximum": 1}),
                "max_drop": _d("The largest fall of an arm's accuracy or schema compliance "
                               "against the baseline that passes (a fraction; a larger fall "
                               "fails only when it is also significant). Unset: 0.02; "
                               "`--max-drop` overrides.", {"type": "number", "minimum": 0, "maximum": 1}),
                "alpha": _d("The gate's significance level, Holm-adjusted over its tests. "
                            "Unset: 0.05; `--alpha` overrides.",
                            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
            },
        }),
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
