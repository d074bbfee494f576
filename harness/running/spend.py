"""A hard spend cap (`run.max_cost_usd`, `--max-cost`): before each request, what this
invocation has spent plus what is in flight plus the request's own upper bound must stay
within the cap. A request's upper bound is its prompt (about four characters a token) at the
input rate plus `run.max_tokens` at the output rate; once it is answered, the bound is replaced
by the cost of the tokens the provider reports (the bound itself when an answer reports none;
nothing for a failed request, which reports no usage).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from harness.config import Price
from harness.errors import RunError
from harness.model.completion import Completion
from harness.model.pricing import query_cost
from harness.running.preflight import CHARS_PER_TOKEN
from harness.strategies.prompts import Message

__all__ = ["CHARS_PER_TOKEN", "CapHit", "SpendCap", "SpendCapReached"]


class SpendCapReached(RunError):
    """The run stopped before a request that could have passed the spend cap (exit code 1)."""

    exit_code = 1


class CapHit(Exception):
    """Raised inside a request that may not start: the run stops taking new requests."""


class SpendCap:
    """What one invocation spent and has in flight, against a cap (None: no cap, counted only)."""

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.in_flight = 0.0
        self.hit = False
        self._lock = threading.Lock()

    @staticmethod
    def bound(price: Price, messages: Sequence[Message], max_tokens: int) -> float:
        """The most a request can cost: its prompt tokens (estimated) and max_tokens out."""
        prompt = math.ceil(sum(len(m.get("content", "")) for m in messages) / CHARS_PER_TOKEN) + 4
        return query_cost(price, prompt, max_tokens)

    def reserve(self, bound: float) -> None:
        """Count a request as in flight, or raise CapHit when it could pass the cap."""
        with self._lock:
            if self.cap is not None and (self.hit or self.spent + self.in_flight + bound > self.cap):
                self.hit = True
                raise CapHit
            self.in_flight += bound

    def settle(self, bound: float, price: Price, comp: Completion) -> None:
        """The request is answered (or failed): its bound leaves, its reported cost counts."""
        if comp.prompt_tokens is not None and comp.completion_tokens is not None:
            cached = min(comp.cached_tokens or 0, comp.prompt_tokens)
            cost = query_cost(price, comp.prompt_tokens, comp.completion_tokens, cached)
        elif comp.error_kind:
            cost = 0.0  # a failed request reports no usage and is not billed
        else:
            cost = bound  # answered without usage: count the most it could have cost
        with self._lock:
            self.in_flight -= bound
            self.spent += cost

    def release(self, bound: float) -> None:
        """A reserved request that was never sent."""
        with self._lock:
            self.in_flight -= bound
