"""Wall time and peak memory of a whole `harness run` at scale against a loopback endpoint.

N examples x 3 zero-shot arms (three prompt variants) of a 4-label task, answered by the
loopback server (tests/fake_openai.py, its own process, no latency). `harness run` runs in a
child process, response cache and reports included, and this prints its wall time, requests
per second and peak RSS (getrusage of the waited-for child, ru_maxrss).

    python benchmarks/bench_run_scale.py [--examples 100000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from loopback_project import LABELS, loopback_server
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
with FakeOpenAI() as s:
    s.requests = type("Drop", (list,), {{"append": lambda self, x: None}})()  # keep no bodies
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


def write_project(folder: Path, base_url: str, n: int, concurrency: int) -> Path:
    """eval.csv with n messages; a config with three zero-shot prompt variants."""
    with open(folder / "eval.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "category"])
        w.writerows([f"{LABELS[i % 4]}\nmessage number {i}", LABELS[i % 4]] for i in range(n))
    cfg = {
        "name": "scale",
        "task": {"type": "classification", "instructions": "Route it.", "labels": LABELS},
        "dataset": {"eval": "eval.csv", "input": "text", "target": "category"},
        "models": {"m": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                         "api_key_env": None}},
        "strategies": [{"name": "zs", "type": "zero_shot", "model": "m", "variants": {
            "plain": {}, "terse": {"system": "Labels: {labels}. {instructions}"},
            "polite": {"system": "Please route this message. {instructions} Labels: {labels}"}}}],
        "run": {"concurrency": concurrency, "max_failure_rate": 1.0},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "c.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=64)
    add_json_flag(ap)
    args = ap.parse_args()
    with (loopback_server(SERVER.format(tests=str(ROOT / "tests"))) as base_url,
          tempfile.TemporaryDirectory() as tmp):
        t = Path(tmp)
        cfg = write_project(t, base_url, args.examples, args.concurrency)
        env = {**os.environ, "HARNESS_CACHE_DIR": str(t / "cache"),
               "HARNESS_HISTORY": str(t / "history.jsonl")}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness", "run", str(cfg), "--out",
                               str(t / "run")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(t / "run" / "results.jsonl", encoding="utf-8") as f:
            records = sum(1 for _ in f)
    emit("run_scale", {
        "examples": args.examples, "arms": 3, "records": records, "exit_code": done.returncode,
        "wall_s": round(wall, 1), "requests_per_s": round(records / wall, 1),
        "peak_rss_mib": round(peak_mib, 1),
        **({"stderr_tail": done.stderr[-400:]} if done.returncode else {}),
    }, args.json)


if __name__ == "__main__":
    main()
