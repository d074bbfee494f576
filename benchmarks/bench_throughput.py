"""Throughput and per-request CPU cost of the harness against a loopback endpoint.

The loopback server (tests/fake_openai.py) runs in a separate process and answers every request
after a fixed latency (default 100 ms), so the ideal rate is concurrency / latency. The harness's
own CPU time per request is this process's CPU time divided by the requests it sent.

    python benchmarks/bench_throughput.py [--requests 1600] [--concurrency 16] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from loopback_project import loopback_server, write_project
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
with FakeOpenAI(latency_s={latency}) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1600)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1)
    add_json_flag(ap)
    args = ap.parse_args()

    from harness.config import load_config
    from harness.running import Runner, plan

    with (loopback_server(SERVER.format(tests=str(ROOT / "tests"), latency=args.latency)) as base_url,
          tempfile.TemporaryDirectory() as tmp):
        t = Path(tmp)
        n = args.requests
        write_project(t, base_url, n, args.concurrency)
        p = plan(load_config(t / "c.yaml"))
        runner = Runner(p, t / "run", use_cache=False)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        counts = runner.execute()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    ideal = args.concurrency / args.latency
    rate = counts.requests / wall
    emit("throughput", {
        "requests": counts.requests, "concurrency": args.concurrency, "latency_s": args.latency,
        "wall_s": round(wall, 2), "requests_per_s": round(rate, 1), "ideal_per_s": round(ideal, 1),
        "fraction_of_ideal": round(rate / ideal, 3),
        "harness_cpu_ms_per_request": round(1000 * cpu / counts.requests, 2),
    }, args.json)


if __name__ == "__main__":
    main()
