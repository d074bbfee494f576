"""Fine-tuning through an OpenAI-compatible API: upload, create the job, poll, register.

Every job carries its identity key in its metadata (`harness_key`), so that a second identical
request reuses the provider's finished model (or attaches to its running job) even when the
local registry and pending list are gone. The SDK's own retries are off: one policy (the
endpoint's RetryPolicy over `is_retryable`, with the config's run.max_attempts) retries every
call. Ctrl-C while a job runs says that the job goes on (and bills) at the provider, and how to
cancel it or re-attach.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
from tenacity import Retrying, retry_if_exception

from harness.config import Config, ModelConfig
from harness.errors import FatalAPIError, InputError, RunError
from harness.model.endpoint import RetryPolicy, api_key, short_message
from harness.model.faults import is_retryable
from harness.model.pricing import price_of, training_cost
from harness.model.registry import FineTune
from harness.training.data import TrainingData
from harness.training.identity import METADATA_KEY
from harness.training.pending import (
    TERMINAL,
    Log,
    backoff_intervals,
    load_pending,
    now_iso,
    save_pending,
)

T = TypeVar("T")


class FineTuneInterrupted(RunError):
    """Ctrl-C or SIGTERM while a provider's job runs: the job itself goes on."""

    exit_code = 130


@dataclass(frozen=True)
class JobSpec:
    """Everything one fine-tuning job is made from."""

    model: ModelConfig
    name: str
    key: str
    out: Path
    hyper: dict[str, Any]
    cfg: Config
    td: TrainingData


@dataclass(frozen=True)
class TrainingEstimate:
    """The estimated billed tokens and cost (None: no training price) of a job, and its line."""

    billed_tokens: int
    cost_usd: float | None
    line: str


def _client(model: ModelConfig) -> openai.OpenAI:
    key = api_key(model) or "unused"
    return openai.OpenAI(api_key=key, base_url=model.base_url, max_retries=0, timeout=model.timeout)


