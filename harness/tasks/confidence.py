"""The confidence of an answer from its tokens' log-probabilities (`confidence: logprob`).

The answer is a JSON object; its *answer fields* are the output schema's properties (the
classification's `label`, the extraction's fields; never ReasoningFirst's `reasoning`). For
each answer field with a non-null value in the output, the value's probability is exp(sum of
the log-probabilities of the tokens that overlap the value's text; a string's quotes left out).
The answer's confidence is the mean over those fields: for classification, the probability of
the label's tokens. None when there is nothing to measure: no log-probabilities, tokens that do
not spell the output, or no answer field found.

llama.cpp's server reports the log-probabilities of the model's distribution before its grammar
(constrained decoding) is applied, so a constrained answer's confidence still reflects how
likely the model itself found it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.tasks.reasoning import FIELD as REASONING_FIELD

_DECODER = json.JSONDecoder()


def answer_fields(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The answer fields of an output schema: its properties, less a reasoning string."""
    props = schema.get("properties")
    return tuple(p for p in (props if isinstance(props, Mapping) else {}) if p != REASONING_FIELD)


def _value_span(text: str, field: str) -> tuple[int, int] | None:
    """[start, end) of the field's value in the JSON text (a string without its quotes);
    None when the field is absent or null."""
    m = re.search(re.escape(json.dumps(field)) + r"\s*:\s*", text)
    if m is None:
        return None
    try:
        value, end = _DECODER.raw_decode(text, m.end())
    except json.JSONDecodeError:
        return None
    if value is None:
        return None
    start = m.end()
    if isinstance(value, str):
        return start + 1, end - 1
    return start, end


def answer_confidence(output: str, logprobs: Sequence[Sequence[Any]] | None,
                      fields: Sequence[str]) -> float | None:
    """The mean over the answer's fields of exp(sum of log-probabilities of the value's
    tokens) (see the module); None when it cannot be measured."""
    if not logprobs:
        return None
    tokens = [str(t[0]) for t in logprobs]
    spelled = "".join(tokens)
    offset = spelled.find(output) if output and spelled != output else 0
    if not output or offset < 0:
        return None
    starts, at = [], -offset
    for t in tokens:
        starts.append(at)
        at += len(t)
    probs = []
    for field in fields:
        span = _value_span(output, field)
        if span is None:
            continue
        lo, hi = span
        total = sum(float(lp) for (tok, lp), s in zip(logprobs, starts, strict=True)
                    if s < max(hi, lo + 1) and s + len(str(tok)) > lo)
        probs.append(math.exp(total))
    return sum(probs) / len(probs) if probs else None


__all__ = ["answer_confidence", "answer_fields"]
