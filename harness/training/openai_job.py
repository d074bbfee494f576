"""Fine-tuning through an OpenAI-compatible API: upload, create the job, poll, register."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai

from harness.config import Config, ModelConfig
from harness.errors import FatalAPIError, InputError, RunError
from harness.model.endpoint import api_key, short_message
from harness.model.pricing import price_of, training_cost
from harness.model.registry import FineTune
from harness.training.data import TrainingData
from harness.training.pending import (
    TERMINAL,
    Log,
    backoff_intervals,
    load_pending,
    now_iso,
    save_pending,
)


def _client(model: ModelConfig) -> openai.OpenAI:
    key = api_key(model) or "unused"
    return openai.OpenAI(api_key=key, base_url=model.base_url, max_retries=3, timeout=model.timeout)


def _method(hyper: dict[str, Any]) -> dict[str, Any]:
    return {"type": "supervised", "supervised": {"hyperparameters": dict(hyper)}}


def run_openai_job(model: ModelConfig, name: str, key: str, out: Path, hyper: dict[str, Any],
                   cfg: Config, td: TrainingData, log: Log) -> FineTune:
    """Upload the files, create (or attach to) the job, poll it to the end, return the entry."""
    client = _client(model)
    pending = load_pending()
    try:
        job_id = pending.get(key)
        if job_id is not None:
            log(f"attaching to the running job {job_id} (same data and settings)")
        else:
            train_file = _upload(client, out / "train.jsonl")
            val_file = _upload(client, out / "validation.jsonl") if td.validation else None
            kwargs: dict[str, Any] = {"model": model.model, "training_file": train_file,
                                      "method": _method(hyper), "seed": cfg.finetune.seed}
            if val_file:
                kwargs["validation_file"] = val_file
            if cfg.finetune.suffix:
                kwargs["suffix"] = cfg.finetune.suffix
            job = client.fine_tuning.jobs.create(**kwargs)
            job_id = job.id
            pending[key] = job_id
            save_pending(pending)
            log(f"created fine-tuning job {job_id} for {model.model}")
        job = _poll(client, job_id, cfg.finetune.poll_interval, log)
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise FatalAPIError(f"models.{model.name}: {short_message(exc)}") from None
    except openai.BadRequestError as exc:
        raise InputError(f"fine-tuning job rejected: {short_message(exc)}") from None
    except openai.APIConnectionError as exc:
        raise RunError(f"cannot reach {client.base_url}: {short_message(exc)}") from None
    pending.pop(key, None)
    save_pending(pending)
    if job.status != "succeeded":
        err = getattr(job, "error", None)
        msg = getattr(err, "message", None) or "no error message"
        raise RunError(f"fine-tuning job {job_id} {job.status}: {msg}")
    price = price_of(model, model.model)  # the configured price first, as in the reports
    trained = int(job.trained_tokens or 0)
    cost = training_cost(price, trained) if price is not None and trained else None
    log(f"job {job_id} succeeded: {job.fine_tuned_model} ({trained} trained tokens"
        + (f", ~${cost:.2f}" if cost is not None else "") + ")")
    return FineTune(
        name=name, model_id=str(job.fine_tuned_model), provider="openai", base_model=model.model,
        data_sha256=td.sha256, hyperparameters=hyper, trained_tokens=trained,
        training_cost_usd=cost, created_at=now_iso(), job_id=job_id, key=key,
    )


def training_estimate(model: ModelConfig, hyper: dict[str, Any], td: TrainingData) -> str:
    """One line: estimated billed tokens (training-file tokens x epochs) and, where a training
    price is known (the configured `price:` first, then the built-in table), the cost."""
    epochs = hyper.get("n_epochs", 1)
    billed = round(td.total_tokens * float(epochs))
    price = price_of(model, model.model)
    cost = training_cost(price, billed) if price is not None else None
    line = (f"estimate for a fine-tuning job on {model.model} ({model.provider}): ~{td.total_tokens} "
            f"tokens x {epochs:g} epochs = ~{billed} trained tokens")
    if cost is not None and price is not None:
        return line + f", ~${cost:.2f} at ${price.training_per_m:g} per 1M training tokens"
    return line + (f"; cost unknown: no training price for {model.model} "
                   f"(set models.{model.name}.price.training)")


def _upload(client: openai.OpenAI, path: Path) -> str:
    with open(path, "rb") as f:
        return client.files.create(file=f, purpose="fine-tune").id


def _poll(client: openai.OpenAI, job_id: str, interval: float, log: Log) -> Any:
    seen: set[str] = set()
    status = None
    for delay in backoff_intervals(interval):
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status != status:
            status = job.status
            log(f"job {job_id}: {status}")
        events = client.fine_tuning.jobs.list_events(job_id, limit=20)
        for ev in reversed(list(events.data)):
            if ev.id not in seen:
                seen.add(ev.id)
                log(f"  {ev.message}")
        if job.status in TERMINAL:
            return job
        time.sleep(delay)
    raise AssertionError("unreachable")
