"""Wall time and peak memory of `harness report` on a large synthetic run, without a model.

Synthesises a run folder (run.json + results.jsonl, written through the harness's own Record,
RunMeta and ResultStore) of N examples x 3 arms (zero-shot, few-shot k=4, fine-tuned) of a
77-label classification task: about 10% wrong answers and 1% endpoint failures per arm. Then
runs `harness report` on it in a child process and prints its wall time and peak RSS
(getrusage of the children, ru_maxrss).

    python benchmarks/bench_report_scale.py [--examples 100000] [--keep DIR] [--repeat 1]

It also times `python -c "import pandas, matplotlib.pyplot"` (the floor of any report) and
prints the ratio; a run under 10,000 examples is recorded as `report_small` (the issue-25
target: 800 records within 1.5x of that import), one under 50,000 as `report_scale` (60,000
records: under 3 s), a larger one as `report_large` (300,000 records: under 15 s).

With --keep the folder is written to DIR (and reused when it already holds a run of that size).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "runs" / "complete" / "run.json"
N_LABELS = 77
BASE_ID = "gpt-4o-mini"
FT_ID = "ft:gpt-4o-mini-2024-07-18:acme:router:1"
WORDS = ("card", "payment", "refund", "transfer", "pending", "declined", "exchange", "rate",
         "top", "up", "atm", "cash", "withdrawal", "pin", "blocked", "verify", "identity")


def synthesise(run_dir: Path, n: int, seed: int = 0) -> int:
    """Write run.json and results.jsonl of n examples x 3 arms into run_dir; the record count."""
    from harness.running.records import Record, RunMeta
    from harness.running.store import ResultStore, write_meta

    rng = random.Random(seed)
    labels = tuple(f"label_{i:02d}_{WORDS[i % len(WORDS)]}" for i in range(N_LABELS))
    base = RunMeta.from_dict(json.loads(FIXTURE.read_text(encoding="utf-8")))
    arm0 = base.arms[0]
    arms = (
        dataclasses.replace(arm0, key="zero-shot|k=0|draw=0", strategy="zero-shot",
                            type="zero_shot", model_id=BASE_ID, k=0, draw=0, shots=()),
        dataclasses.replace(arm0, key="few-shot|k=4|draw=0", strategy="few-shot",
                            type="few_shot", model_id=BASE_ID, k=4, draw=0,
                            shots=("1", "2", "3", "4")),
        dataclasses.replace(arm0, key="fine-tuned|k=0|draw=0", strategy="fine-tuned",
                            type="fine_tuned", model_id=FT_ID, k=0, draw=0, shots=()),
    )
    examples = tuple(str(i) for i in range(n))
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
              "required": ["label"], "additionalProperties": False}
    raw = dict(base.config_raw)
    raw["strategies"] = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
                         {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [4]},
                         {"name": "fine-tuned", "type": "fine_tuned", "model": "fake",
                          "fine_tuned_model": FT_ID}]
    models = {"fake": dataclasses.replace(base.models["fake"], model=BASE_ID)}
    meta = dataclasses.replace(
        base, labels=labels, output_schema=schema, arms=arms, examples=examples, models=models,
        config_raw=raw, dataset=dataclasses.replace(base.dataset, n_eval=n, eval_total=n),
        status="complete", counts={"records": 3 * n})
    run_dir.mkdir(parents=True, exist_ok=True)
    write_meta(run_dir, meta)
    gold = [labels[rng.randrange(N_LABELS)] for _ in range(n)]
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(n)]
    store = ResultStore(run_dir, sync_every=3600.0)
    count = 0
    try:
        # example by example, the arms interleaved, as a concurrent run writes them (so the
        # report has to sort them back into arm order)
        for i, ex in enumerate(examples):
            for arm, wrong_rate in zip(arms, (0.14, 0.10, 0.06), strict=True):
                roll = rng.random()
                kind: str | None = None
                error: str | None = None
                if roll < 0.01:  # the endpoint failed: no answer
                    kind, error, output, pred, finish = "timeout", "read timed out", "", None, None
                elif roll < 0.01 + wrong_rate:
                    pred = labels[rng.randrange(N_LABELS)]
                    output, finish = json.dumps({"label": pred}), "stop"
                    if rng.random() < 0.05:  # a sliver of unparsable answers
                        kind, error, output, pred = "invalid_json", "not JSON (x)", output[:-2], None
                else:
                    pred, output, finish = gold[i], json.dumps({"label": gold[i]}), "stop"
                ok = kind is None and pred == gold[i]
                parsed = kind is None
                store.append(Record(
                    arm=arm.key, strategy=arm.strategy, type=arm.type, model=arm.model,
                    model_id=arm.model_id, k=arm.k, draw=arm.draw, example_id=ex, input=texts[i],
                    expected=gold[i], prediction=pred, correct=ok, parse_ok=parsed,
                    schema_valid=parsed, error_kind=kind, error=error,
                    output=output, finish_reason=finish,
                    prompt_tokens=None if kind == "timeout" else 300 + 40 * arm.k + len(texts[i]) // 4,
                    completion_tokens=None if kind == "timeout" else 8,
                    cached_tokens=None if kind == "timeout" else (256 if rng.random() < 0.3 else 0),
                    latency_ms=round(rng.uniform(200, 1500), 2), attempts=1,
                    cached=rng.random() < 0.02, prompt_sha256=arm.prompt_sha256))
                count += 1
    finally:
        store.close()
    return count


def time_report(run_dir: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `python -m harness report run_dir` in a child process."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"harness report failed ({proc.returncode}):\n{proc.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    return wall, peak_kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, default=None, help="write the run folder here and keep it")
    ap.add_argument("--repeat", type=int, default=1, help="time the report this many times")
    add_json_flag(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        meta_path = run_dir / "run.json"
        reuse = (meta_path.exists() and
                 len(json.loads(meta_path.read_text(encoding="utf-8"))["examples"]) == args.examples)
        if reuse:
            print(f"reusing {run_dir}")
        else:
            t0 = time.perf_counter()
            n = synthesise(run_dir, args.examples)
            size = (run_dir / "results.jsonl").stat().st_size / 2**20
            print(f"synthesised {n} records ({size:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
        walls, peak = [], 0.0
        for _ in range(args.repeat):
            wall, peak = time_report(run_dir)
            walls.append(round(wall, 2))
            # ru_maxrss of the children is the largest child so far: the first run sets it
            print(f"harness report: {wall:.1f} s wall, peak RSS {peak:.0f} MiB "
                  f"({3 * args.examples} records)")
    # the reference of a small report: importing what any report needs, in a fresh process
    imports = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pandas, matplotlib.pyplot"], check=True)
        imports.append(round(time.perf_counter() - t0, 2))
    # report_small: the 800-record target; report_scale: 60k (< 3 s); report_large: 300k (< 15 s)
    name = ("report_small" if args.examples < 10_000 else
            "report_scale" if args.examples < 50_000 else "report_large")
    emit(name, {"records": 3 * args.examples, "report_wall_s": walls,
                "report_wall_min_s": min(walls), "peak_rss_mib": round(peak, 1),
                "import_pandas_matplotlib_min_s": min(imports),
                "report_over_import": round(min(walls) / min(imports), 2)},
         args.json)


if __name__ == "__main__":
    main()
