"""Fine-tuning workflow: training data from `dataset.train`, validated, then an OpenAI job or a
local LoRA fine-tune of the embedded model, recorded in the registry.

Idempotent: the key is a hash of the training data + base model + hyperparameters; a finished
fine-tune with that key is reused and a pending OpenAI job with that key is attached to.

A `fine_tuned_model` of the provider-id form (`ft:...`, OpenAI's) names an existing model: it is
never trained, looked up in or registered into the registry. Before a paid job (any provider but
local) starts, the training estimate is logged and `confirm` (when given) must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Example, load_data, normalise
from harness.errors import InputError, RunError
from harness.files import write_text_atomic
from harness.model.registry import LOCAL_PREFIX, FineTune, Registry, is_raw_model_id
from harness.paths import cache_dir
from harness.running.plan import Plan, plan
from harness.strategies import is_fine_tuned
from harness.tasks import gold_reader, make_task
from harness.training.data import (
    CONVERSATION_RULE,
    TrainingData,
    build_training_data,
    jsonl,
    validate_training_data,
)
from harness.training.identity import hyperparameters, identity
from harness.training.openai_job import (
    JobSpec,
    TrainingEstimate,
    cancel_job,
    reuse_provider_job,
    run_openai_job,
    training_estimate,
)
from harness.training.pending import Log, load_pending

Progress = Callable[[int, int, float], None]
Confirm = Callable[[str], bool]


def finetune(cfg: Config, strategy_name: str | None = None, *, out: Path | None = None,
             progress: Progress | None = None, log: Log = lambda _m: None, force: bool = False,
             registry: Registry | None = None, confirm: Confirm | None = None,
             train: tuple[Example, ...] | None = None, extra: dict[str, Any] | None = None
             ) -> FineTune:
    """Build and validate training data, then train (or reuse) the fine-tuned model.

    Before a new paid job (provider not local) the estimate is logged and passed to `confirm`;
    a False answer raises RunError and starts nothing. Without `confirm` the job starts (the
    caller's consent: e.g. `train_if_missing: true` in the config). Reusing a finished model or
    attaching to a running job costs nothing new and asks nothing.

    `train` replaces the training pool (harness distill: a teacher's labels), checked for
    leakage into the eval set as the pool is, but not for covering every label (a teacher may
    never give one); `extra` is kept in the registry entry.
    """
    strategy = _strategy(cfg, strategy_name)
    model = cfg.models[strategy.model]
    registry = registry or Registry()
    data = load_data(cfg, gold_reader(cfg.task))
    if train is not None:
        data = replace(data, train=train)
    task = make_task(cfg.task, data.labels)
    td = build_training_data(cfg, strategy, data, task)
    # a teacher's labels (train given) need not cover every label: distill warns about those
    validate_training_data(td, data.labels if train is None else (),
                           {normalise(ex.input) for ex in data.eval}, task)
    ident = identity(cfg, strategy, data, task, td)
    name = str(strategy.fine_tuned_model).removeprefix(LOCAL_PREFIX)
    hyper = hyperparameters(cfg, model.provider)
    key = ident.key
    out = out or Path("reports") / f"{cfg.name}-finetune"
    write_text_atomic(out / "train.jsonl", jsonl(td.train))
    write_text_atomic(out / "validation.jsonl", jsonl(td.validation))
    log(f"training data: {len(td.train)} examples, {len(td.validation)} held out for validation, "
        f"~{td.tokens_per_example:,.0f} tokens per example, ~{td.total_tokens:,} tokens in all "
        f"(files in {out}/)")
    existing = registry.find_key(key) or registry.find_key(ident.legacy_key)
    if existing is not None and not force and (
        model.provider != "local" or (existing.adapter_path and Path(existing.adapter_path).exists())
    ):
        if existing.name != name or existing.key != key:  # under this name (and the current key)
            existing = replace(existing, name=name, key=key, recipe=ident.recipe)
            registry.put(existing)
        log(f"reusing {existing.model_id}: same data, base model and settings, entry "
            f"{key[:12]} (use --force to retrain)")
        return existing
    if model.provider == "local":
        entry = _train_local(name, key, td, hyper, cfg, progress, log)
    else:
        job = JobSpec(model, name, key, out, hyper, cfg, td)
        found = reuse_provider_job(job, log) if not force else None
        if found is None:
            if key not in load_pending():  # a job already running was confirmed when it started
                estimate = training_estimate(model, hyper, td)
                log(estimate.line)
                check_training_cap(cfg, estimate)
                if confirm is not None and not confirm(estimate.line):
                    raise RunError("fine-tuning not confirmed: no job started")
            found = run_openai_job(job, log)
        entry = found
    entry = replace(entry, rule=CONVERSATION_RULE, recipe=ident.recipe,
                    extra={**entry.extra, **(extra or {})})
    registry.put(entry)
    return entry


def cancel(cfg: Config, strategy_name: str | None = None, *, log: Log = lambda _m: None
           ) -> str | None:
    """`harness finetune --cancel`: cancel the provider's running job for this config's
    strategy (found in the pending list, else by its identity in the jobs' metadata) through
    the jobs API; the job id, or None when none runs."""
    strategy = _strategy(cfg, strategy_name)
    model = cfg.models[strategy.model]
    if model.provider == "local":
        raise InputError(f"--cancel: {strategy.name} trains locally; there is no provider job "
                         "to cancel (Ctrl-C stops a local fine-tune)")
    data = load_data(cfg, gold_reader(cfg.task))
    ident = identity(cfg, strategy, data, make_task(cfg.task, data.labels))
    return cancel_job(cfg, model, ident.key, log)


def check_training_cap(cfg: Config, estimate: TrainingEstimate) -> None:
    """Refuse (InputError) an estimate above `finetune.max_cost_usd`, or one whose cost is
    unknown while a cap is set."""
    cap = cfg.finetune.max_cost_usd
    if cap is None:
        return
    if estimate.cost_usd is None:
        raise InputError(f"finetune.max_cost_usd is ${cap:g} but the job's cost is unknown "
                         f"({estimate.line}); set the training price so that the cap can be checked")
    if estimate.cost_usd > cap:
        raise InputError(f"finetune.max_cost_usd: the estimate ~${estimate.cost_usd:,.2f} is above "
                         f"the cap ${cap:g}; no job started")


def _strategy(cfg: Config, name: str | None) -> StrategyConfig:
    """The strategy to train: the named one, else the first fine_tuned one with a registry name."""
    fts = [s for s in cfg.strategies if is_fine_tuned(s.type)]
    if name is None:
        if not fts:
            raise InputError(f"{cfg.path}: no fine_tuned strategy to train")
        s = next((x for x in fts if not is_raw_model_id(x.fine_tuned_model)), fts[0])
    else:
        s = cfg.strategy(name)
        if not is_fine_tuned(s.type):
            raise InputError(f"--strategy: {name!r} is a {s.type} strategy, not fine_tuned")
    if is_raw_model_id(s.fine_tuned_model):
        raise InputError(_raw_id_problem(cfg, s, "harness finetune does not train over it"))
    return s


def _raw_id_problem(cfg: Config, s: StrategyConfig, what: str) -> str:
    return (f"{cfg.path}: strategies[{cfg.strategies.index(s)}] ({s.name}): fine_tuned_model "
            f"{s.fine_tuned_model!r} is a provider model id, which names an existing model; "
            f"{what}. To train a new model, give it a name: "
            "fine_tuned_model: {name: NAME, train_if_missing: true}")


def _train_local(name: str, key: str, td: TrainingData, hyper: dict[str, Any], cfg: Config,
                 progress: Progress | None, log: Log) -> FineTune:
    from harness.training import lora  # light: torch and friends load inside its functions

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
        f"final step loss {result.final_loss:.4f}, mean over the last epoch "
        f"({result.last_epoch_steps} steps) {result.last_epoch_mean_loss:.4f}; adapter {path}")
    return FineTune(
        name=name, model_id=LOCAL_PREFIX + name, provider="local",
        base_model=str(lora.base_model_path().name), data_sha256=td.sha256, hyperparameters=hyper,
        trained_tokens=int(result.trained_tokens), training_cost_usd=0.0,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), adapter_path=str(path), key=key,
        extra={"steps": result.steps, "seconds": round(result.seconds, 1),
               "seconds_per_step": round(result.seconds_per_step, 3),
               "final_loss": round(result.final_loss, 4),
               "last_epoch_mean_loss": round(result.last_epoch_mean_loss, 4)},
    )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None




def ensure_fine_tunes(p: Plan, *, progress: Progress | None = None, log: Log = lambda _m: None,
                      registry: Registry | None = None) -> Plan:
    """Train the fine-tunes a plan is missing whose strategy says `train_if_missing` (locally or
    through the provider's fine-tuning API, as `finetune` does); return the plan again with them
    (the same plan when nothing was trained). The config's `train_if_missing: true` is the
    consent to a paid job: the estimate is logged, nothing is asked."""
    cfg = p.cfg
    for s in cfg.strategies:
        if is_fine_tuned(s.type) and s.train_if_missing and is_raw_model_id(s.fine_tuned_model):
            raise InputError(_raw_id_problem(cfg, s, "train_if_missing cannot train it"))
    trained = False
    for s in cfg.strategies:
        arm = next((x.arm for x in p.strategies if x.arm.strategy == s.name), None)
        if is_fine_tuned(s.type) and s.train_if_missing and arm is not None and arm.unavailable:
            log(f"fine-tuned model {s.fine_tuned_model!r} is missing: training it first")
            entry = finetune(cfg, s.name, progress=progress, log=log, registry=registry)
            log(f"registered {entry.name} -> {entry.model_id}")
            trained = True
    return plan(cfg, registry) if trained else p