def _call(cfg: Config, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One API call under the harness's one retry policy (transient faults only)."""
    policy = RetryPolicy(cfg.run.max_attempts, cfg.run.max_wait, cfg.run.max_retry_after)
    for attempt in Retrying(retry=retry_if_exception(is_retryable), wait=policy.wait,
                            stop=policy.stop, reraise=True):
        with attempt:
            return fn(*args, **kwargs)
    raise AssertionError("unreachable")


def _method(hyper: dict[str, Any]) -> dict[str, Any]:
    return {"type": "supervised", "supervised": {"hyperparameters": dict(hyper)}}


def _api_errors(model: ModelConfig, client: openai.OpenAI, what: Callable[[], T]) -> T:
    try:
        return what()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise FatalAPIError(f"models.{model.name}: {short_message(exc)}") from None
    except openai.BadRequestError as exc:
        raise InputError(f"fine-tuning job rejected: {short_message(exc)}") from None
    except openai.APIConnectionError as exc:
        raise RunError(f"cannot reach {client.base_url}: {short_message(exc)}") from None


def reuse_provider_job(job: JobSpec, log: Log) -> FineTune | None:
    """The provider's finished model for this identity (found by the job metadata's key), or
    None. A job of this identity still running is remembered as pending, to be attached to."""
    if job.key in load_pending():
        return None
    client = _client(job.model)

    def find() -> Any:
        page = _call(job.cfg, client.fine_tuning.jobs.list, limit=100)
        found = None
        for j in page.data:
            meta = getattr(j, "metadata", None) or {}
            if meta.get(METADATA_KEY) == job.key and j.status not in ("failed", "cancelled"):
                found = found or j  # the list is newest first
        return found

    found = _api_errors(job.model, client, find)
    if found is None:
        return None
    if found.status != "succeeded":
        pending = load_pending()
        pending[job.key] = found.id
        save_pending(pending)
        return None
    log(f"reusing {found.fine_tuned_model}: the provider's job {found.id} was trained from the "
        "same data, base model and settings (found by its metadata)")
    return _entry(job, found, found.id)


def run_openai_job(job: JobSpec, log: Log) -> FineTune:
    """Upload the files, create (or attach to) the job, poll it to the end, return the entry."""
    model, cfg = job.model, job.cfg
    client = _client(model)
    pending = load_pending()
    job_id = pending.get(job.key)

    def create() -> str:
        train_file = _upload(cfg, client, job.out / "train.jsonl")
        val_file = _upload(cfg, client, job.out / "validation.jsonl") if job.td.validation else None
        kwargs: dict[str, Any] = {"model": model.model, "training_file": train_file,
                                  "method": _method(job.hyper), "seed": cfg.finetune.seed,
                                  "metadata": {METADATA_KEY: job.key, "harness_name": job.name}}
        if val_file:
            kwargs["validation_file"] = val_file
        if cfg.finetune.suffix:
            kwargs["suffix"] = cfg.finetune.suffix
        return str(_call(cfg, client.fine_tuning.jobs.create, **kwargs).id)

    if job_id is not None:
        log(f"attaching to the running job {job_id} (same data and settings)")
    else:
        job_id = _api_errors(model, client, create)
        pending[job.key] = job_id
        save_pending(pending)
        log(f"created fine-tuning job {job_id} for {model.model}")
    try:
        done = _api_errors(model, client, lambda: _poll(cfg, client, job_id, log))
    except KeyboardInterrupt:
        raise FineTuneInterrupted(
            f"interrupted: the fine-tuning job {job_id} keeps running (and billing) at the "
            f"provider. Cancel it with: harness finetune {cfg.path} --cancel; or run the same "
            "harness finetune command again to re-attach to it") from None
    pending = load_pending()
    pending.pop(job.key, None)
    save_pending(pending)
    if done.status != "succeeded":
        err = getattr(done, "error", None)
        msg = getattr(err, "message", None) or "no error message"
        raise RunError(f"fine-tuning job {job_id} {done.status}: {msg}")
    entry = _entry(job, done, job_id)
    log(f"job {job_id} succeeded: {entry.model_id} ({entry.trained_tokens:,} trained tokens"
        + (f", ~${entry.training_cost_usd:.2f}" if entry.training_cost_usd is not None else "") + ")")
    return entry


def cancel_job(cfg: Config, model: ModelConfig, key: str, log: Log) -> str | None:
    """Cancel the running job of this identity at the provider (the jobs API); its id, or None
    when there is none."""
    client = _client(model)
    pending = load_pending()
    job_id = pending.get(key)
    if job_id is None:
        def find() -> str | None:
            page = _call(cfg, client.fine_tuning.jobs.list, limit=100)
            return next((j.id for j in page.data if (getattr(j, "metadata", None) or {}).get(
                METADATA_KEY) == key and j.status not in TERMINAL), None)
        job_id = _api_errors(model, client, find)
    if job_id is None:
        return None
    jid = job_id
    done = _api_errors(model, client, lambda: _call(cfg, client.fine_tuning.jobs.cancel, jid))
    pending.pop(key, None)
    save_pending(pending)
    log(f"fine-tuning job {jid}: {done.status}")
    return jid


def _entry(job: JobSpec, done: Any, job_id: str) -> FineTune:
    price = price_of(job.model, job.model.model)  # the configured price first, as in the reports
    trained = int(done.trained_tokens or 0)
    cost = training_cost(price, trained) if price is not None and trained else None
    return FineTune(
        name=job.name, model_id=str(done.fine_tuned_model), provider="openai",
        base_model=job.model.model, data_sha256=job.td.sha256, hyperparameters=job.hyper,
        trained_tokens=trained, training_cost_usd=cost, created_at=now_iso(), job_id=job_id,
        key=job.key)


def training_estimate(model: ModelConfig, hyper: dict[str, Any], td: TrainingData) -> TrainingEstimate:
    """Estimated billed tokens (training-file tokens x epochs) and, where a training price is
    known (the configured `price:` first, then the built-in table), the cost."""
    epochs = hyper.get("n_epochs", 1)
    billed = round(td.total_tokens * float(epochs))
    price = price_of(model, model.model)
    cost = training_cost(price, billed) if price is not None else None
    line = (f"estimate for a fine-tuning job on {model.model} ({model.provider}): "
            f"~{td.total_tokens:,} tokens x {epochs:g} epochs = ~{billed:,} trained tokens")
    if cost is not None and price is not None:
        line += f", ~${cost:.2f} at ${price.training_per_m:g} per 1M training tokens"
    else:
        line += (f"; cost unknown: no training price for {model.model} "
                 f"(set models.{model.name}.price.training)")
    return TrainingEstimate(billed, cost, line)


def _upload(cfg: Config, client: openai.OpenAI, path: Path) -> str:
    def send() -> str:
        with open(path, "rb") as f:
            return str(client.files.create(file=f, purpose="fine-tune").id)
    return _call(cfg, send)


def _poll(cfg: Config, client: openai.OpenAI, job_id: str, log: Log) -> Any:
    seen: set[str] = set()
    status = None
    for delay in backoff_intervals(cfg.finetune.poll_interval):
        job = _call(cfg, client.fine_tuning.jobs.retrieve, job_id)
        if job.status != status:
            status = job.status
            log(f"job {job_id}: {status}")
        events = _call(cfg, client.fine_tuning.jobs.list_events, job_id, limit=20)
        for ev in reversed(list(events.data)):
            if ev.id not in seen:
                seen.add(ev.id)
                log(f"  {ev.message}")
        if job.status in TERMINAL:
            return job
        time.sleep(delay)
    raise AssertionError("unreachable")
