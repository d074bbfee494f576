"""The config schema's parts: the property schemas shared by several keys (prices, prompt
templates, prompt variants), and the sections that say what is evaluated (`task`, `dataset`,
`models`, `strategies`); harness/config/schema.py assembles them with the run's settings into
the one JSON Schema of config files. Every property carries a `description`: the config
reference (docs/reference/config.md) is generated from them.
"""

from __future__ import annotations

from typing import Any

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


# task, dataset, models, strategies: what is evaluated (schema.SCHEMA's first sections)
SECTIONS: dict[str, Any] = {
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
}
