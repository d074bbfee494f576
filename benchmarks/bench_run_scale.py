"""Wall time and peak memory of a whole `harness run` at scale against a loopback endpoint.

N examples x 3 zero-shot arms (three prompt variants) of a 4-label task, answered by the
loopback server (tests/fake_openai.py, its own process, no latency). `harness run` runs in a
child process, response cache and reports included, and this prints its wall time, requests
per second and peak RSS (getrusage of the waited-for child, ru_maxrss).

    python benchmarks/bench_run_scale.py [--examples 100000] [--concurrency 64] [--rerun]

With --rerun it then runs the same config again into a new folder, every answer from the
response cache, and records that as `cached_rerun` (the issue-25 target: 10,000 requests,
i.e. --examples 3334, in under 3 s).
"""

from __future__ import annotations

import argparse
import csv
import os
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


def _timed_run(cfg: Path, out: Path, env: dict[str, str]) -> tuple[float, float, int, str]:
    """`harness run CFG --out OUT` in a child: (wall s, its peak RSS MiB, exit code, stderr)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "harness", "run", str(cfg), "--out",
                                  str(out)], env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, child.returncode, err.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rerun", action="store_true", help="then run the same config again into "
                    "a new folder, every answer from the response cache (recorded as "
                    "`cached_rerun`)")
    add_json_flag(ap)
    args = ap.parse_args()
    with (loopback_server(SERVER.format(tests=str(ROOT / "tests"))) as base_url,
          tempfile.TemporaryDirectory() as tmp):
        t = Path(tmp)
        cfg = write_project(t, base_url, args.examples, args.concurrency)
        env = {**os.environ, "HARNESS_CACHE_DIR": str(t / "cache"),
               "HARNESS_HISTORY": str(t / "history.jsonl")}
        wall, peak_mib, code, stderr = _timed_run(cfg, t / "run", env)
        with open(t / "run" / "results.jsonl", encoding="utf-8") as f:
            records = sum(1 for _ in f)
        emit("run_scale", {
            "examples": args.examples, "arms": 3, "records": records, "exit_code": code,
            "wall_s": round(wall, 1), "requests_per_s": round(records / wall, 1),
            "peak_rss_mib": round(peak_mib, 1),
            **({"stderr_tail": stderr[-400:]} if code else {}),
        }, args.json)
        if not args.rerun:
            return
        wall, peak_mib, code, stderr = _timed_run(cfg, t / "rerun", env)
        with open(t / "rerun" / "results.jsonl", encoding="utf-8") as f:
            cached = sum(1 for line in f if '"cached": true' in line or '"cached":true' in line)
    emit("cached_rerun", {
        "examples": args.examples, "arms": 3, "records": records, "cached_records": cached,
        "exit_code": code, "wall_s": round(wall, 2), "peak_rss_mib": round(peak_mib, 1),
        "target": "< 3 s for 10,000 requests",
        **({"stderr_tail": stderr[-400:]} if code else {}),
    }, args.json)


if __name__ == "__main__":
    main()
