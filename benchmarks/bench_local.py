"""Requests per second on the embedded model (SmolLM2-135M via llama.cpp), zero-shot vs 8-shot.

Every request of an arm shares the system prompt (and, for few-shot, the examples), so the
server's prompt cache only evaluates the new user turn. Runs Banking77 (77 labels) by default.

    python benchmarks/bench_local.py [--examples 40] [--config configs/banking77.yaml]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--config", default=str(ROOT / "configs" / "banking77.yaml"))
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()

    from harness.config import StrategyConfig, load_config, with_overrides
    from harness.running import Runner, plan

    base = with_overrides(load_config(args.config), limit=args.examples,
                          concurrency=args.concurrency)
    out = {}
    for name, strategy in [
        ("zero_shot", StrategyConfig("zero-shot", "zero_shot", "local")),
        ("few_shot_k8", StrategyConfig("few-shot", "few_shot", "local", shots=(8,))),
    ]:
        cfg = replace(base, strategies=(strategy,))
        p = plan(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(p, Path(tmp) / "run", use_cache=False)
            t0 = time.perf_counter()
            counts = runner.execute()
            wall = time.perf_counter() - t0
            from harness.running import read_records

            recs = read_records(Path(tmp) / "run")
        lat = sorted(r.latency_ms for r in recs)
        out[name] = {
            "requests": counts.requests, "wall_s_incl_server_start": round(wall, 1),
            "requests_per_s": round(counts.requests / wall, 2),
            "mean_prompt_tokens": round(sum(r.prompt_tokens or 0 for r in recs) / len(recs)),
            "latency_p50_ms": round(lat[len(lat) // 2]),
            "accuracy": round(sum(r.correct for r in recs) / len(recs), 3),
        }
    print(json.dumps({"config": args.config, "examples": args.examples, **out}, indent=2))


if __name__ == "__main__":
    main()
