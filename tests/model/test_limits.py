"""The client-side limiter: concurrency that halves after sustained 429s and recovers, rate
pacing (retries included), and what it learns from x-ratelimit-* / Retry-After headers."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import threading
import time

import pytest
from fake_openai import ChatReply, FakeOpenAI, FaultPlan, default_responder

import harness.running.runner as runner_module
from harness.cli import main
from harness.config import ModelConfig, RunConfig
from harness.model.completion import ChatRequest
from harness.model.endpoint import Endpoint
from harness.model.limits import AdaptiveLimiter, parse_duration

SUSTAINED = 5  # 429s in a row that make a sustained signal on a fresh limiter (25% of 20)


class Clock:
    """A fake monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _one(limiter: AdaptiveLimiter, ok: bool = True, tokens: float = 0.0) -> None:
    await limiter.acquire(tokens)
    await limiter.release(ok=ok)


def _sustain(limiter: AdaptiveLimiter, n: int = SUSTAINED) -> None:
    for _ in range(n):
        limiter.on_rate_limited()


def test_rate_limits_halve_concurrency_never_below_one():
    limiter = AdaptiveLimiter(8)
    limiter.halve_window = 0.0  # every 429 counts (the default merges a burst into one)
    seen = []
    for _ in range(9):
        limiter.on_rate_limited()
        seen.append(limiter.limit)
    assert seen == [8, 8, 8, 8, 4, 2, 1, 1, 1]  # from the fifth in a row: sustained
    assert limiter.rate_limited == 9 and limiter.halvings == 5


def test_isolated_429s_do_not_shrink_concurrency():
    """Random 429s at 10% of outcomes (seeded) and at every tenth: the limit stays where it is;
    the successes in between still count towards recovery."""
    clock = Clock()

    async def scenario(pattern: list[bool]) -> tuple[int, int]:
        limiter = AdaptiveLimiter(16, clock=clock)
        for limited in pattern:
            clock.now += 0.01
            if limited:
                limiter.on_rate_limited(0.2)
            else:
                await _one(limiter)
            assert limiter.delay() == 0  # and no Retry-After pause for an isolated 429
        return limiter.limit, limiter.halvings

    rng = random.Random(1)
    assert asyncio.run(scenario([i % 10 == 9 for i in range(2000)])) == (16, 0)
    assert asyncio.run(scenario([rng.random() < 0.1 for _ in range(2000)])) == (16, 0)


def test_sustained_429s_halve_once_a_window_and_pause_for_retry_after():
    clock = Clock()
    limiter = AdaptiveLimiter(16, clock=clock)
    for _ in range(SUSTAINED):
        limiter.on_rate_limited(0.5)
    assert limiter.limit == 8
    assert limiter.delay() == 0.5  # no new start until the server's Retry-After has passed
    clock.now += 0.3
    limiter.on_rate_limited(0.5)
    assert limiter.limit == 8  # within halve_window: the same burst
    clock.now += 1.0
    assert limiter.delay() == 0
    limiter.on_rate_limited(None)
    assert limiter.limit == 4 and limiter.halvings == 2


def test_concurrency_climbs_back_one_step_per_recover_after_successes():
    async def scenario() -> list[int]:
        limiter = AdaptiveLimiter(4, recover_after=3)
        limiter.halve_window = 0.0
        _sustain(limiter, SUSTAINED + 1)
        assert limiter.limit == 1
        limiter._recent.clear()  # forget them, so that the one failure below does not count
        trace = []
        for i in range(12):
            await _one(limiter, ok=i != 1)  # one failure: it does not count towards recovery
            trace.append(limiter.limit)
        return trace

    trace = asyncio.run(scenario())
    assert trace == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]  # and never above the configured 4


def test_a_halving_resets_the_recovery_count():
    async def scenario() -> int:
        limiter = AdaptiveLimiter(4, recover_after=3)
        limiter.halve_window = 0.0
        _sustain(limiter)  # 2
        await _one(limiter)
        await _one(limiter)
        limiter.on_rate_limited()  # still sustained: 1, and the two successes no longer count
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
        _sustain(limiter, 20)
        phase = "after"
        await asyncio.gather(*(task() for _ in range(30)))
        return peak["before"], peak["after"]

    assert asyncio.run(scenario()) == (6, 3)


def test_a_halved_limit_holds_back_new_requests_until_slots_free():
    async def scenario() -> list[str]:
        limiter = AdaptiveLimiter(4)
        for _ in range(4):
            await limiter.acquire()
        _sustain(limiter)  # limit 2 while 4 are in flight
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


# --------------------------------------------------------------------------- headers and pacing


