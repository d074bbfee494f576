"""What identifies a fine-tuned model: the base model, the training data and the settings that
change the weights. One place computes it, for training (reuse, the provider job's metadata)
and for a run (which registry entry a config's fine-tuned arm evaluates).

`finetune.suffix` and `poll_interval` change no weight and are left out: two configs that
differ only in them name the same model. The key of the first registry format (which hashed
the suffix too) is still recognised, so entries trained before stay usable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data
from harness.model.registry import FineTune, Registry
from harness.strategies.prompts import resolve_template, system_prompt
from harness.tasks import Task
from harness.training.data import CONVERSATION_RULE, TrainingData, build_training_data

METADATA_KEY = "harness_key"  # the provider job's metadata field that holds the identity key


@dataclass(frozen=True)
class Identity:
    """The identity of the model a config's fine_tuned strategy trains."""

    key: str  # data + provider + base model + weight-changing settings
    legacy_key: str  # the same with the suffix, as the first registry format hashed it
    recipe: str  # everything but the training examples (matches distilled entries)
    data: TrainingData


def hyperparameters(cfg: Config, provider: str) -> dict[str, Any]:
    """The training settings sent to the provider (OpenAI) or to the local LoRA trainer."""
    ft = cfg.finetune
    if provider == "openai":
        h: dict[str, Any] = {"n_epochs": ft.epochs, "batch_size": ft.batch_size,
                             "learning_rate_multiplier": ft.learning_rate_multiplier}
        return {k: (int(v) if k == "n_epochs" and float(v).is_integer() else v) for k, v in h.items()}
    return {"epochs": ft.epochs, "batch_size": 8 if ft.batch_size == "auto" else ft.batch_size,
            "learning_rate": ft.learning_rate, "rank": ft.rank, "alpha": ft.alpha,
            "max_length": ft.max_length, "seed": ft.seed}


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def identity(cfg: Config, strategy: StrategyConfig, data: Data, task: Task,
             td: TrainingData | None = None) -> Identity:
    """The identity of what `harness finetune` trains for `strategy` on `data.train` (or `td`)."""
    td = td or build_training_data(cfg, strategy, data, task)
    model = cfg.models[strategy.model]
    hyper = hyperparameters(cfg, model.provider)
    seed = cfg.finetune.seed
    template = resolve_template(cfg.task, strategy.prompts, fine_tuned=True,
                                where=f"strategies[{cfg.strategies.index(strategy)}]",
                                task_fields=frozenset(task.prompt_fields()))
    frame = {"system": system_prompt(template, cfg.task.instructions, task), "user": template.user}
    return Identity(
        key=_sha([td.sha256, model.provider, model.model, hyper, seed]),
        legacy_key=_sha([td.sha256, model.provider, model.model, hyper, cfg.finetune.suffix, seed]),
        recipe=_sha([model.provider, model.model, hyper, seed, frame, CONVERSATION_RULE]),
        data=td)


@dataclass(frozen=True)
class Resolution:
    """Which registry entry a fine-tuned arm evaluates, or why none fits."""

    entry: FineTune | None
    problem: str | None = None
    note: str | None = None  # how it was matched, for the run's log


def resolve(registry: Registry, name: str, ident: Identity, hint: str) -> Resolution:
    """The entry called `name` that this config's training would produce.

    Matched by key (or the legacy key); a distilled entry, whose labels no config reproduces,
    by recipe (the newest). Never another config's model: entries of the name with other
    contents give a problem that says so.
    """
    entries = registry.entries(name)
    match = next((e for e in reversed(entries) if e.key in (ident.key, ident.legacy_key)), None)
    if match is not None:
        return Resolution(match, note=f"entry {match.key[:12]} (trained "
                          f"{match.created_at} on this config's data and settings)")
    distilled = [e for e in entries if e.distilled and e.recipe == ident.recipe]
    if distilled:
        e = distilled[-1]
        return Resolution(e, note=f"entry {e.key[:12]}, distilled from "
                          f"{e.extra.get('distilled_from')} on {e.created_at} with this "
                          "config's model, prompts and settings")
    if not entries:
        return Resolution(None, f"fine-tuned model {name!r} is not available; {hint}")
    old = [e for e in entries if e.rule < CONVERSATION_RULE and not e.distilled]
    if old:
        why = (f"the registry's {name!r} was trained before training conversations used the "
               "prompt templates the evaluation sends (its training-data hash no longer "
               "matches this config's); evaluating it would measure prompts it never saw")
    else:
        seen = "; ".join(f"base {e.base_model}, data {e.data_sha256[:12]}, settings "
                         f"{json.dumps(e.hyperparameters, sort_keys=True)}, {e.created_at}"
                         for e in entries[-3:])
        why = (f"the registry's {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} named "
               f"{name!r} {'was' if len(entries) == 1 else 'were'} trained on other data or "
               f"settings than this config's ({seen}); "
               f"this config's would be data {ident.data.sha256[:12]}")
    return Resolution(None, f"{why}; {hint}")
