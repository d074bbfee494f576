"""Fine-tuning workflow: training data from `dataset.train`, validated, then an OpenAI job or a
local LoRA fine-tune of the embedded model, recorded in the registry.

Idempotent: the key is a hash of the training data + base model + hyperparameters; a finished
fine-tune with that key is reused and a pending OpenAI job with that key is attached to.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example, load_data, normalise, stratified_sample
from harness.errors import InputError
from harness.paths import cache_dir
from harness.prompts import OUTPUT_FORMAT, answer, resolve_template
from harness.registry import LOCAL_PREFIX, FineTune, Registry
from harness.store import write_json_atomic, write_text_atomic

Log = Callable[[str], None]
Progress = Callable[[int, int, float], None]
ROLES = {"system", "user", "assistant"}
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class TrainingData:
    """Chat fine-tuning examples, split, with their hash and token estimates."""

    train: tuple[dict[str, Any], ...]
    validation: tuple[dict[str, Any], ...]
    sha256: str
    tokens_per_example: float
    total_tokens: int


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """A rough token count (4 characters a token, plus per-message overhead)."""
    return sum(4 + len(m.get("content", "")) // 4 + 1 for m in messages) + 3


def _conversation(system: str, ex: Example) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": ex.input},
                         {"role": "assistant", "content": answer(ex.target)}]}


def _split(pool: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    if fraction <= 0 or len(pool) < 20:
        return list(pool), []
    val = stratified_sample(pool, max(1, round(len(pool) * fraction)), seed)
    ids = {ex.id for ex in val}
    return [ex for ex in pool if ex.id not in ids], val


def build_training_data(cfg: Config, strategy: StrategyConfig, data: Data) -> TrainingData:
    """Training and validation conversations from the train pool only, in OpenAI's format."""
    ft = cfg.finetune
    pool = list(data.train)
    if ft.per_label:
        pool = _per_label(pool, ft.per_label, ft.seed)
    train, val = _split(pool, ft.validation_fraction, ft.seed)
    rng = random.Random(ft.seed)
    rng.shuffle(train)
    template = resolve_template(cfg.task, strategy.prompts, fine_tuned=True,
                                where=f"strategies[{cfg.strategies.index(strategy)}]")
    system = template.system.format(instructions=cfg.task.instructions, output_format=OUTPUT_FORMAT)
    rows = tuple(_conversation(system, ex) for ex in train)
    vrows = tuple(_conversation(system, ex) for ex in val)
    blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows + vrows)
    tokens = [estimate_tokens(r["messages"]) for r in rows]
    return TrainingData(rows, vrows, hashlib.sha256(blob.encode()).hexdigest(),
                        sum(tokens) / max(1, len(tokens)), sum(tokens))


