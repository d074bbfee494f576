"""Resuming: may the run in a folder be continued with this config, and if not, what differs.

Only what determines the answers must match: the task (labels, output schema, instructions),
the data (file contents, fields, limit and seed), the models (provider, model id, endpoint,
structured-output mode, context size), the strategies and their prompt texts, and the sampling
parameters (temperature, max_tokens, seed). Everything else may change between attempts: a
comment, `run.concurrency` lowered after 429s, rate limits, timeouts, retry settings, prices,
`decision`, `gate` and `finetune` settings. The new values of those are used from then on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.running.records import RunMeta
from harness.running.store import META, read_meta

# Model settings that do not change an answer.
# (`servers`: how many local server processes share the work; `base_urls`: the replicas;
# `mode`: online or batch, the same answers either way.)
_MODEL_FREE = ("timeout", "price", "api_key_env", "servers", "base_urls", "mode")
_RUN_ANSWER_KEYS = ("temperature", "max_tokens", "seed")


def _model(m: Any) -> Any:
    if not isinstance(m, dict):
        return m
    out = {k: v for k, v in m.items() if k not in _MODEL_FREE}
    if isinstance(out.get("base_url"), list) and out["base_url"]:
        out["base_url"] = out["base_url"][0]  # replicas may come and go; the first names them
    return out


def _models(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {name: _model(m) for name, m in raw.items()}
    if isinstance(raw, list):
        return [_model(m) for m in raw]
    return raw


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """`value` spread over dotted keys (`models.gpt.model`, `strategies[1].shots`)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(f"{prefix}[{i}]", v, out)
    else:
        out[prefix] = value


# Where the data files are does not change an answer; what they hold does (compared by hash).
_PATHS = ("dataset.eval", "dataset.train")
_ANALYSIS_ONLY = ("dataset.cluster",)  # changes how answers are analysed, not the answers


def answer_keys(meta: RunMeta) -> dict[str, Any]:
    """Everything about a run that determines its answers, by a dotted name for messages.

    Read from the raw config (`RunMeta.config_raw`, the one reader of it): the check compares
    what the two config files say, key by key, whatever the harness version that wrote them."""
    raw = meta.config_raw
    run = raw.get("run") or {}
    out: dict[str, Any] = {}
    _flat("task", raw.get("task"), out)
    _flat("dataset", raw.get("dataset"), out)
    _flat("models", _models(raw.get("models")), out)
    _flat("strategies", raw.get("strategies"), out)
    for key in (*_PATHS, *_ANALYSIS_ONLY):
        out.pop(key, None)
    out["task.labels (contents)"] = list(meta.labels)
    out["task.output_schema (contents)"] = meta.output_schema
    out["dataset.eval (contents)"] = meta.dataset.sha256
    for key in _RUN_ANSWER_KEYS:
        out[f"run.{key}"] = run.get(key) if isinstance(run, dict) else None
    for arm in meta.arms:
        out[f"arm {arm.key}"] = {"model_id": arm.model_id, "prompt_sha256": arm.prompt_sha256,
                                 "shots": list(arm.shots)}
    return out


def differences(old: RunMeta, new: RunMeta) -> list[str]:
    """The answer-determining keys whose values differ between two runs' metadata."""
    a, b = answer_keys(old), answer_keys(new)
    return [k for k in {**a, **b} if a.get(k) != b.get(k)]


def check_resumable(run_dir: Path, meta: RunMeta) -> RunMeta | None:
    """The run already in `run_dir` when `meta` may continue it, else None for a folder with no
    run; an InputError naming the differing keys for a folder holding a different run."""
    if not (run_dir / META).exists():
        return None
    old = read_meta(run_dir)
    diff = differences(old, meta)
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise InputError(
            f"{run_dir} holds a run whose answers this config would not reproduce (differs in: "
            f"{shown}); choose another --out folder, or undo those changes to resume"
        )
    return old
