"""Tests for harness.pricing: lookup rules and cost arithmetic checked by hand."""

from __future__ import annotations

import datetime

import pytest

from harness.config import ModelConfig
from harness.model.pricing import (
    DEFAULT_PRICES,
    FINE_TUNED_INFERENCE,
    PRICES_AS_OF,
    Price,
    price_for,
    price_of,
    query_cost,
    training_cost,
)

CUSTOM = Price(1.0, 0.5, 2.0, 4.0)


def test_exact_and_snapshot_names() -> None:
    assert price_for("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("gpt-3.5-turbo-0125") == DEFAULT_PRICES["gpt-3.5-turbo"]
    assert price_for("gpt-4o-2024-05-13") == DEFAULT_PRICES["gpt-4o-2024-05-13"]
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
                  "gpt-3.5-turbo"):
        assert price_for(model) is DEFAULT_PRICES[model]


def test_fine_tuned_ids_resolve_to_fine_tuned_inference_of_their_base() -> None:
    ft = price_for("ft:gpt-4o-mini-2024-07-18:acme:intent:9abcDEF")
    assert ft == FINE_TUNED_INFERENCE["gpt-4o-mini"]
    assert price_for("ft:gpt-4.1-nano:acme::x1") == FINE_TUNED_INFERENCE["gpt-4.1-nano"]
    assert ft is not None and ft.input_per_m > DEFAULT_PRICES["gpt-4o-mini"].input_per_m
    # A base without a fine-tuned table entry is unknown: never the base's own price.
    assert price_for("ft:my-base:org::id", {"my-base": CUSTOM}) is None


def test_overrides_local_and_unknown() -> None:
    assert price_for("gpt-4o", {"gpt-4o": CUSTOM}) == CUSTOM
    ft_id = "ft:gpt-4o-mini-2024-07-18:acme::abc"
    assert price_for(ft_id, {ft_id: CUSTOM}) == CUSTOM
    assert price_for(ft_id, {"ft:gpt-4o-mini": CUSTOM}) == CUSTOM
    local = price_for("llama-3.2-1b-instruct-q4", local=True)
    assert local is not None
    assert (local.input_per_m, local.cached_input_per_m, local.output_per_m) == (0.0, 0.0, 0.0)
    assert price_for("smollm2", {"smollm2": CUSTOM}, local=True) == CUSTOM
    assert price_for("no-such-model") is None
    assert price_for("ft:no-such-base:org::id") is None
    assert price_for("ft:") is None


def test_tables_are_consistent() -> None:
    datetime.date.fromisoformat(PRICES_AS_OF)
    for price in (*DEFAULT_PRICES.values(), *FINE_TUNED_INFERENCE.values()):
        assert 0 <= price.cached_input_per_m <= price.input_per_m <= price.output_per_m
    for base, ft in FINE_TUNED_INFERENCE.items():
        assert ft.input_per_m > DEFAULT_PRICES[base].input_per_m
        assert ft.output_per_m > DEFAULT_PRICES[base].output_per_m
        assert ft.training_per_m == DEFAULT_PRICES[base].training_per_m


def test_query_cost_by_hand() -> None:
    price = Price(2.5, 1.25, 10.0, 25.0)
    # (600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6 = (1500 + 500 + 2000) / 1e6
    assert query_cost(price, 1000, 200, cached_tokens=400) == pytest.approx(0.004, rel=1e-12)
    # Mission example: 2,000-token prompt on the base vs 200 tokens on the fine-tuned model.
    base = Price(0.15, 0.075, 0.60, 3.0)
    tuned = Price(0.30, 0.15, 1.20, 3.0)
    assert query_cost(base, 2000, 50) == pytest.approx(0.000330, rel=1e-12)
    assert query_cost(tuned, 200, 50) == pytest.approx(0.000120, rel=1e-12)
    assert query_cost(base, 1500.5, 0.5) == pytest.approx((1500.5 * 0.15 + 0.5 * 0.6) / 1e6)
    with pytest.raises(ValueError):
        query_cost(price, 100, 10, cached_tokens=101)
    with pytest.raises(ValueError):
        query_cost(price, -1, 10)


def test_training_cost_by_hand() -> None:
    assert training_cost(Price(0.15, 0.075, 0.6, 3.0), 1_000_000) == pytest.approx(3.0)
    assert training_cost(Price(2.0, 0.5, 8.0, 25.0), 2_400_000) == pytest.approx(60.0)
    assert training_cost(Price(1.0, 1.0, 1.0, None), 1_000) is None
    with pytest.raises(ValueError):
        training_cost(CUSTOM, -5)


def _model(provider: str, price: Price | None = None, fine_tuned: Price | None = None) -> ModelConfig:
    return ModelConfig(name="m", provider=provider, model="gpt-4o-mini", base_url=None, api_key_env=None,
                       token_param="max_tokens", structured_output="json_schema", timeout=60.0,
                       n_ctx=4096, price=price, fine_tuned_price=fine_tuned)


