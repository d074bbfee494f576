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


def _d(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with a `description` (an annotation: it validates exactly as `schema` does).

    Every property of the schema has one; docs/reference/config.md is generated from them
    (scripts/gen_docs.py) and tests/test_docs.py fails on a property without one."""
    return {**schema, "description": description}


def _rates(whose: str) -> dict[str, Any]:
    return {
        "input": _d(f"USD per 1M input tokens of {whose}.", {"type": "number", "minimum": 0}),
        "cached_input": _d(f"USD per 1M cached input tokens of {whose} (a prompt prefix the "
                           "provider served from its cache); default: the `input` rate.",
                           {"type": "number", "minimum": 0}),
        "output": _d(f"USD per 1M output (completion) tokens of {whose}.",
                     {"type": "number", "minimum": 0}),
    }


_PRICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_rates("the model"),
        "training": _d("USD per 1M training tokens of a fine-tuning job on this model (none: "
                       "the built-in table's, else unknown).", {"type": "number", "minimum": 0}),
        # the share of these rates a Batch API request costs (OpenAI: half)
        "batch": _d("The share of these rates a Batch API request costs (`run.mode: batch`); "
                    "default 0.5 (OpenAI: half).", {"type": "number", "minimum": 0, "maximum": 1}),
        # a fixed monthly cost of serving the model (a self-hosted machine), USD
        "hosting_per_month": _d("A fixed monthly cost of serving the model (a self-hosted "
                                "machine), USD; added to the cost by monthly volume.",
                                {"type": "number", "minimum": 0}),
        # inference on the model's fine-tuned ids (ft:..., local-ft:...)
        "fine_tuned": _d("The rates of inference on this model's fine-tuned ids (`ft:...`, "
                         "`local-ft:...`), never the base model's; without it the built-in "
                         "fine-tuned rate of the base, else the cost is unknown.",
                         {"type": "object", "additionalProperties": False,
                          "properties": _rates("the fine-tuned ids")}),
    },
}


def _prompts(where: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "system": _d(f"The system prompt template{where}; placeholders `{{instructions}}`, "
                         "`{labels}` and `{output_format}`. Default: the built-in template.", _STR),
            "user": _d(f"The user turn template{where}; `{{input}}` is the example's input. "
                       "Default: `{input}`.", _STR),
            "fine_tuned_system": _d(f"The short system prompt{where} that a fine-tuned model "
                                    "is trained and evaluated with (no label list). Default: "
                                    "the built-in template.", _STR),
        },
    }


VARIANT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "system": _d("The variant's system prompt template, over the strategy's.", _STR),
        "user": _d("The variant's user turn template, over the strategy's.", _STR),
        "reasoning": _d("Ask for a `reasoning` string before the answer's fields (zero-shot "
                        "only); only the answer is scored, and the extra tokens are counted.",
                        {"type": "boolean"}),
    },
}

_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_STRUCTURED = {"enum": ["json_schema", "json_object", "none"]}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "task", "dataset", "models", "strategies"],
    "properties": {
        "name": _d("The eval's name: it names the run folder (`reports/NAME-TIMESTAMP`), the "
                   "history entries and the fine-tunes' registry names.",
                   {"type": "string", "pattern": _NAME_PATTERN}),
        "task": _d("What the model is asked to do, and how answers are scored.", {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "instructions"],
            "properties": {
                "type": _d("`classification` (one label per example) or `extraction` (a JSON "
                           "object described by `task.output_schema`).", {"enum": list(TASK_KINDS)}),
                "instructions": _d("The task in words, filled into the system prompt "
                                   "(`{instructions}`); changing it makes a new prompt version.",
                                   _STR),
                "labels": _d("Classification: the labels, inline (at least two, each once) or "
                             "the path of a file (a .json or .yaml list, or one label a line), "
                             "relative to the config. Not for extraction.", {
                                 "oneOf": [
                                     {"type": "array", "items": _STR, "minItems": 2,
                                      "uniqueItems": True},
                                     _STR,
                                     {"type": "null"},
                                 ]
                             }),
                "output_schema": _d("The JSON Schema of the answer, inline or a file path "
                                    "relative to the config (default for classification: "
                                    "`{\"label\": <one of the labels>}`); extraction: an object "
                                    "schema whose properties are the fields.",
                                    {"type": ["object", "string"]}),
                "prompts": _d("Prompt template overrides for every strategy (a strategy's own "
                              "`prompts` go over these).", _prompts("")),
                # keys: default, a field or a leaf path (address.city): tasks.task_problems
                "match": _d("Extraction: how each field's value is compared with the gold "
                            "one, keyed by `default`, a field or a leaf path (`address.city`).", {
                                "type": "object",
                                "additionalProperties": _d(
                                    "`exact` (JSON values), `normalized` (text after NFKC, case "
                                    "folding, collapsed whitespace, stripped punctuation; the "
                                    "default), `number` (numerically) or `set` (arrays as sets, "
                                    "with partial credit).",
                                    {"enum": ["exact", "normalized", "number", "set"]}),
                            }),
            },
        }),
        "dataset": _d("The labeled eval set and the training pool; paths are relative to the "
                      "config file's folder.", {
            "type": "object",
            "additionalProperties": False,
            "required": ["eval", "input"],
            "properties": {
                "eval": _d("The eval set: a CSV or JSONL file.", _STR),
                "train": _d("The training pool (CSV or JSONL) for few-shot examples and "
                            "fine-tuning data; an eval input found in it is removed from the "
                            "pool as leakage. Needed by `few_shot` strategies.", _NULLABLE_STR),
                "input": _d("The field holding the model input, or a template of fields "
                            "(`\"Asked: {requested}\\nCustomer: {text}\"`).", _STR),
                "target": _d("The field holding the expected output (a label; for extraction "
                             "a JSON object, or a JSON string in a CSV). Give it or "
                             "`target_fields`.", _STR),
                "id": _d("The field holding each example's id (default: the row number from 0).",
                         _NULLABLE_STR),
                "cluster": _d("The field naming each example's group of related examples (a "
                              "conversation, a customer): intervals and paired tests then "
                              "account for the clusters. Null: the examples are independent.",
                              _NULLABLE_STR),
                "limit": _d("Evaluate a seeded, stratified sample of this many eval examples "
                            "(null: all of them; `--limit` overrides).",
                            {"type": ["integer", "null"], "minimum": 1}),
                "seed": _d("The seed of the `limit` sample and of the few-shot draws "
                           "(default 0).", {"type": "integer"}),
                "target_fields": _d("Extraction: build the expected object from CSV columns, "
                                    "answer field -> column (instead of `target`).", {
                                        "type": "object", "minProperties": 1,
                                        "additionalProperties": _d(
                                            "The column holding this answer field (an empty "
                                            "cell is null).", _STR)}),
            },
        }),
        "models": _d("The models the strategies use, by a name of your choosing.", {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
            "additionalProperties": _d("One model: the embedded one (`provider: local`) or any "
                                       "OpenAI-compatible endpoint (`provider: openai`).", {
                "type": "object",
                "additionalProperties": False,
                "required": ["provider"],
                "properties": {
                    "provider": _d("`local`: the embedded SmolLM2-135M-Instruct on llama.cpp; "
                                   "`openai`: any OpenAI-compatible `/v1/chat/completions` "
                                   "endpoint (OpenAI, vLLM, Ollama, LM Studio).",
                                   {"enum": ["local", "openai"]}),
                    "model": _d("The model id sent to the endpoint (required for provider "
                                "openai; local: `smollm2-135m-instruct`).", _STR),
                    "base_url": _d("The endpoint's URL (`http://localhost:8000/v1`), or a list: "
                                   "the replicas of one model, each request to the one with the "
                                   "fewest in flight. Null: OpenAI's own.",
                                   {"oneOf": [_NULLABLE_STR, {"type": "array", "minItems": 1,
                                                              "uniqueItems": True, "items": _STR}]}),
                    "servers": _d("Provider local: the llama.cpp server processes started, "
                                  "sharing the CPU cores (default: one per core, at most 4).",
                                  {"type": "integer", "minimum": 1, "maximum": 64}),
                    "mode": _d("`batch`: this model's requests go through the OpenAI Batch API "
                               "(provider openai only); default: `run.mode`.",
                               {"enum": ["online", "batch"]}),
                    "api_key_env": _d("The NAME of the environment variable holding the API key, "
                                      "never the key (default `OPENAI_API_KEY` for provider "
                                      "openai; null: no key).", _NULLABLE_STR),
                    "token_param": _d("How the completion cap is sent: `max_tokens` (default) or "
                                      "`max_completion_tokens` (OpenAI reasoning models).",
                                      {"enum": ["max_tokens", "max_completion_tokens"]}),
                    "structured_output": _d("How the answer's schema is enforced: "
                                            "`json_schema` (OpenAI, the default for provider "
                                            "openai), `json_object` with the schema (llama.cpp's "
                                            "grammar, the default for local) or `none`.",
                                            _STRUCTURED),
                    "timeout": _d("Seconds one request may take (default: `run.timeout`).",
                                  {"type": "number", "exclusiveMinimum": 0}),
                    "n_ctx": _d("Provider local: the context size in tokens (default 4096).",
                                {"type": "integer", "minimum": 256}),
                    "price": _d("USD per 1M tokens, overriding the built-in price table (local "
                                "models cost 0 unless given).", _PRICE),
                },
            }),
        }),
        "strategies": _d("The arms to compare: zero-shot, few-shot sweeps, fine-tuned models "
                         "and cascades between them.", {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "type"],
                "properties": {
                    "name": _d("The strategy's name, unique in the config: its arms are named "
                               "after it (`few-shot@k=4`, `few-shot:persona`).",
                               {"type": "string", "pattern": _NAME_PATTERN}),
                    "type": _d("`zero_shot`, `few_shot` (a sweep over `shots`), `fine_tuned` "
                               "(a fine-tuned model) or `cascade` (routes between two other "
                               "arms by confidence; sends no request).",
                               {"enum": list(STRATEGY_KINDS)}),
                    "model": _d("The name of a model under `models` (required except for "
                                "type cascade).", _STR),
                    # type cascade (config/cascade.py): no model, no request
                    "primary": _d("Type cascade: the arm that answers first (a strategy name, "
                                  "or one arm of a sweep: `few-shot@k=4`).", _STR),
                    "fallback": _d("Type cascade: the arm that answers instead when the "
                                   "primary's confidence is below the threshold.", _STR),
                    "thresholds": _d("Type cascade: the confidence thresholds tried; `auto` "
                                     "(default): 0, the primary's confidence deciles and 1.",
                                     {"oneOf": [
                                         {"const": "auto"},
                                         {"type": "array", "minItems": 1,
                                          "items": {"type": "number", "minimum": 0, "maximum": 1}}]}),
                    "shots": _d("Type few_shot (required): the number of examples k, or a list "
                                "of them (a sweep, normally doubling).", {
                                    "oneOf": [
                                        _POS_INT,
                                        {"type": "array", "items": _POS_INT, "minItems": 1,
                                         "uniqueItems": True},
                                    ]
                                }),
                    "selection": _d("Type few_shot: how the k examples are picked from "
                                    "`dataset.train`: `stratified` spreads them over the labels, "
                                    "`random` draws uniformly, `similar` picks the k most similar "
                                    "to each input.", {"enum": list(SELECTIONS)}),
                    "similarity": _d("Selection similar: `tfidf` (word unigrams and bigrams, "
                                     "cosine) or `embedding` (all-MiniLM-L6-v2, offline; the "
                                     "`embedding` extra).", {"enum": ["tfidf", "embedding"]}),
                    "draws": _d("Type few_shot: independent seeded draws of the examples per k.",
                                _POS_INT),
                    "structured_output": _d("Overrides the model's `structured_output` for "
                                            "this strategy's requests.", _STRUCTURED),
                    "fine_tuned_model": _d("Type fine_tuned (required): the registry name of the "
                                           "fine-tuned model (`local-ft:NAME`), a raw provider id "
                                           "(`ft:...`, sent unchanged, never trained), or a "
                                           "mapping with `name`.", {
                        "oneOf": [
                            _STR,
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": _d("The registry name of the fine-tuned model.", _STR),
                                    "train_if_missing": _d("Train the model before `harness run` "
                                                           "when the registry does not have it "
                                                           "(the consent to the job; the estimate "
                                                           "is logged).", {"type": "boolean"}),
                                    "training_cost_usd": _d("What training cost, USD (0: already "
                                                            "paid), for the break-even; unset: the "
                                                            "registry's, else estimated.",
                                                            {"type": "number", "minimum": 0}),
                                },
                            },
                        ]
                    }),
                    "prompts": _d("Prompt template overrides for this strategy, over the task's.",
                                  _prompts(" of this strategy")),
                    "samples": _d("Self-consistency (zero_shot, few_shot): ask N times per "
                                  "example and take the majority; needs a temperature above 0.",
                                  _POS_INT),
                    "confidence": _d("Record each answer's confidence: `logprob` (the answer's "
                                     "token probability; one sample) or `agreement` (the vote "
                                     "share; needs `samples`).", {"enum": ["logprob", "agreement"]}),
                    "temperature": _d("The sampling temperature of this strategy's requests "
                                      "(default: `run.temperature`).",
                                      {"type": "number", "minimum": 0, "maximum": 2}),
                    "variants": _d("Prompt variants (zero_shot, few_shot): one arm each, named "
                                   "`STRATEGY:NAME`, with its templates over the strategy's "
                                   "(`{}`: the strategy's own prompt).", {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {"pattern": _NAME_PATTERN},
                        # a mapping of templates, or the path of a YAML file holding one
                        "additionalProperties": _d("One variant: a mapping of templates, or "
                                                   "the path of a YAML file holding one.",
                                                   {"oneOf": [VARIANT, _STR]}),
                    }),
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
        }),
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