def _per_label(pool: Sequence[Example], n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    for label in sorted({ex.target for ex in pool}):
        group = [ex for ex in pool if ex.target == label]
        out += rng.sample(group, min(n, len(group)))
    return out


def validate_training_data(td: TrainingData, labels: Sequence[str], eval_inputs: set[str]) -> None:
    """The checks OpenAI would make, and ours: raise InputError naming the first problem."""
    if len(td.train) < 10:
        raise InputError(f"fine-tuning data: {len(td.train)} training examples; at least 10 needed")
    seen: set[str] = set()
    for i, row in enumerate(td.train + td.validation):
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise InputError(f"fine-tuning data: example {i} has no messages")
        for m in msgs:
            if m.get("role") not in ROLES:
                raise InputError(f"fine-tuning data: example {i} has unknown role {m.get('role')!r}")
        assistant = [m for m in msgs if m["role"] == "assistant"]
        if not assistant or not all(str(m.get("content", "")).strip() for m in assistant):
            raise InputError(f"fine-tuning data: example {i} has an empty assistant turn")
        user = " ".join(m["content"] for m in msgs if m["role"] == "user")
        if normalise(user) in eval_inputs:
            raise InputError(f"fine-tuning data: example {i} also appears in the eval set")
        if i < len(td.train):
            seen.add(json.loads(assistant[-1]["content"]).get("label", ""))
    missing = [lab for lab in labels if lab not in seen]
    if missing:
        raise InputError(f"fine-tuning data: no training example for label {missing[0]!r} "
                         f"({len(missing)} labels missing)")


def _hyper(cfg: Config, provider: str) -> dict[str, Any]:
    ft = cfg.finetune
    if provider == "openai":
        h: dict[str, Any] = {"n_epochs": ft.epochs, "batch_size": ft.batch_size,
                             "learning_rate_multiplier": ft.learning_rate_multiplier}
        return {k: (int(v) if k == "n_epochs" and float(v).is_integer() else v) for k, v in h.items()}
    return {"epochs": ft.epochs, "batch_size": 8 if ft.batch_size == "auto" else ft.batch_size,
            "learning_rate": ft.learning_rate, "rank": ft.rank, "alpha": ft.alpha,
            "max_length": ft.max_length, "seed": ft.seed}


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def finetune(cfg: Config, strategy_name: str | None = None, *, out: Path | None = None,
             progress: Progress | None = None, log: Log = lambda _m: None, force: bool = False,
             registry: Registry | None = None) -> FineTune:
    """Build and validate training data, then train (or reuse) the fine-tuned model."""
    strategy = _strategy(cfg, strategy_name)
    model = cfg.models[strategy.model]
    registry = registry or Registry()
    data = load_data(cfg)
    td = build_training_data(cfg, strategy, data)
    validate_training_data(td, data.labels, {normalise(ex.input) for ex in data.eval})
    name = str(strategy.fine_tuned_model).removeprefix(LOCAL_PREFIX)
    base = model.model
    hyper = _hyper(cfg, model.provider)
    key = hashlib.sha256(json.dumps([td.sha256, model.provider, base, hyper,
                                     cfg.finetune.suffix, cfg.finetune.seed],
                                    sort_keys=True).encode()).hexdigest()
    out = out or Path("reports") / f"{cfg.name}-finetune"
    write_text_atomic(out / "train.jsonl", _jsonl(td.train))
    write_text_atomic(out / "validation.jsonl", _jsonl(td.validation))
    log(f"training data: {len(td.train)} examples, {len(td.validation)} held out for validation, "
        f"~{td.tokens_per_example:.0f} tokens per example, ~{td.total_tokens} tokens in all "
        f"(files in {out}/)")
    existing = registry.find_key(key)
    if existing is not None and not force and (
        model.provider != "local" or (existing.adapter_path and Path(existing.adapter_path).exists())
    ):
        if existing.name != name:
            existing = FineTune(**{**asdict(existing), "name": name})
            registry.put(existing)
        log(f"reusing {existing.model_id}: same data, base model and settings (use --force to retrain)")
        return existing
    if model.provider == "local":
        entry = _train_local(name, key, td, hyper, cfg, progress, log)
    else:
        from harness.finetune_openai import run_openai_job

        entry = run_openai_job(model, name, key, out, hyper, cfg, td, log)
    registry.put(entry)
    return entry


def _strategy(cfg: Config, name: str | None) -> StrategyConfig:
    fts = [s for s in cfg.strategies if s.type == "fine_tuned"]
    if name is None:
        if not fts:
            raise InputError(f"{cfg.path}: no fine_tuned strategy to train")
        return fts[0]
    s = cfg.strategy(name)
    if s.type != "fine_tuned":
        raise InputError(f"--strategy: {name!r} is a {s.type} strategy, not fine_tuned")
    return s


def _train_local(name: str, key: str, td: TrainingData, hyper: dict[str, Any], cfg: Config,
                 progress: Progress | None, log: Log) -> FineTune:
    try:
        from harness import lora
    except ImportError as exc:  # pragma: no cover - import of the module itself is light
        raise InputError(f"local fine-tuning needs the finetune extra: {exc}") from None
    missing = [m for m in ("torch", "transformers", "peft", "gguf") if not _importable(m)]
    if missing:
        raise InputError(f"local fine-tuning needs {', '.join(missing)}: "
                         "pip install -e '.[local,finetune]'")
    settings = lora.LoraSettings(
        epochs=float(hyper["epochs"]), batch_size=int(hyper["batch_size"]),
        learning_rate=float(hyper["learning_rate"]), rank=int(hyper["rank"]),
        alpha=float(hyper["alpha"]), max_length=int(hyper["max_length"]), seed=int(hyper["seed"]))
    path = cache_dir() / "adapters" / f"{name}-{key[:12]}.gguf"
    log(f"fine-tuning SmolLM2-135M-Instruct with LoRA (rank {settings.rank}) on the CPU: "
        f"{len(td.train)} examples, {settings.epochs:g} epochs")
    result = lora.train_lora([r["messages"] for r in td.train], path, settings, progress=progress)
    log(f"trained {result.steps} steps in {result.seconds:.0f} s ({result.seconds_per_step:.2f} s/step), "
        f"final loss {result.final_loss:.4f}; adapter {path}")
    return FineTune(
        name=name, model_id=LOCAL_PREFIX + name, provider="local",
        base_model=str(lora.base_model_path().name), data_sha256=td.sha256, hyperparameters=hyper,
        trained_tokens=int(result.trained_tokens), training_cost_usd=0.0,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), adapter_path=str(path), key=key,
        extra={"steps": result.steps, "seconds": round(result.seconds, 1),
               "seconds_per_step": round(result.seconds_per_step, 3),
               "final_loss": round(result.final_loss, 4)},
    )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def pending_jobs_path() -> Path:
    """Where OpenAI jobs that have not finished yet are remembered (key -> job id)."""
    return cache_dir() / "pending_jobs.json"


def load_pending() -> dict[str, str]:
    """Pending job ids by fine-tune key."""
    path = pending_jobs_path()
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def save_pending(pending: dict[str, str]) -> None:
    """Persist pending job ids."""
    write_json_atomic(pending_jobs_path(), pending)


def backoff_intervals(start: float, cap: float = 60.0) -> Any:
    """Polling intervals: start, growing by half each time, up to cap."""
    delay = start
    while True:
        yield delay
        delay = min(cap, delay * 1.5)


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")