def test_price_of_prefers_the_config_block_then_local_then_the_table() -> None:
    assert price_of(_model("openai", CUSTOM), "gpt-4o-mini") is CUSTOM
    assert price_of(_model("local", CUSTOM), "smollm2") is CUSTOM
    assert price_of(_model("local"), "gpt-4o-mini") == Price(0.0, 0.0, 0.0, 0.0)
    assert price_of(_model("openai"), "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_of(_model("openai"), "ft:gpt-4o-mini:acme::x") == FINE_TUNED_INFERENCE["gpt-4o-mini"]
    assert price_of(_model("openai"), "no-such-model") is None


def test_a_configured_price_does_not_price_fine_tuned_ids_at_the_base_rate() -> None:
    """(Regression: with `price:` given, ft: ids were billed at the base model's rate.)"""
    ft_id = "ft:gpt-4o-mini:acme::x"
    # price: without fine_tuned -> the table's fine-tuned rate of the base, at the block's
    # training rate: 0.30 / 0.15 / 1.20 per 1M, training 4.0 (CUSTOM's), not 1.0 / 0.5 / 2.0.
    got = price_of(_model("openai", CUSTOM), ft_id)
    assert got == Price(0.30, 0.15, 1.20, 4.0)
    assert got != CUSTOM
    no_training = Price(1.0, 0.5, 2.0, None)
    assert price_of(_model("openai", no_training), ft_id) == FINE_TUNED_INFERENCE["gpt-4o-mini"]
    # price.fine_tuned given: it wins, for ft: and local-ft: ids alike.
    tuned = Price(2.5, 1.0, 5.0, 4.0)
    assert price_of(_model("openai", CUSTOM, tuned), ft_id) is tuned
    assert price_of(_model("local", CUSTOM, tuned), "local-ft:quickstart") is tuned
    assert price_of(_model("openai", CUSTOM, tuned), "gpt-4o-mini") is CUSTOM
    assert price_of(_model("openai", None, tuned), ft_id) is tuned  # only `fine_tuned` given
    assert price_of(_model("openai", None, tuned), "gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]
    # No fine-tuned rate anywhere: unknown, not the base rate.
    assert price_of(_model("openai", CUSTOM), "ft:my-base:org::id") is None
    assert price_of(_model("local", CUSTOM), "local-ft:quickstart") is None
    assert price_of(_model("local"), "local-ft:quickstart") == Price(0.0, 0.0, 0.0, 0.0)


def test_fine_tuned_price_from_config_reaches_the_cost_and_round_trips_run_json(tmp_path) -> None:
    import dataclasses
    import json

    import yaml

    from harness.config import load_config
    from harness.running.records import _model_from

    (tmp_path / "eval.csv").write_text("text,category\nhi,a\nbye,b\n")
    cfg = {
        "name": "p", "task": {"type": "classification", "instructions": "x", "labels": ["a", "b"]},
        "dataset": {"eval": "eval.csv", "input": "text", "target": "category"},
        "models": {"m": {"provider": "openai", "model": "gpt-4o-mini", "price": {
            "input": 0.15, "output": 0.60, "training": 3.0,
            "fine_tuned": {"input": 0.30, "cached_input": 0.15, "output": 1.20}}}},
        "strategies": [{"name": "ft", "type": "fine_tuned", "model": "m",
                        "fine_tuned_model": "ft:gpt-4o-mini:acme::x"}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    model = load_config(tmp_path / "c.yaml").models["m"]
    assert model.price == Price(0.15, 0.15, 0.60, 3.0)
    assert model.fine_tuned_price == Price(0.30, 0.15, 1.20, 3.0)  # trained at the block's rate
    ft = price_of(model, "ft:gpt-4o-mini:acme::x")
    assert ft is not None
    # 2,000 prompt + 50 completion tokens: (2000 * 0.30 + 50 * 1.20) / 1e6, not the base 0.000330
    assert query_cost(ft, 2000, 50) == pytest.approx(0.000660, rel=1e-12)
    # run.json stores the model as nested mappings; reading it back gives the same prices,
    # and a folder written before `fine_tuned_price` existed still reads (and stays unpriced).
    stored = json.loads(json.dumps(dataclasses.asdict(model)))
    assert _model_from(stored) == model
    old = {k: v for k, v in stored.items() if k != "fine_tuned_price"}
    assert _model_from(old).fine_tuned_price is None
    assert _model_from(old).price == Price(0.15, 0.15, 0.60, 3.0)
    assert price_of(_model_from(old), "ft:gpt-4o-mini:acme::x") == Price(0.30, 0.15, 1.20, 3.0)
