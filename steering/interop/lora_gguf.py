"""A ``peft`` LoRA adapter as a llama.cpp adapter file, so ``llama-server --lora`` serves the fine-tuned model.

llama.cpp's LoRA GGUF: ``general.type = "adapter"``, ``adapter.type = "lora"``, the base model's
``general.architecture``, and per adapted weight ``<gguf name>.lora_a`` (``r x in``, peft's ``lora_A``)
and ``<gguf name>.lora_b`` (``out x r``, peft's ``lora_B``). llama.cpp multiplies by
``alpha / r`` when ``adapter.lora.alpha`` is non-zero and by nothing when it is zero; we fold each
module's own peft scaling into ``lora_b`` and write alpha 0, so modules with different ranks or
alphas come out right.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import InvalidArgumentError, ModelFileError, ShapeMismatchError, require

PEFT_PREFIX = "base_model.model."
MAX_BASE_ERROR = 0.5  # relative difference between the HF weight and the GGUF's (quantized) copy


def export_lora_gguf(model: Any, path: str | os.PathLike[str], *, base_gguf: str | os.PathLike[str]) -> Path:
    """Write ``model``'s active LoRA weights as a llama.cpp LoRA adapter for the model in ``base_gguf``.

    Each adapted weight's name is mapped with gguf's own table for the base file's architecture, and
    the base weight is compared with the GGUF's copy of it: a weight the converter stored transformed
    (llama's rotary permutation of q/k, fused projections) is refused, not served wrong.
    """
    gguf: Any = require("gguf", "gguf", "Writing a LoRA adapter for llama.cpp")
    layers = _lora_layers(model)
    if not layers:
        raise InvalidArgumentError(
            f"{type(model).__name__} has no LoRA layers: pass a peft model (peft.get_peft_model or "
            "PeftModel.from_pretrained) with a LoRA adapter."
        )
    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    names = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in names:
        raise ModelFileError(f"{str(base_gguf)!r} has architecture {arch!r}, which gguf does not know.")
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    table = gguf.get_tensor_name_map(names[arch], n_blocks)
    base = {t.name: t for t in reader.tensors}
    tensors: list[tuple[str, np.ndarray]] = []
    for hf_name, layer in layers:
        name = table.get_name(hf_name + ".weight", try_suffixes=(".weight",))
        if name is None or name not in base:
            raise ShapeMismatchError(
                f"LoRA on {hf_name!r} has no weight in {str(base_gguf)!r} (gguf name {name!r}): adapt modules "
                "that the GGUF stores one to one (attention and MLP projections), or check the base file."
            )
        _check_base(layer.base_layer.weight, base[name], hf_name, gguf)
        adapter = layer.active_adapters[0]
        a = layer.lora_A[adapter].weight.detach().float()
        b = layer.lora_B[adapter].weight.detach().float() * float(layer.scaling[adapter])
        tensors += [(name + ".lora_a", a.numpy()), (name + ".lora_b", b.numpy())]

    def write(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # scaling already in lora_b
        for name, data in tensors:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return atomic_write(path, write)


def _lora_layers(model: Any) -> list[tuple[str, Any]]:
    out = []
    for name, module in model.named_modules():
        if not (hasattr(module, "lora_A") and hasattr(module, "base_layer") and module.active_adapters):
            continue
        adapter = module.active_adapters[0]
        extras = (getattr(module, key, {}) for key in ("lora_embedding_A", "lora_magnitude_vector"))
        if any(adapter in extra for extra in extras):
            raise InvalidArgumentError(
                f"{name} carries an embedding LoRA or DoRA weights, which llama.cpp's adapter format has no place "
                "for: train plain LoRA on linear layers (LoraConfig(use_dora=False), no embedding targets)."
            )
        if adapter in module.lora_A:
            out.append((name.removeprefix(PEFT_PREFIX), module))
    return out


def _field(reader: Any, key: str) -> str:
    field = reader.fields.get(key)
    if field is None:
        raise ModelFileError(f"The base GGUF has no {key!r}; is it a llama.cpp model file?")
    value = field.parts[field.data[0]]
    return bytes(value).decode() if value.dtype == np.uint8 else str(value[0])


def _check_base(weight: torch.Tensor, tensor: Any, hf_name: str, gguf: Any) -> None:
    ours = weight.detach().float().numpy()
    theirs = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type))
    if theirs.shape != ours.shape:
        raise ShapeMismatchError(
            f"{hf_name}: the model's weight is {tuple(ours.shape)}, the GGUF's {tensor.name} is "
            f"{tuple(theirs.shape)}: the adapter was trained on another model than this GGUF holds."
        )
    error = float(np.linalg.norm(theirs - ours) / max(float(np.linalg.norm(ours)), 1e-12))
    if error > MAX_BASE_ERROR:
        raise ShapeMismatchError(
            f"{hf_name}: the GGUF's {tensor.name} differs from the model's weight by {error:.0%} (relative), "
            "more than quantization explains: the converter stored it transformed (e.g. llama's rotary "
            "permutation of q_proj/k_proj), or the GGUF is another model. Adapt other modules "
            "(v_proj, o_proj, the MLP), or convert with llama.cpp's convert_lora_to_gguf.py."
        )
