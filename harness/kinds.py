"""The kinds of things the harness knows by name, each defined once: task kinds, strategy kinds,
few-shot selections and verdicts.

Each is an ordered, read-only mapping of value -> what it means (one line), with a constant per
value so code never types the literal. The config's JSON Schema enums and the registries
(`harness.tasks.TASKS`, `harness.strategies.STRATEGIES`, `harness.strategies.SELECTORS`) are
built from, or checked against, these mappings (tests/test_kinds.py).

The bottom layer: this module imports nothing from harness, so every package may import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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

# --------------------------------------------------------------------------- arm names
# (summary.csv `strategy` with @k=, comparisons, figures, cascades' primary and fallback)

_ARM = re.compile(r"^(?P<strategy>[A-Za-z0-9][A-Za-z0-9_.-]*)(?::(?P<variant>[A-Za-z0-9_.-]+))?"
                  r"(?:@k=(?P<k>\d+)|@t=(?P<t>[0-9.eE+-]+))?$")


@dataclass(frozen=True)
class ArmId:
    """One arm's identity and the one place its name is written and read: a strategy, its
    prompt variant (`s:v`), its shot count when swept (`s@k=4`), or a cascade's operating
    threshold (`c@t=0.5`). `str(ArmId.parse(name)) == name` for every name it writes."""

    strategy: str
    variant: str | None = None
    k: int | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.k is not None and self.threshold is not None:
            raise ValueError("an arm has a shot count or a threshold, not both")

    @property
    def base(self) -> str:
        """The strategy with its variant (`s` or `s:v`): the `strategy` column of records."""
        return self.strategy if self.variant is None else f"{self.strategy}:{self.variant}"

    def __str__(self) -> str:
        if self.k is not None:
            return f"{self.base}@k={self.k}"
        if self.threshold is not None:
            return f"{self.base}@t={self.threshold:g}"
        return self.base

    @classmethod
    def parse(cls, name: str) -> ArmId:
        """The identity an arm's name says (ValueError: not an arm name)."""
        m = _ARM.match(name)
        if m is None:
            raise ValueError(f"not an arm name: {name!r} (NAME, NAME:VARIANT, NAME@k=K or "
                             "NAME@t=THRESHOLD)")
        t = m.group("t")
        return cls(m.group("strategy"), m.group("variant"),
                   None if m.group("k") is None else int(m.group("k")),
                   None if t is None else float(t))

    @classmethod
    def of(cls, strategy: str, k: int | None = None) -> ArmId:
        """The arm of a summary's `strategy` column (`s`, `s:v`, or a cascade's `c@t=0.5`) at
        shot count k (None: not swept)."""
        arm = cls.parse(strategy)
        return arm if k is None else cls(arm.strategy, arm.variant, k)


__all__ = [
    "CASCADE",
    "CLASSIFICATION",
    "EXTRACTION",
    "FEW_SHOT",
    "FINE_TUNE",
    "FINE_TUNED",
    "HYBRID",
    "KEEP_PROMPTING",
    "PROMPTING_SUFFICIENT",
    "RANDOM",
    "SELECTIONS",
    "SIMILAR",
    "STRATEGY_KINDS",
    "STRATIFIED",
    "TASK_KINDS",
    "VERDICTS",
    "WITHHELD",
    "ZERO_SHOT",
    "ArmId",
]
