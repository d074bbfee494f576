"""Token prices (USD per 1M tokens) and per-query / training cost arithmetic.

The defaults are OpenAI's standard-tier list prices as published on its pricing page around
PRICES_AS_OF. They change; pass ``overrides`` to price_for for current or negotiated prices.
A fine-tuned id is never priced at its base model's rate (fine-tuned inference costs more).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from harness.config import ModelConfig, Price, RunConfig, batch_mode
from harness.model.registry import LOCAL_PREFIX

PRICES_AS_OF = "2025-07-01"

_PER_TOKEN = 1e-6  # prices are quoted per 1M tokens


# Base-model inference (standard tier), keyed by alias; a dated snapshot resolves to its alias
# unless listed itself. gpt-3.5-turbo and the first gpt-4o snapshot have no cached discount.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 1.25, 10.00, 25.00),
    "gpt-4o-2024-05-13": Price(5.00, 5.00, 15.00, None),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60, 3.00),
    "gpt-4.1": Price(2.00, 0.50, 8.00, 25.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60, 5.00),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40, 1.50),
    "gpt-3.5-turbo": Price(0.50, 0.50, 1.50, 8.00),
}

# Inference on a fine-tuned model ("ft:BASE:..."), keyed by base model. OpenAI charges more
# than for the base model (1.5x for gpt-4o and gpt-4.1, 2x for the minis, 6x/4x for 3.5).
FINE_TUNED_INFERENCE: dict[str, Price] = {
    "gpt-4o": Price(3.75, 1.875, 15.00, 25.00),
    "gpt-4o-mini": Price(0.30, 0.15, 1.20, 3.00),
    "gpt-4.1": Price(3.00, 0.75, 12.00, 25.00),
    "gpt-4.1-mini": Price(0.80, 0.20, 3.20, 5.00),
    "gpt-4.1-nano": Price(0.20, 0.05, 0.80, 1.50),
    "gpt-3.5-turbo": Price(3.00, 3.00, 6.00, 8.00),
}

LOCAL_PRICE = Price(0.0, 0.0, 0.0, 0.0)

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")  # gpt-4o-2024-08-06, gpt-3.5-turbo-0125


def _base_name(model: str) -> str:
    """Drop a dated snapshot suffix: 'gpt-4o-mini-2024-07-18' -> 'gpt-4o-mini'."""
    return _SNAPSHOT.sub("", model)


def _lookup(name: str, table: Mapping[str, Price]) -> Price | None:
    if name in table:
        return table[name]
    return table.get(_base_name(name))


def price_for(
    model: str, overrides: Mapping[str, Price] | None = None, *, local: bool = False
) -> Price | None:
    """Price of ``model``, or None when unknown.

    Resolution order: ``overrides[model]``; a local model (``local=True``) costs nothing;
    the exact or snapshot-stripped name in DEFAULT_PRICES; for a fine-tuned id
    ``ft:BASE:org:suffix:id`` the override ``overrides["ft:" + BASE]``, then
    FINE_TUNED_INFERENCE[BASE], else unknown (never BASE's own price). BASE may carry a
    snapshot date ("gpt-4o-mini-2024-07-18").
    """
    table: Mapping[str, Price] = overrides or {}
    if model in table:
        return table[model]
    if local:
        return LOCAL_PRICE
    if model.startswith("ft:"):
        parts = model.split(":")
        if len(parts) < 2 or not parts[1]:
            return None
        base = parts[1]
        return _lookup("ft:" + base, table) or _lookup(base, FINE_TUNED_INFERENCE)
    return _lookup(model, table) or _lookup(model, DEFAULT_PRICES)


def is_fine_tuned_id(model_id: str) -> bool:
    """A fine-tuned model's id: OpenAI's ``ft:BASE:...`` or a local adapter's ``local-ft:NAME``."""
    return model_id.startswith(("ft:", LOCAL_PREFIX))


def query_cost(
    price: Price, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0.0
) -> float:
    """USD for one query (or an average one: token counts may be fractional).

    ``cached_tokens`` is the part of ``prompt_tokens`` served from the prompt cache (as in
    OpenAI's usage.prompt_tokens_details.cached_tokens) and is billed at the cached rate.
    """
    if min(prompt_tokens, completion_tokens, cached_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_tokens > prompt_tokens:
        raise ValueError(f"cached_tokens {cached_tokens} exceed prompt_tokens {prompt_tokens}")
    return _PER_TOKEN * (
        (prompt_tokens - cached_tokens) * price.input_per_m
        + cached_tokens * price.cached_input_per_m
        + completion_tokens * price.output_per_m
    )


def batch_price(price: Price) -> Price:
    """The rates of a Batch API request: `price.batch_share` of each inference rate (OpenAI
    bills batch requests at half its standard rates)."""
    share = price.batch_share
    return replace(price, input_per_m=price.input_per_m * share,
                   cached_input_per_m=price.cached_input_per_m * share,
                   output_per_m=price.output_per_m * share)


def training_cost(price: Price, trained_tokens: int) -> float | None:
    """USD to fine-tune on ``trained_tokens`` (tokens in the file x epochs, as OpenAI bills).

    None when the model has no training price.
    """
    if trained_tokens < 0:
        raise ValueError("trained_tokens must be >= 0")
    if price.training_per_m is None:
        return None
    return _PER_TOKEN * trained_tokens * price.training_per_m


def price_of(model: ModelConfig, model_id: str) -> Price | None:
    """The price that applies to `model_id` on `model`: the configured `price:` block first,
    then a local model's zero, then the built-in table. Every cost figure goes through here.

    A fine-tuned id (is_fine_tuned_id) gets the configured `price.fine_tuned` rates
    (model.fine_tuned_price); on a model with a `price:` block but no such rates, the built-in
    fine-tuned rate of its base (FINE_TUNED_INFERENCE, trained at the block's `training` rate
    when given), else None (unknown) -- never the block's base rates.
    """
    configured = model.price
    if model.fine_tuned_price is not None and is_fine_tuned_id(model_id):
        return model.fine_tuned_price
    if configured is None:
        return price_for(model_id, local=model.provider == "local")
    if not is_fine_tuned_id(model_id):
        return configured
    table = price_for(model_id) if model_id.startswith("ft:") else None
    if table is None or configured.training_per_m is None:
        return table
    return replace(table, training_per_m=configured.training_per_m)


def billed_price(model: ModelConfig, model_id: str, run: RunConfig) -> Price | None:
    """The rates a request to `model_id` is billed at: price_of, at batch rates when the model
    goes through the Batch API (batch_mode)."""
    price = price_of(model, model_id)
    return batch_price(price) if price is not None and batch_mode(model, run) else price
