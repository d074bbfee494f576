"""Before a run: what it will request and cost, and what looks wrong. No model call.

`harness validate` and `harness run --dry-run` print this; `harness run` logs the warnings.
Token counts are estimates (about four characters a token, measured on one rendered prompt per
arm); the cost is an upper bound on completions (every answer at `run.max_tokens`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.model.endpoint import api_key
from harness.model.pricing import billed_price, query_cost
from harness.running.plan import Plan
from harness.strategies import rendered_prompt

CHARS_PER_TOKEN = 4.0
MANY_LABELS = 100
HIGH_CONCURRENCY = 256


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's share of a run."""

    key: str
    model_id: str
    requests: int
    prompt_tokens: int  # estimated, per request
    cost_usd: float | None  # upper bound for the arm; None when the price is unknown


@dataclass(frozen=True)
class Preflight:
    """What a run of a plan will do, before it does it."""

    arms: tuple[ArmEstimate, ...]
    warnings: tuple[str, ...]

    @property
    def requests(self) -> int:
        """Requests in all (retries not included)."""
        return sum(a.requests for a in self.arms)

    @property
    def cost_usd(self) -> float | None:
        """Upper bound on the whole run's cost; None when some priced arm is unknown."""
        costs = [a.cost_usd for a in self.arms if a.requests]
        return None if any(c is None for c in costs) else float(sum(c or 0.0 for c in costs))

    def describe(self) -> list[str]:
        """Lines for the terminal."""
        lines = []
        for a in self.arms:
            cost = "price unknown (add price: to the model)" if a.cost_usd is None \
                else f"<= ${a.cost_usd:,.4f}"
            lines.append(f"  {a.key:<28} {a.requests:>7} requests, ~{a.prompt_tokens:,} prompt "
                         f"tokens each, {cost}")
        total = self.cost_usd
        money = "cost unknown for some arms" if total is None else f"estimated cost <= ${total:,.4f}"
        lines.append(f"  total: {self.requests:,} requests, {money}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


def check_keys(p: Plan) -> None:
    """InputError when a model an arm needs has its api_key_env unset (as `run` would)."""
    for name in sorted({s.arm.model for s in p.strategies if not s.arm.unavailable}):
        model = p.cfg.models[name]
        if model.provider != "local":
            api_key(model)


def preflight(p: Plan) -> Preflight:
    """Requests, estimated tokens and cost per arm, and warnings about the settings."""
    cfg = p.cfg
    example = p.data.eval[0]
    arms = []
    warnings: list[str] = []
    for s in p.strategies:
        arm = s.arm
        trains = any(sc.name == arm.strategy and sc.train_if_missing for sc in cfg.strategies)
        runs = not arm.unavailable or trains  # a missing fine-tune is trained first
        requests = len(p.data.eval) * getattr(s, "calls_per_example", 1) if runs else 0
        tokens = math.ceil(len(rendered_prompt(s, example)) / CHARS_PER_TOKEN)
        model = cfg.models[arm.model]
        price = billed_price(model, arm.model_id, cfg.run)
        cost = None if price is None else requests * query_cost(price, tokens, cfg.run.max_tokens)
        arms.append(ArmEstimate(arm.key, arm.model_id, requests, tokens, cost))
        if model.provider == "local" and tokens + cfg.run.max_tokens > model.n_ctx:
            warnings.append(f"arm {arm.key}: a prompt of ~{tokens:,} tokens plus max_tokens "
                            f"{cfg.run.max_tokens} exceeds models.{model.name}.n_ctx {model.n_ctx}")
    if len(p.data.labels) > MANY_LABELS:
        biggest = max((a.prompt_tokens for a in arms), default=0)
        warnings.append(f"the task has {len(p.data.labels)} labels: prompts of up to ~{biggest:,} "
                        "tokens each, paid on every request")
    if cfg.run.concurrency > HIGH_CONCURRENCY:
        warnings.append(f"run.concurrency {cfg.run.concurrency} is very high: providers rate-limit "
                        "far below that (8 to 64 is typical); the limiter will back off on 429s")
    limit = cfg.dataset.limit
    if limit is not None and limit > p.data.eval_total:
        warnings.append(f"dataset.limit {limit} is above the eval set's {p.data.eval_total} "
                        f"examples: all {p.data.eval_total} are used")
    return Preflight(tuple(arms), tuple(warnings))


__all__ = ["ArmEstimate", "Preflight", "check_keys", "preflight"]
