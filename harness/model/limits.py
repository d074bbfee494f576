"""Client-side rate limiting: request/token pacing and a concurrency limit that backs off after
sustained 429s.

Two controllers share one object:

* Pacing (token buckets). Every attempt, retries included, spends one request of the
  requests-per-minute budget; a request's estimated tokens spend the tokens-per-minute budget.
  The rates are `run.requests_per_minute` / `run.tokens_per_minute` where set, lowered to what the
  server's `x-ratelimit-*` headers say it allows (learned from successful responses only: a 429
  says a bucket is empty, not how fast it refills).
* Concurrency (AIMD). The limit halves, at most once per `halve_window` seconds, only while 429s
  are a sustained share of recent outcomes; an isolated 429 (a fault, a short Retry-After) does
  not shrink it. It climbs back by one after every `recover_after` successes.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import time
from collections.abc import Callable, Mapping

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | None) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` value: "20ms", "1s", "6m0s", "1h2m3.5s" or "0.5"."""
    if text is None:
        return None
    text = text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            return None
        value = sum(float(n) * _UNIT[u] for n, u in parts)
    return value if math.isfinite(value) and value >= 0 else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class RateBucket:
    """One pacing budget (requests or tokens), in units per second.

    `configured` is the user's cap; `learned` estimates from the server's headers. Pacing uses
    `safety` times the smaller of the two, or nothing when neither is known.
    """

    safety = 0.95  # pace a little under the server's refill rate, so its bucket never runs dry
    samples = 16  # estimates kept; the smallest is used (header rounding only overestimates)

    def __init__(self, per_minute: float | None, now: float) -> None:
        self.configured = per_minute / 60.0 if per_minute else None
        self._estimates: collections.deque[float] = collections.deque(maxlen=self.samples)
        self.budget = self.configured or 0.0  # start with one second's worth
        self._stamp = now

    @property
    def learned(self) -> float | None:
        """The server's refill rate per second, as its headers tell it (None: not known)."""
        return min(self._estimates) if self._estimates else None

    @property
    def rate(self) -> float | None:
        """Units per second to pace at, or None for no pacing."""
        learned = self.learned
        rates = [r for r in (self.configured, learned and learned * self.safety) if r]
        return min(rates) if rates else None

    def refill(self, now: float) -> None:
        """Add what accrued since the last call, up to five seconds' worth."""
        dt, self._stamp = now - self._stamp, now
        rate = self.rate
        if rate:
            self.budget = min(rate * 5, self.budget + dt * rate)

    def delay(self, need: float) -> float:
        """Seconds until `need` units are available (0 when they are, or when not pacing)."""
        rate = self.rate
        if not rate:
            return 0.0
        need = min(need, rate * 5)
        return max(0.0, (need - self.budget) / rate)

    def take(self, amount: float) -> None:
        """Spend `amount` (only while pacing: an unpaced budget means nothing)."""
        if self.rate:
            self.budget -= amount

    def observe(self, limit: float | None, remaining: float | None, reset: float | None,
                *, success: bool) -> None:
        """Update from one response's `x-ratelimit-{limit,remaining,reset}-*` headers.

        The server's bucket holds `remaining` of `limit` and is full again after `reset` seconds,
        so it refills at (limit - remaining) / reset. Only drained buckets (remaining below
        half) give a usable estimate; a nearly full one means the server is not the bottleneck,
        and then earlier estimates are dropped so that a raised limit is found again.
        """
        if remaining is not None and self.rate:
            self.budget = min(self.budget, remaining)
        if not success or limit is None or remaining is None or limit <= 0:
            return
        if remaining >= 0.9 * limit:
            self._estimates.clear()
        elif remaining <= limit / 2:
            if reset is not None and reset > 0:
                self._estimates.append((limit - remaining) / reset)
            elif reset is None:
                self._estimates.append(limit / 60.0)  # OpenAI's limits are per minute


class AdaptiveLimiter:
    """Caps concurrent requests and request/token rates (see the module docstring)."""

    window = 50  # recent outcomes (429s and successes) the 429 share is taken over
    min_window = 20  # the share's denominator never counts fewer outcomes than this
    sustained_share = 0.25  # 429s at or above this share of recent outcomes: back off
    max_pause = 60.0  # longest Retry-After that pauses every new start

    def __init__(self, concurrency: int, *, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, recover_after: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.active = 0
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.recover_after = recover_after
        self.rate_limited = 0
        self.halvings = 0
        self.halve_window = 1.0
        self._clock = clock
        self._last_halved = -1e9
        self._successes = 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=self.window)
        self._pause_until = 0.0
        self._cond = asyncio.Condition()
        now = clock()
        self.requests = RateBucket(requests_per_minute, now)
        self.tokens = RateBucket(tokens_per_minute, now)

    def delay(self, tokens: float = 0.0, *, requests: float = 1.0) -> float:
        """Seconds a new start would wait now: a Retry-After pause, request and token budget."""
        now = self._clock()
        self.requests.refill(now)
        self.tokens.refill(now)
        return max(self._pause_until - now, self.requests.delay(requests),
                   self.tokens.delay(tokens) if tokens else 0.0)

    async def _wait_for_budget(self, tokens: float) -> None:
        while (delay := self.delay(tokens)) > 0:
            await asyncio.sleep(delay)
        self.requests.take(1.0)
        self.tokens.take(tokens)

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait for a concurrency slot and enough request/token budget."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
        try:
            await self._wait_for_budget(tokens)
        except BaseException:  # cancelled while pacing (Ctrl-C, a fatal error): free the slot
            async with self._cond:
                self.active -= 1
                self._cond.notify_all()
            raise

    async def pace(self) -> None:
        """Before a retry (the caller already holds a slot): wait for and spend one request of
        budget, so retries count against the requests-per-minute rate like first attempts."""
        await self._wait_for_budget(0.0)

    async def release(self, *, ok: bool) -> None:
        """Give the slot back; `ok` counts towards raising the limit again."""
        async with self._cond:
            self.active -= 1
            if ok:
                self._recent.append(False)
                self._successes += 1
                if self.limit < self.max_concurrency and self._successes >= self.recover_after:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()

    def sustained(self) -> bool:
        """Whether 429s are at least `sustained_share` of the recent outcomes."""
        hits = sum(self._recent)
        return hits >= self.sustained_share * max(len(self._recent), self.min_window)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """A 429 came back. While 429s are sustained, halve the concurrency limit (at most once
        per `halve_window` seconds: a burst from requests already in flight is one signal) and
        hold every new start for the server's Retry-After."""
        self.rate_limited += 1
        self._recent.append(True)
        if not self.sustained():
            return
        now = self._clock()
        if retry_after is not None and 0 < retry_after <= self.max_pause:
            self._pause_until = max(self._pause_until, now + retry_after)
        if now - self._last_halved >= self.halve_window:
            self.limit = max(1, self.limit // 2)
            self._last_halved = now
            self.halvings += 1
            self._successes = 0

    def on_headers(self, status: int, headers: Mapping[str, str]) -> None:
        """Read `x-ratelimit-*` headers of a response (any status): the server's remaining
        budget caps ours, and successful responses teach the server's refill rates."""
        lowered = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit")}
        if not lowered:
            return
        now = self._clock()
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is None:
                continue
            bucket.refill(now)
            bucket.observe(_number(lowered.get(f"x-ratelimit-limit-{kind}")), remaining,
                           parse_duration(lowered.get(f"x-ratelimit-reset-{kind}")),
                           success=200 <= status < 300)
