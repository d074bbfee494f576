"""Rate limits against a loopback endpoint: the figures of "no collapse under 429s".

(a) Random faults: 10% of attempts get a 429 (Retry-After 0.2 s) and 11% other faults (500, 503,
    a cut-off 200). Prints the fault-free and faulty wall times and their ratio (target <= 3).
(b) A server that truly enforces a limit: a token bucket of R requests/s (one second's burst)
    that answers 429 above it, with OpenAI's x-ratelimit-* headers. Prints R, the rate the
    client settled at (admitted requests/s over the second half of the run) and the share of
    its requests that got 429s (target < 5%).

The loopback server (tests/fake_openai.py) runs in a separate process; the harness runs as
`harness run` does (plan + Runner), no cache.

    python benchmarks/bench_rate_limits.py [--requests 1200] [--concurrency 16] [--rps 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loopback_project import write_project
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import json, sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI, FaultPlan

from record import add_json_flag, emit
with FakeOpenAI(latency_s={latency}, faults=FaultPlan(**{faults!r}), seed=7,
                rate_limit_rps={rps!r}) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
    print(json.dumps({{"attempts": s.attempts, "faults": dict(s.fault_counts),
                      "bucket_log": s.bucket_log}}), flush=True)
"""

FAULTS = {"rate_limit": 0.10, "retry_after_s": 0.2, "server_error": 0.05, "unavailable": 0.05,
          "malformed": 0.01}


def run_once(n: int, concurrency: int, latency: float, faults: dict[str, float],
             rps: float | None) -> tuple[float, int, dict[str, Any]]:
    """One harness run of `n` examples; (wall seconds, requests sent, the server's stats)."""
    from harness.config import load_config
    from harness.running import Runner, plan

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"), latency=latency,
                                             faults=faults, rps=rps)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            write_project(t, base_url, n, concurrency)
            runner = Runner(plan(load_config(t / "c.yaml")), t / "run", use_cache=False)
            wall0 = time.perf_counter()
            counts = runner.execute()
            wall = time.perf_counter() - wall0
        out, _ = server.communicate("")
        stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
    stats["endpoint_failures"] = counts.endpoint_failures
    return wall, counts.requests, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--rps", type=float, default=40.0)
    ap.add_argument("--rps-requests", type=int, default=800)
    add_json_flag(ap)
    args = ap.parse_args()

    clean, _, _ = run_once(args.requests, args.concurrency, args.latency, {}, None)
    faulty, sent, stats = run_once(args.requests, args.concurrency, args.latency, FAULTS, None)
    a = {"requests": args.requests, "attempts": sent, "faults": stats["faults"],
         "endpoint_failures": stats["endpoint_failures"],
         "fault_free_s": round(clean, 2), "faulty_s": round(faulty, 2),
         "ratio": round(faulty / clean, 2), "target_ratio": 3.0}

    wall, sent, stats = run_once(args.rps_requests, args.concurrency, args.latency, {}, args.rps)
    log = stats["bucket_log"]
    start, end = log[0][0], log[-1][0]
    second_half = [ok for t, ok in log if t >= (start + end) / 2]
    span = end - (start + end) / 2
    b = {"R": args.rps, "examples": args.rps_requests, "attempts": len(log),
         "endpoint_failures": stats["endpoint_failures"],
         "wall_s": round(wall, 2),
         "achieved_per_s": round(sum(ok for _, ok in log) / (end - start), 1),
         "achieved_per_s_second_half": round(sum(second_half) / span, 1) if span > 0 else None,
         "share_429": round(sum(not ok for _, ok in log) / len(log), 4), "target_share": 0.05}
    emit("rate_limits", {"a_random_faults": a, "b_token_bucket": b}, args.json)


if __name__ == "__main__":
    main()
