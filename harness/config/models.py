"""The `models:` section of a config: one ModelConfig per named model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from harness.config.types import LOCAL_MODEL_ALIAS, ModelConfig, Price

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_model(name: str, d: Mapping[str, Any], run_timeout: float, problems: list[str]) -> ModelConfig:
    """One `models.NAME` block (already checked against the schema); problems are appended."""
    provider = d["provider"]
    where = f"models.{name}"
    if provider == "openai" and "model" not in d:
        problems.append(f"{where}: 'model' is required for provider openai")
    key_env = d.get("api_key_env", "OPENAI_API_KEY" if provider == "openai" else None)
    if key_env is not None and not _ENV_NAME.match(key_env):
        # never echo the value: it is often the key itself, pasted in the wrong place
        problems.append(f"{where}.api_key_env: must name an environment variable (letters, digits "
                        f"and _), not hold the key itself; export the key and name the variable here")
    raw_url = d.get("base_url")
    urls = [raw_url] if isinstance(raw_url, str) else list(raw_url or [])
    for i, url in enumerate(urls):
        at = f"{where}.base_url" + (f"[{i}]" if isinstance(raw_url, list) else "")
        if not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"{at}: {url!r} is not an http:// or https:// URL")
    base_url = urls[0] if urls else None
    if provider != "local" and d.get("servers") is not None:
        problems.append(f"{where}.servers: applies to provider local only (replicas of another "
                        f"endpoint are given as a list of base_url values)")
    if provider == "local" and urls:
        problems.append(f"{where}.base_url: provider local starts its own server; use provider "
                        f"openai for a server you run (any OpenAI-compatible URL)")
    price = d.get("price")
    return ModelConfig(
        name=name,
        provider=provider,
        model=d.get("model", LOCAL_MODEL_ALIAS),
        base_url=base_url,
        base_urls=tuple(urls) if isinstance(raw_url, list) else (),
        servers=None if d.get("servers") is None else int(d["servers"]),
        mode=d.get("mode"),
        api_key_env=key_env,
        token_param=d.get("token_param", "max_tokens"),
        structured_output=d.get(
            "structured_output", "json_object" if provider == "local" else "json_schema"
        ),
        timeout=float(d.get("timeout", run_timeout)),
        n_ctx=int(d.get("n_ctx", 4096)),
        # a block with only `fine_tuned` rates leaves the base model to the built-in table
        price=_price(price) if price and set(price) - {"fine_tuned"} else None,
        # the fine-tuned ids' rates, trained at the block's `training` rate
        fine_tuned_price=_price({**price["fine_tuned"], "training": price.get("training"),
                                 "batch": price.get("batch", 0.5)})
        if price and price.get("fine_tuned") else None,
        hosting_per_month=None if not price or price.get("hosting_per_month") is None
        else float(price["hosting_per_month"]),
    )


def _price(d: Mapping[str, Any]) -> Price:
    """A `price:` block (or its `fine_tuned` rates)."""
    return Price(
        input_per_m=float(d.get("input", 0.0)),
        cached_input_per_m=float(d.get("cached_input", d.get("input", 0.0))),
        output_per_m=float(d.get("output", 0.0)),
        training_per_m=None if d.get("training") is None else float(d["training"]),
        batch_share=float(d.get("batch", 0.5)),
    )
