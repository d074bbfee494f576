"""Sequential evaluation against an oracle: the same verdict for fewer requests?

A loopback server (tests/fake_openai.py) answers Banking77 messages with known accuracy per arm:
each (model, number of shots, message) is right or wrong by a hash, so every arm's accuracy over
the eval is fixed in advance, and the arms' errors are correlated as real arms' are (with
probability RHO an arm's draw for a message is the message's shared difficulty, else its own).

    zero-shot 0.55 · few-shot k = 1, 2, 4, 8: 0.60, 0.64, 0.66, 0.665 · fine-tuned 0.90

The same config runs twice as `harness run --no-cache` subprocesses: every example for every arm
(the fixed-size design), then with `run.sequential` (looks every 50 examples per arm). The record
holds both runs' requests, wall time and verdict, and whether the verdicts agree; issue 26's
target is at most half the requests for the same verdict.

    python benchmarks/bench_sequential.py [--examples 2000] [--latency 0.01] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from loopback_project import loopback_server
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "datasets" / "banking77"

SERVER = """
import csv, hashlib, json, sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI, last_user_content
RHO = 0.6
ACCURACY = {{0: 0.55, 1: 0.60, 2: 0.64, 4: 0.66, 8: 0.665}}
FINE_TUNED = {{"ft:oracle": 0.90}}
with open({eval!r}, newline="") as f:
    TRUTH = {{row["text"]: row["category"] for row in csv.DictReader(f)}}
LABELS = sorted(set(TRUTH.values()))

def u(*parts):
    h = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(h[:12], 16) / 16 ** 12

def responder(body):
    text = last_user_content(body).strip()
    shots = sum(m.get("role") == "user" for m in body["messages"]) - 1
    model = body["model"]
    accuracy = FINE_TUNED.get(model, ACCURACY.get(shots, 0.55))
    arm = (model, shots)
    draw = u("shared", text) if u("coin", arm, text) < RHO else u("own", arm, text)
    label = TRUTH.get(text, LABELS[0])
    if draw >= accuracy:  # a wrong label, fixed per arm and message
        others = [x for x in LABELS if x != label]
        label = others[int(u("wrong", arm, text) * len(others))]
    return json.dumps({{"label": label}})

with FakeOpenAI(responder=responder, latency_s={latency}) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


def write_project(folder: Path, base_url: str, examples: int, concurrency: int) -> Path:
    """The eval (the first `examples` rows of Banking77's test split), the train pool, the
    config; the config's path."""
    with (DATA / "test.csv").open(encoding="utf-8", newline="") as f:
        rows = list(itertools.islice(csv.reader(f), examples + 1))  # rows, not lines: a
    with (folder / "eval.csv").open("w", encoding="utf-8", newline="") as f:  # message may
        csv.writer(f).writerows(rows)  # hold a line break
    cfg: dict[str, Any] = {
        "name": "oracle",
        "task": {"type": "classification",
                 "instructions": "Classify the online-banking customer message into one intent.",
                 "labels": str(DATA / "labels.json")},
        "dataset": {"eval": "eval.csv", "train": str(DATA / "train.csv"), "input": "text",
                    "target": "category"},
        "models": {"m": {"provider": "openai", "model": "oracle", "base_url": base_url,
                         "api_key_env": None}},
        "strategies": [
            {"name": "zero-shot", "type": "zero_shot", "model": "m"},
            {"name": "few-shot", "type": "few_shot", "model": "m", "shots": [1, 2, 4, 8],
             "selection": "stratified", "draws": 1},
            {"name": "fine-tuned", "type": "fine_tuned", "model": "m",
             "fine_tuned_model": "ft:oracle"},
        ],
        "run": {"concurrency": concurrency, "max_tokens": 32},
    }
    (folder / "fixed.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    cfg["run"]["sequential"] = {"enabled": True, "look_every": 50, "min_examples": 50}
    (folder / "sequential.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False),
                                            encoding="utf-8")
    return folder


def run_once(folder: Path, name: str) -> dict[str, Any]:
    """`harness run NAME.yaml --no-cache`: its requests, wall time and verdict."""
    out = folder / name
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(folder / f"{name}.yaml"),
                           "--out", str(out), "--no-cache"], capture_output=True, text=True,
                          env={**os.environ, "HARNESS_HISTORY": str(folder / "history.jsonl")},
                          check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"error: the {name} run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    by_arm: dict[str, int] = {}
    with (out / "results.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            key = f"{record['strategy']}@{record.get('k')}" if record.get("k") else record[
                "strategy"]
            by_arm[key] = by_arm.get(key, 0) + 1
    verdict = summary.get("recommendation") or {}
    return {"requests": sum(by_arm.values()), "by_arm": by_arm, "wall_s": round(wall, 2),
            "verdict": verdict.get("verdict") or "withheld: " + "; ".join(
                summary.get("recommendation_withheld") or []),
            "sentence": verdict.get("sentence"),
            "arms": summary.get("arms", []),
            "sequential": summary.get("sequential")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.01)
    ap.add_argument("--concurrency", type=int, default=16)
    add_json_flag(ap)
    args = ap.parse_args()
    script = SERVER.format(tests=str(ROOT / "tests"), eval=str(DATA / "test.csv"),
                           latency=args.latency)
    with loopback_server(script) as base_url, tempfile.TemporaryDirectory() as tmp:
        folder = write_project(Path(tmp), base_url, args.examples, args.concurrency)
        fixed = run_once(folder, "fixed")
        seq = run_once(folder, "sequential")
    settled = seq["sequential"] or {}
    emit("sequential", {
        "examples": args.examples, "arms": len(fixed["by_arm"]),
        "fixed_requests": fixed["requests"], "sequential_requests": seq["requests"],
        "request_share": round(seq["requests"] / fixed["requests"], 3),
        "fixed_wall_s": fixed["wall_s"], "sequential_wall_s": seq["wall_s"],
        "fixed_verdict": fixed["verdict"], "sequential_verdict": seq["verdict"],
        "same_verdict": fixed["verdict"] == seq["verdict"],
        "fixed_sentence": fixed["sentence"], "sequential_sentence": seq["sentence"],
        "fixed_by_arm": fixed["by_arm"], "sequential_by_arm": seq["by_arm"],
        "settled": settled.get("settled"),
        "comparisons": [{k: c.get(k) for k in ("kind", "first", "second", "state", "settled_at_look",
                                              "estimate", "low", "high")}
                        for c in settled.get("comparisons", [])],
    }, args.json)


if __name__ == "__main__":
    main()
