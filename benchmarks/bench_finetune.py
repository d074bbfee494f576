"""Benchmark the local LoRA fine-tune (harness.lora) on a stratified subset of Banking77 train.

Prints seconds per optimiser step and per epoch, training tokens/s, the loss curve's end and the
sequence lengths; with ``--eval N`` it also scores N test messages with llama.cpp
(JSON-schema-constrained output, the label set as an enum) for the base model and for the base
plus the trained adapter, with the same prompt the harness uses for fine-tuned models::

    python benchmarks/bench_finetune.py --labels 8 --per-label 25 --epochs 2
    python benchmarks/bench_finetune.py --per-label 20 --epochs 2 --eval 200

The prompt is the harness's fine-tuned system prompt (the task instructions and the JSON output
format, without the 77-label list, which would make every sequence ~600 tokens long).  The base
model is also scored with the zero-shot prompt that lists the labels (``--no-list-baseline``
skips that).  Timings on shared 2-core machines vary from run to run; the load average is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.training import lora  # noqa: E402

INSTRUCTIONS = "Classify the online-banking customer message into exactly one intent."
FT_SYSTEM = INSTRUCTIONS + '\nAnswer with JSON only: {"label": "<label>"}'
LIST_SYSTEM = (
    INSTRUCTIONS + "\n\nLabels: {labels}\n\nAnswer with JSON only, exactly in the form "
    '{{"label": "<label>"}} where the label is one of the labels above.'
)


def data_dir() -> Path:
    """Banking77 inside the repository, else the shared copy next to it."""
    for candidate in (ROOT / "datasets" / "banking77", ROOT.parent / "shared/datasets/banking77"):
        if (candidate / "train.csv").is_file():
            return candidate
    raise SystemExit("Banking77 not found in datasets/banking77 or ../shared/datasets/banking77")


def read_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["text"], row["category"]) for row in csv.DictReader(f)]


def conversation(system: str, text: str, label: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    if label is not None:
        messages.append({"role": "assistant", "content": json.dumps({"label": label})})
    return messages


def pick_labels(rows: list[tuple[str, str]], n_labels: int, seed: int) -> list[str]:
    labels = sorted({label for _, label in rows})
    if n_labels >= len(labels):
        return labels
    return sorted(random.Random(seed).sample(labels, n_labels))


def stratified(
    rows: list[tuple[str, str]], labels: list[str], per_label: int, seed: int
) -> list[tuple[str, str]]:
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    chosen = []
    for label in labels:
        group = list(by_label[label])
        rng.shuffle(group)
        chosen.extend(group[:per_label])
    rng.shuffle(chosen)
    return chosen


def evaluate(
    adapter: Path | None, system: str, test: list[tuple[str, str]], labels: list[str]
) -> tuple[float, float]:
    """(accuracy, seconds per request) with JSON-schema-constrained greedy decoding."""
    import llama_cpp

    extra = {"lora_path": str(adapter)} if adapter is not None else {}
    llm = llama_cpp.Llama(
        model_path=str(lora.base_model_path()),
        n_ctx=2048,
        n_threads=os.cpu_count() or 2,
        seed=0,
        verbose=False,
        **extra,
    )
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
    }
    correct = 0
    started = time.perf_counter()
    try:
        for text, label in test:
            reply = llm.create_chat_completion(
                messages=conversation(system, text),
                temperature=0,
                max_tokens=32,
                response_format={"type": "json_object", "schema": schema},
            )
            try:
                got = json.loads(reply["choices"][0]["message"]["content"]).get("label")
            except (json.JSONDecodeError, AttributeError):
                got = None
            correct += got == label
    finally:
        llm.close()
    return correct / len(test), (time.perf_counter() - started) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-label", type=int, default=10, help="training examples per label")
    parser.add_argument("--labels", type=int, default=77, help="how many intents (seeded pick)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=lora.LoraSettings.learning_rate)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument(
        "--targets",
        default=",".join(lora.LoraSettings.target_modules),
        help="comma-separated module names",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", type=int, default=0, help="score N test messages (0: skip)")
    parser.add_argument("--no-list-baseline", action="store_true")
    parser.add_argument("--adapter-only", action="store_true", help="skip both base-model arms")
    parser.add_argument("--out", type=Path, help="keep the adapter here")
    add_json_flag(parser)
    args = parser.parse_args()

    folder = data_dir()
    train_rows = read_rows(folder / "train.csv")
    labels = pick_labels(train_rows, args.labels, args.seed)
    train = stratified(train_rows, labels, args.per_label, args.seed)
    examples = [conversation(FT_SYSTEM, text, label) for text, label in train]
    settings = lora.LoraSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        rank=args.rank,
        alpha=args.alpha,
        max_length=args.max_length,
        seed=args.seed,
        precision=args.precision,
        target_modules=tuple(args.targets.split(",")),
    )
    print(f"data: {folder}; {len(labels)} labels x {args.per_label} = {len(examples)} examples")
    print(f"settings: {settings}")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "adapter.gguf"
        last = [time.perf_counter()]

        def progress(step: int, total: int, loss: float) -> None:
            now = time.perf_counter()
            if step == 1 or step == total or step % 10 == 0:
                note = " incl. loading the model" if step == 1 else ""
                print(
                    f"  step {step}/{total} loss {loss:.4f} ({now - last[0]:.2f} s{note})",
                    flush=True,
                )
            last[0] = now

        cpu = time.process_time()
        result = lora.train_lora(examples, out, settings, progress=progress)
        cpu = time.process_time() - cpu
        steps_per_epoch = len(examples) / settings.batch_size
        loop = result.seconds_per_step * result.steps
        print(f"steps: {result.steps} ({result.epochs:.2f} epochs)")
        print(f"seconds per step: {result.seconds_per_step:.2f}")
        print(f"seconds per epoch: {result.seconds_per_step * steps_per_epoch:.1f}")
        print(f"training tokens/s: {result.trained_tokens / loop:.0f}")
        print(f"total seconds (load + train + export): {result.seconds:.1f}; CPU seconds {cpu:.0f}")
        print(f"first loss {result.losses[0]:.4f}; final loss {result.final_loss:.4f}")
        print(f"adapter: {out.stat().st_size / 1e6:.1f} MB")
        tokenizer = lora._load_base(lora.base_model_path())[0]  # cached by train_lora
        encoded = lora.encode_examples(tokenizer, examples, 10**6)
        lengths = [len(ids) for ids, _ in encoded]
        answer = [len(ids) - start for ids, start in encoded]
        print(
            f"sequence tokens: min {min(lengths)} mean {statistics.mean(lengths):.1f} max "
            f"{max(lengths)} (max_length {args.max_length}); answer tokens incl. <|im_end|>: "
            f"mean {statistics.mean(answer):.1f}"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        figures: dict[str, object] = {
            "examples": len(examples), "steps": result.steps, "epochs": round(result.epochs, 2),
            "seconds_per_step": round(result.seconds_per_step, 2),
            "training_tokens_per_s": round(result.trained_tokens / loop),
            "total_s": round(result.seconds, 1), "cpu_s": round(cpu),
            "first_loss": round(result.losses[0], 4), "final_loss": round(result.final_loss, 4),
            "adapter_mb": round(out.stat().st_size / 1e6, 1)}

        if args.eval:
            test_rows = [row for row in read_rows(folder / "test.csv") if row[1] in set(labels)]
            test = random.Random(args.seed).sample(test_rows, min(args.eval, len(test_rows)))
            arms = [("base, fine-tune prompt", None, FT_SYSTEM), ("LoRA adapter", out, FT_SYSTEM)]
            if args.adapter_only:
                arms = arms[1:]
            elif not args.no_list_baseline:
                listed = LIST_SYSTEM.format(labels=", ".join(labels))
                arms.insert(1, ("base, zero-shot prompt listing the labels", None, listed))
            print(f"accuracy on {len(test)} test messages (JSON schema with the label enum):")
            for name, adapter, system in arms:
                accuracy, per_request = evaluate(adapter, system, test, labels)
                print(f"  {name}: {accuracy:.3f} ({per_request:.2f} s/request)", flush=True)
                figures[f"accuracy {name}"] = round(accuracy, 3)
        emit("finetune", figures, args.json)


if __name__ == "__main__":
    main()
