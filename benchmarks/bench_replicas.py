"""Replicated endpoints: one loopback replica against two, each of fixed capacity.

Each replica (tests/fake_openai.py in its own process) serves at most `--slots` requests at a
time, `--latency` seconds each, like one GPU server; the harness sends `--requests` zero-shot
requests at `--concurrency`, as `harness run` does (plan + Runner, no cache). Prints the wall
time with one replica, with two (`base_url` as a list), the speed-up (target about 2x), and how
the requests were spread over the two.

    python benchmarks/bench_replicas.py [--requests 400] [--concurrency 16] [--slots 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from loopback_project import write_project
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
with FakeOpenAI(latency_s={latency}, slots={slots}) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


def start_server(latency: float, slots: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests"), latency=latency,
                                             slots=slots)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def run_once(urls: list[str], n: int, concurrency: int) -> tuple[float, Counter[str]]:
    """Wall seconds of one harness run over `urls`, and the requests each replica answered."""
    import yaml

    from harness.config import load_config
    from harness.running import Runner, plan, read_records

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = write_project(Path(tmp), urls[0], n, concurrency)
        data = yaml.safe_load(cfg_path.read_text())
        data["models"]["m"]["base_url"] = urls if len(urls) > 1 else urls[0]
        cfg_path.write_text(yaml.safe_dump(data))
        runner = Runner(plan(load_config(cfg_path)), Path(tmp) / "run", use_cache=False)
        t0 = time.perf_counter()
        runner.execute()
        wall = time.perf_counter() - t0
        served = Counter(r.replica or urls[0] for r in read_records(Path(tmp) / "run"))
    return wall, served


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.1)
    add_json_flag(ap)
    args = ap.parse_args()
    servers = [start_server(args.latency, args.slots) for _ in range(2)]
    try:
        urls = [url for _, url in servers]
        one, _ = run_once(urls[:1], args.requests, args.concurrency)
        two, served = run_once(urls, args.requests, args.concurrency)
    finally:
        for proc, _ in servers:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)
    ideal = args.requests * args.latency / args.slots
    emit("replicas", {
        "requests": args.requests, "concurrency": args.concurrency,
        "replica_capacity": f"{args.slots} at a time, {args.latency * 1000:.0f} ms each",
        "one_replica_s": round(one, 2), "ideal_one_s": round(ideal, 2),
        "two_replicas_s": round(two, 2), "ideal_two_s": round(ideal / 2, 2),
        "speedup": round(one / two, 2),
        "share_per_replica": [round(served[u] / args.requests, 3) for u in urls],
    }, args.json)


if __name__ == "__main__":
    main()
