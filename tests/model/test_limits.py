"""The client-side limiter: concurrency that halves after 429s and recovers, and rate pacing."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from fake_openai import ChatReply, FakeOpenAI, default_responder

from harness.cli import main
from harness.model.limits import AdaptiveLimiter


async def _one(limiter: AdaptiveLimiter, ok: bool = True, tokens: float = 0.0) -> None:
    await limiter.acquire(tokens)
    await limiter.release(ok=ok)


def test_rate_limits_halve_concurrency_never_below_one():
    limiter = AdaptiveLimiter(8)
    limiter.halve_window = 0.0  # every 429 counts (the default merges a burst into one)
    seen = []
    for _ in range(5):
        limiter.on_rate_limited()
        seen.append(limiter.limit)
    assert seen == [4, 2, 1, 1, 1]
    assert limiter.rate_limited == 5


def test_concurrency_climbs_back_one_step_per_recover_after_successes():
    async def scenario() -> list[int]:
        limiter = AdaptiveLimiter(4, recover_after=3)
        limiter.halve_window = 0.0
        limiter.on_rate_limited()
        limiter.on_rate_limited()
        assert limiter.limit == 1
        trace = []
        for i in range(12):
            await _one(limiter, ok=i != 1)  # one failure: it does not count towards recovery
            trace.append(limiter.limit)
        return trace

    trace = asyncio.run(scenario())
    assert trace == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]  # and never above the configured 4


def test_a_rate_limit_resets_the_recovery_count():
    async def scenario() -> int:
        limiter = AdaptiveLimiter(4, recover_after=3)
        limiter.halve_window = 0.0
        limiter.on_rate_limited()  # 2
        await _one(limiter)
        await _one(limiter)
        limiter.on_rate_limited()  # 1, and the two successes no longer count
        await _one(limiter)
        await _one(limiter)
        return limiter.limit

    assert asyncio.run(scenario()) == 1


def test_active_requests_never_exceed_the_current_limit():
    async def scenario() -> tuple[int, int]:
        limiter = AdaptiveLimiter(6, recover_after=10_000)
        peak = {"before": 0, "after": 0}
        phase = "before"

        async def task() -> None:
            await limiter.acquire()
            peak[phase] = max(peak[phase], limiter.active)
            await asyncio.sleep(0.01)
            await limiter.release(ok=True)

        await asyncio.gather(*(task() for _ in range(30)))
        limiter.on_rate_limited()
        phase = "after"
        await asyncio.gather(*(task() for _ in range(30)))
        return peak["before"], peak["after"]

    assert asyncio.run(scenario()) == (6, 3)


def test_a_halved_limit_holds_back_new_requests_until_slots_free():
    async def scenario() -> list[str]:
        limiter = AdaptiveLimiter(4)
        for _ in range(4):
            await limiter.acquire()
        limiter.on_rate_limited()  # limit 2 while 4 are in flight
        events = []

        async def late() -> None:
            await limiter.acquire()
            events.append("acquired")

        waiter = asyncio.create_task(late())
        await asyncio.sleep(0.02)
        events.append("waiting")
        await limiter.release(ok=True)  # 3 in flight: still over the limit
        await asyncio.sleep(0.02)
        events.append("released one")
        await limiter.release(ok=True)  # 2 in flight: still at the limit
        await asyncio.sleep(0.02)
        events.append("released two")
        await limiter.release(ok=True)  # 1 in flight: room
        await waiter
        return events

    assert asyncio.run(scenario()) == ["waiting", "released one", "released two", "acquired"]


def test_requests_per_minute_paces_after_the_first_seconds_worth():
    async def scenario() -> list[float]:
        limiter = AdaptiveLimiter(50, requests_per_minute=1200)  # 20 per second
        stamps = []

        async def task() -> None:
            await limiter.acquire()
            stamps.append(time.monotonic())
            await limiter.release(ok=True)

        start = time.monotonic()
        await asyncio.gather(*(task() for _ in range(30)))
        return [t - start for t in stamps]

    stamps = sorted(asyncio.run(scenario()))
    assert stamps[19] < 0.1  # one second's worth goes out at once
    assert 0.45 < stamps[-1] < 2.0  # the other 10 at 20 per second
    gaps = [b - a for a, b in itertools.pairwise(stamps[19:])]
    assert sum(gaps) / len(gaps) >= 0.045  # never faster than the rate


def test_tokens_per_minute_paces_large_requests():
    async def scenario() -> float:
        limiter = AdaptiveLimiter(10, tokens_per_minute=60_000)  # 1,000 tokens per second
        start = time.monotonic()
        await asyncio.gather(*(_one(limiter, tokens=500) for _ in range(4)))
        return time.monotonic() - start

    assert 0.8 < asyncio.run(scenario()) < 2.0  # 2,000 tokens: 1 s of budget plus 1 s of waiting


def test_cancelled_while_pacing_frees_its_slot():
    async def scenario() -> int:
        limiter = AdaptiveLimiter(2, requests_per_minute=60)  # one request, then one per second
        await limiter.acquire()
        await limiter.release(ok=True)
        paced = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.05)
        assert limiter.active == 1  # holds a slot while it waits for request budget
        paced.cancel()
        with pytest.raises(asyncio.CancelledError):
            await paced
        return limiter.active

    assert asyncio.run(scenario()) == 0


# --------------------------------------------------------------------------- through a real run


class Tracker:
    """A responder that takes `busy_s` per request and records how many were in flight."""

    def __init__(self, busy_s: float, rate_limited_first: int = 0) -> None:
        self.busy_s = busy_s
        self.rate_limited_first = rate_limited_first
        self.lock = threading.Lock()
        self.inflight = 0
        self.arrivals: list[tuple[float, int]] = []  # (time, requests in flight on arrival)

    def __call__(self, body: dict) -> str | ChatReply:
        with self.lock:
            n = len(self.arrivals)
            self.inflight += 1
            self.arrivals.append((time.monotonic(), self.inflight))
        try:
            if n < self.rate_limited_first:
                return ChatReply.error(429, "Rate limit reached", type_="requests",
                                       code="rate_limit_exceeded", headers={"retry-after-ms": "10"})
            time.sleep(self.busy_s)
            return default_responder(body)
        finally:
            with self.lock:
                self.inflight -= 1


ZS = [{"name": "zs", "type": "zero_shot", "model": "fake"}]


def test_rate_limits_slow_a_real_run_down(make_config, tmp_path, monkeypatch):
    """Concurrency 8; a burst of eight 429s halves the concurrency (once: one congestion signal)."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    calm, limited = Tracker(0.03), Tracker(0.03, rate_limited_first=8)
    for name, tracker in (("calm", calm), ("limited", limited)):
        with FakeOpenAI(responder=tracker) as server:
            cfg = make_config(server.base_url, n_eval=10, strategies=ZS, run={"concurrency": 8})
            assert main(["run", str(cfg), "--out", str(tmp_path / name), "--no-cache"]) == 0
    assert max(n for _, n in calm.arrivals) >= 6
    assert len(limited.arrivals) == 48
    after = [n for _, n in limited.arrivals[16:]]  # once the eight retries went out
    # halved once for the burst (8 -> 4), then +1 after every 20 successes
    assert max(after) <= 5 and sum(after) / len(after) < 4.5


def test_requests_per_minute_paces_a_real_run(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    tracker = Tracker(0.0)
    with FakeOpenAI(responder=tracker) as server:
        cfg = make_config(server.base_url, n_eval=15, strategies=ZS,
                          run={"concurrency": 8, "requests_per_minute": 1200})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    times = sorted(t for t, _ in tracker.arrivals)
    assert len(times) == 60
    # A burst of the budget saved up so far (20 per second since start-up, at most 5 s worth),
    # then 20 per second: the last 15 requests are paced.
    assert times[-1] - times[-15] >= 14 / 20 * 0.9


def test_a_burst_of_429s_halves_once() -> None:
    limiter = AdaptiveLimiter(16)
    for _ in range(8):
        limiter.on_rate_limited()
    assert limiter.limit == 8 and limiter.rate_limited == 8
