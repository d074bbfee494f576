"""Writing a trained peft LoRA as a llama.cpp adapter GGUF (see `harness.training.lora`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

#: HF module suffix -> llama.cpp tensor name inside a block.
HF_TO_GGUF: dict[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}

_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn\.[a-z_]+|mlp\.[a-z_]+)$")

def gguf_tensor_name(hf_module: str) -> str:
    """Map a transformers module name to the llama.cpp weight it adapts.

    ``model.layers.3.self_attn.v_proj`` (with or without peft's ``base_model.model.`` prefix)
    becomes ``blk.3.attn_v.weight``.
    """
    match = _LAYER_RE.search(hf_module)
    if match is None or match.group(2) not in HF_TO_GGUF:
        raise ValueError(f"no llama.cpp tensor for module {hf_module!r}")
    return f"blk.{match.group(1)}.{HF_TO_GGUF[match.group(2)]}.weight"


def permute_rope_rows(rows: Any, n_head: int) -> Any:
    """Reorder the output rows of a q/k projection the way llama.cpp's converter does.

    Within each head the HF layout ``[x0..x(d/2-1), y0..y(d/2-1)]`` becomes interleaved
    ``[x0, y0, x1, y1, ...]``.  Works on numpy arrays and torch tensors of shape ``(n_out, ...)``.
    """
    n_out = rows.shape[0]
    if n_out % (2 * n_head):
        raise ValueError(f"{n_out} rows cannot be split into {n_head} heads of pairs")
    rest = tuple(rows.shape[1:])
    return rows.reshape(n_head, 2, n_out // n_head // 2, *rest).swapaxes(1, 2).reshape(n_out, *rest)


def adapter_tensors(model: Any, n_head: int, n_head_kv: int) -> dict[str, tuple[Any, Any]]:
    """``{base tensor name: (lora_a, lora_b)}`` as float32 numpy arrays in llama.cpp's layout."""
    import numpy as np

    tensors: dict[str, tuple[Any, Any]] = {}
    for name, module in model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or "default" not in lora_a:
            continue
        a = lora_a["default"].weight.detach().float().cpu().numpy()
        b = module.lora_B["default"].weight.detach().float().cpu().numpy()
        target = gguf_tensor_name(name)
        if ".attn_q." in target:
            b = permute_rope_rows(b, n_head)
        elif ".attn_k." in target:
            b = permute_rope_rows(b, n_head_kv)
        tensors[target] = (np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32))
    if not tensors:
        raise ValueError("the model carries no LoRA weights")
    return tensors


def export_adapter_gguf(model: Any, out_path: Path, alpha: float, base_gguf: Path) -> Path:
    """Write the LoRA weights of a peft model as a llama.cpp adapter GGUF, atomically.

    Every tensor name and shape is checked against the base GGUF, as llama.cpp would at load.
    """
    import gguf

    reader = gguf.GGUFReader(base_gguf)
    base_shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}

    def field_int(key: str) -> int:
        return int(reader.fields[key].contents())

    arch = str(reader.fields["general.architecture"].contents())
    tensors = adapter_tensors(
        model,
        field_int(f"{arch}.attention.head_count"),
        field_int(f"{arch}.attention.head_count_kv"),
    )
    for name, (a, b) in tensors.items():
        if name not in base_shapes:
            raise ValueError(f"{name} is not a tensor of {base_gguf.name}")
        # ggml ne order is numpy's reversed: W ne=[n_in, n_out], A ne=[n_in, r], B ne=[r, n_out]
        if base_shapes[name] != [a.shape[1], b.shape[0]] or a.shape[0] != b.shape[1]:
            raise ValueError(f"{name}: LoRA shapes {a.shape} {b.shape} do not fit the base tensor")

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, arch=arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        writer.add_name("SmolLM2-135M-Instruct LoRA adapter (harness)")
        for name in sorted(tensors):
            a, b = tensors[name]
            writer.add_tensor(f"{name}.lora_a", a)
            writer.add_tensor(f"{name}.lora_b", b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return out_path
