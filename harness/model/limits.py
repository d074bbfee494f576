"""Client-side rate limiting: requests/tokens per minute and concurrency that backs off after 429s."""

from __future__ import annotations

import asyncio
import time


class AdaptiveLimiter:
    """Caps concurrent requests and request/token rates.

    After a 429 the concurrency limit halves (never below 1); it climbs back by one after every
    `recover_after` successful requests, so a rate-limited run slows down instead of burning
    through retries.
    """

    def __init__(self, concurrency: int, *, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, recover_after: int = 20) -> None:
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.active = 0
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.recover_after = recover_after
        self.rate_limited = 0
        self.halve_window = 1.0
        self._last_halved = -1e9
        self._successes = 0
        self._cond = asyncio.Condition()
        now = time.monotonic()
        self._req_budget = float(requests_per_minute or 0) / 60.0  # start with one second's worth
        self._tok_budget = float(tokens_per_minute or 0) / 60.0
        self._stamp = now

    def _refill(self) -> None:
        now = time.monotonic()
        dt, self._stamp = now - self._stamp, now
        if self.rpm:
            self._req_budget = min(self.rpm / 60.0 * 5, self._req_budget + dt * self.rpm / 60.0)
        if self.tpm:
            self._tok_budget = min(self.tpm / 60.0 * 5, self._tok_budget + dt * self.tpm / 60.0)

    def _delay(self, tokens: float) -> float:
        delays = [0.0]
        if self.rpm and self._req_budget < 1:
            delays.append((1 - self._req_budget) / (self.rpm / 60.0))
        if self.tpm:
            need = min(tokens, self.tpm / 60.0 * 5)
            if self._tok_budget < need:
                delays.append((need - self._tok_budget) / (self.tpm / 60.0))
        return max(delays)

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait for a concurrency slot and enough request/token budget."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
        try:
            while True:
                self._refill()
                delay = self._delay(tokens)
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
        except BaseException:  # cancelled while pacing (Ctrl-C, a fatal error): free the slot
            async with self._cond:
                self.active -= 1
                self._cond.notify_all()
            raise
        if self.rpm:
            self._req_budget -= 1
        if self.tpm:
            self._tok_budget -= tokens

    async def release(self, *, ok: bool) -> None:
        """Give the slot back; `ok` counts towards raising the limit again."""
        async with self._cond:
            self.active -= 1
            if ok:
                self._successes += 1
                if self.limit < self.max_concurrency and self._successes >= self.recover_after:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()

    def on_rate_limited(self) -> None:
        """A 429 came back: halve the concurrency limit, at most once per `halve_window` seconds
        (a burst of 429s from requests already in flight is one signal, not eight)."""
        self.rate_limited += 1
        now = time.monotonic()
        if now - self._last_halved >= self.halve_window:
            self.limit = max(1, self.limit // 2)
            self._last_halved = now
        self._successes = 0
