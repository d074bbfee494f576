"""Requests per second on the embedded model (SmolLM2-135M via llama.cpp), zero-shot vs 8-shot,
with one server process using every core or several processes sharing them (`servers`).

Every request of an arm shares the system prompt (and, for few-shot, the examples), so the
server's prompt cache only evaluates the new user turn. Runs Banking77 (77 labels) by default.
Also prints what llama.cpp itself reaches in this process (prompt and generation tokens/s), the
ceiling the served figures compare with.

    python benchmarks/bench_local.py [--examples 40] [--servers 1,2] [--config configs/banking77.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]


def llama_cpp_ceiling(threads: int) -> dict[str, float]:
    """Tokens/s of llama.cpp in-process: one 300-token prompt, then 64 generated tokens."""
    import llama_cpp

    from harness.model.local_server import base_model_path

    llm = llama_cpp.Llama(str(base_model_path()), n_ctx=1024, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    prompt = llm.tokenize(("Classify the online-banking customer message. " * 30).encode())[:300]
    llm.eval(prompt[:32])  # the first evaluation pages the model in: keep it out of the timing
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    n = 0
    for token in llm.generate([], temp=0.0, reset=False):
        n += 1
        if n >= 64 or token == llm.token_eos():
            break
    t2 = time.perf_counter()
    return {"threads": threads, "prompt_tokens_per_s": round(len(prompt) / (t1 - t0)),
            "generated_tokens_per_s": round(n / (t2 - t1), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--config", default=str(ROOT / "configs" / "banking77.yaml"))
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--servers", default="1,2", help="server-process counts to compare")
    ap.add_argument("--shots", type=int, default=8)
    add_json_flag(ap)
    args = ap.parse_args()

    from harness.config import StrategyConfig, load_config, with_overrides
    from harness.running import Runner, plan, read_records

    cores = os.cpu_count() or 1
    base = with_overrides(load_config(args.config), limit=args.examples,
                          concurrency=args.concurrency)
    out: dict[str, Any] = {"config": args.config, "examples": args.examples, "cores": cores,
                           "llama_cpp_in_process": llama_cpp_ceiling(cores)}
    for servers in [int(s) for s in args.servers.split(",")]:
        models = {name: replace(m, servers=servers) if m.provider == "local" else m
                  for name, m in base.models.items()}
        for name, strategy in [
            ("zero_shot", StrategyConfig("zero-shot", "zero_shot", "local")),
            (f"few_shot_k{args.shots}", StrategyConfig("few-shot", "few_shot", "local",
                                                       shots=(args.shots,))),
        ]:
            cfg = replace(base, strategies=(strategy,), models=models)
            p = plan(cfg)
            with tempfile.TemporaryDirectory() as tmp:
                runner = Runner(p, Path(tmp) / "run", use_cache=False)
                t0 = time.perf_counter()
                counts = runner.execute()
                wall = time.perf_counter() - t0
                recs = read_records(Path(tmp) / "run")
            lat = sorted(r.latency_ms for r in recs)
            out[f"servers={servers} {name}"] = {
                "requests": counts.requests, "wall_s_incl_server_start": round(wall, 1),
                "requests_per_s": round(counts.requests / wall, 2),
                "generated_tokens_per_s": round(sum(r.completion_tokens or 0 for r in recs)
                                                / wall, 1),
                "mean_prompt_tokens": round(sum(r.prompt_tokens or 0 for r in recs) / len(recs)),
                "latency_p50_ms": round(lat[len(lat) // 2]),
                "accuracy": round(sum(r.correct for r in recs) / len(recs), 3),
            }
            print(json.dumps({f"servers={servers} {name}": out[f"servers={servers} {name}"]}),
                  flush=True)
    emit("local", out, args.json)


if __name__ == "__main__":
    main()
