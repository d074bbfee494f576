"""The kinds of things the harness knows by name, each defined once: task kinds, strategy kinds,
few-shot selections and verdicts.

Each is an ordered, read-only mapping of value -> what it means (one line), with a constant per
value so code never types the literal. The config's JSON Schema enums and the registries
(`harness.tasks.TASKS`, `harness.strategies.STRATEGIES`, `harness.strategies.SELECTORS`) are
built from, or checked against, these mappings (tests/test_kinds.py).

The bottom layer: this module imports nothing from harness, so every package may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# --------------------------------------------------------------------------- task kinds
# (config `task.type`)

CLASSIFICATION = "classification"
EXTRACTION = "extraction"

TASK_KINDS: Mapping[str, str] = MappingProxyType({
    CLASSIFICATION: "the answer is one label of a fixed set (task.labels)",
    EXTRACTION: "the answer is an object of fields (task.output_schema), compared field by field",
})

# --------------------------------------------------------------------------- strategy kinds
# (config `strategies[i].type`)

ZERO_SHOT = "zero_shot"
FEW_SHOT = "few_shot"
FINE_TUNED = "fine_tuned"
CASCADE = "cascade"

STRATEGY_KINDS: Mapping[str, str] = MappingProxyType({
    ZERO_SHOT: "the instructions and the input, no examples",
    FEW_SHOT: "k training examples before the input, one arm per k (the learning curve)",
    FINE_TUNED: "a fine-tuned model answers the bare input (trained if missing, when allowed)",
    CASCADE: "a primary arm answers, a fallback arm below a confidence threshold (no requests: "
             "computed from the two arms' records)",
})

# --------------------------------------------------------------------------- selections
# (config `strategies[i].selection`: how a few-shot arm's examples are chosen)

RANDOM = "random"
STRATIFIED = "stratified"
SIMILAR = "similar"

SELECTIONS: Mapping[str, str] = MappingProxyType({
    RANDOM: "k pool examples drawn uniformly without replacement (seeded)",
    STRATIFIED: "k pool examples spread over as many targets as possible (seeded; the default)",
    SIMILAR: "per input, the k pool examples most similar to it (similarity: tfidf | embedding)",
})

# --------------------------------------------------------------------------- verdicts
# (summary.json `recommendation.verdict`)

KEEP_PROMPTING = "keep_prompting"
PROMPTING_SUFFICIENT = "prompting_sufficient"
FINE_TUNE = "fine_tune"
HYBRID = "hybrid"
WITHHELD = "withheld"

VERDICTS: Mapping[str, str] = MappingProxyType({
    KEEP_PROMPTING: "keep prompting: the curve is still rising, or too few shot counts to tell",
    PROMPTING_SUFFICIENT: "prompting has plateaued and fine-tuning does not win",
    FINE_TUNE: "the fine-tuned arm wins on the metric or the format, or pays back its cost",
    HYBRID: "a cascade (a small model with a large fallback) beats both of its arms on cost at no "
            "significant accuracy loss",
    WITHHELD: "no verdict may be given: an incomplete run, failures, too little compliance, ...",
})

__all__ = [
    "CASCADE", "CLASSIFICATION", "EXTRACTION", "FEW_SHOT", "FINE_TUNE", "FINE_TUNED", "HYBRID",
    "KEEP_PROMPTING", "PROMPTING_SUFFICIENT", "RANDOM", "SELECTIONS", "SIMILAR", "STRATEGY_KINDS",
    "STRATIFIED", "TASK_KINDS", "VERDICTS", "WITHHELD", "ZERO_SHOT",
]