@pytest.mark.parametrize(("text", "seconds"), [
    ("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("0.5", 0.5),
    ("250ms", 0.25), ("soon", None), ("5x", None), ("-1", None), ("inf", None), (None, None)])
def test_reset_durations_parse_like_openai_writes_them(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def _bucket_headers(limit: int, remaining: int, reset: str) -> dict[str, str]:
    return {"X-RateLimit-Limit-Requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining), "x-ratelimit-reset-requests": reset}


def test_headers_of_a_drained_bucket_teach_its_refill_rate():
    clock = Clock()
    limiter = AdaptiveLimiter(16, clock=clock)
    limiter.on_headers(200, {"content-type": "application/json"})
    limiter.on_headers(200, _bucket_headers(100, 95, "500ms"))  # nearly full: not binding
    assert limiter.requests.rate is None and limiter.delay() == 0
    # 40 of 100 left, full again in 3 s: it refills at 20 per second
    limiter.on_headers(200, _bucket_headers(100, 40, "3s"))
    limiter.on_headers(200, _bucket_headers(100, 41, "2.9s"))  # a rounding-inflated estimate
    assert limiter.requests.learned == pytest.approx(20.0)
    assert limiter.requests.rate == pytest.approx(19.0)  # paced a little below it
    # OpenAI's per-minute limit with no reset header: limit / 60
    other = AdaptiveLimiter(16, clock=clock)
    other.on_headers(200, {"x-ratelimit-limit-requests": "600",
                           "x-ratelimit-remaining-requests": "10"})
    assert other.requests.learned == pytest.approx(10.0)
    # a full bucket again: the server is not the bottleneck, so the estimate is dropped
    limiter.on_headers(200, _bucket_headers(100, 99, "50ms"))
    assert limiter.requests.rate is None


def test_a_429s_headers_empty_the_budget_but_teach_no_rate():
    """A random 429 that claims "limit 60, remaining 0" (no reset) must not set a 1/s pace;
    with a known pace, remaining 0 means the next start waits one interval."""
    clock = Clock()
    limiter = AdaptiveLimiter(16, clock=clock)
    limiter.on_headers(429, {"x-ratelimit-limit-requests": "60",
                             "x-ratelimit-remaining-requests": "0"})
    assert limiter.requests.rate is None and limiter.delay() == 0
    paced = AdaptiveLimiter(16, requests_per_minute=600, clock=clock)  # 10 per second
    assert paced.delay() == 0
    paced.on_headers(429, {"x-ratelimit-remaining-requests": "0"})
    assert paced.delay() == pytest.approx(0.1)


def test_retries_spend_the_requests_per_minute_budget():
    clock = Clock()

    async def scenario() -> float:
        limiter = AdaptiveLimiter(4, requests_per_minute=600, clock=clock)  # 10 a second
        await limiter.acquire()  # the first attempt
        for _ in range(9):
            await limiter.pace()  # nine retries of it
        return limiter.delay()

    assert asyncio.run(scenario()) == pytest.approx(0.1)  # the second's 10 are spent


def test_endpoint_passes_headers_and_paces_retries():
    """Endpoint(on_headers=, before_retry=): headers of the 429s and of the success reach the
    callback; every retry, and only retries, is awaited through before_retry."""
    replies = iter([ChatReply.error(429, "slow down", type_="requests", code="rate_limit_exceeded",
                                    headers={"retry-after-ms": "1",
                                             "x-ratelimit-remaining-requests": "0"})] * 2)

    def responder(body: dict) -> str | ChatReply:
        return next(replies, ChatReply(content="ok", headers={
            "x-ratelimit-remaining-requests": "7"}))

    seen: list[tuple[int, str | None]] = []
    paced: list[int] = []

    async def before_retry() -> None:
        paced.append(len(seen))

    async def scenario(base_url: str) -> int:
        model = ModelConfig(name="m", provider="openai", model="fake-model", base_url=base_url,
                            api_key_env=None, token_param="max_tokens",
                            structured_output="json_schema", timeout=5.0, n_ctx=4096, price=None)
        ep = Endpoint(model, run=RunConfig(), before_retry=before_retry,
                      on_headers=lambda status, h: seen.append(
                          (status, h.get("x-ratelimit-remaining-requests"))))
        try:
            comp = await ep.complete(ChatRequest(model="fake-model", temperature=0.0, max_tokens=5,
                                                 messages=({"role": "user", "content": "hi"},)))
        finally:
            await ep.aclose()
        return comp.attempts

    with FakeOpenAI(responder=responder) as server:
        assert asyncio.run(scenario(server.base_url)) == 3
    assert seen == [(429, "0"), (429, "0"), (200, "7")]
    assert paced == [1, 2]  # before the second and the third attempt


# --------------------------------------------------------------------------- loopback scenarios


def test_random_429s_do_not_collapse_concurrency_in_a_real_run(make_config, tmp_path, monkeypatch):
    """Scenario (a): 10% random 429s (short Retry-After) plus 11% other faults. Concurrency stays
    near the configured 8 instead of sliding to 1 (the old limiter halved on every 429)."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    limits: list[int] = []  # the concurrency limit each request started under

    class Recording(AdaptiveLimiter):
        async def acquire(self, tokens: float = 0.0) -> None:
            await super().acquire(tokens)
            limits.append(self.limit)

    monkeypatch.setattr(runner_module, "AdaptiveLimiter", Recording)
    faults = FaultPlan(rate_limit=0.10, retry_after_s=0.05, server_error=0.05, unavailable=0.06)
    with FakeOpenAI(latency_s=0.01, faults=faults, seed=3) as server:
        cfg = make_config(server.base_url, n_eval=40, strategies=ZS, run={"concurrency": 8})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        assert server.fault_counts["rate_limit"] >= 10
    assert len(limits) == 160  # first attempts
    assert statistics.median(limits) == 8 and min(limits) >= 4


def test_a_server_enforced_limit_is_learned_with_few_429s(make_config, tmp_path, monkeypatch):
    """Scenario (b): a token bucket of 40 requests/s against a client that could send ~400/s.
    The client learns the rate from x-ratelimit-* and fewer than 5% of its requests get 429s."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(rate_limit_rps=40, latency_s=0.02) as server:
        cfg = make_config(server.base_url, n_eval=30, strategies=ZS, run={"concurrency": 8})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        log = list(server.bucket_log)
    admitted = sum(ok for _, ok in log)
    assert admitted >= 120  # every example answered (4 requests each, as above)
    assert (len(log) - admitted) / len(log) < 0.05
