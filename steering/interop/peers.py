"""Vectors made by other steering libraries, converted without pickle.

- repeng ``ControlVector``: the object (``model_type``, ``directions``), or its GGUF export;
- steering-vectors ``SteeringVector``: the object (``layer_activations``, ``layer_type``);
- IBM activation-steering / AISteer360 ``.svec``: JSON ``{"model_type", "directions", "explained_variances"}``.

Each tool's layer ``L`` is our layer ``L``: repeng 0.4 and IBM's activation-steering read a
non-negative layer ``L`` from ``hidden_states[L + 1]`` (their ``hidden_idx = layer + 1``), the output
of ``model.layers[L]``, and add the vector to that same block's output; steering-vectors hooks
``model.layers[L]`` for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..errors import VectorFileError
from ..fileformat import load_json
from ..vector import SteeringVector
from .convert import imported_vector
from .gguf import import_gguf


def _tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu", torch.float32)
    else:
        try:
            t = torch.from_numpy(np.asarray(value, dtype=np.float32).copy())
        except (TypeError, ValueError) as e:
            raise VectorFileError(f"{where}: expected a list of numbers, got {type(value).__name__}.") from e
    return t.reshape(-1) if t.ndim == 2 and 1 in t.shape else t


def _vector(directions: Mapping[Any, Any], meta: dict[str, Any], where: str) -> SteeringVector:
    out = {}
    for key, value in directions.items():
        try:
            layer = int(key)
        except (TypeError, ValueError) as e:
            raise VectorFileError(f"{where}: layer key {key!r} is not an integer.") from e
        if layer < 0:
            raise VectorFileError(
                f"{where}: layer {layer} is negative; convert it to 0..n_layers-1 for the model it was made on."
            )
        out[layer] = _tensor(value, f"{where}, layer {layer}")
    return imported_vector(out, meta, where)


def from_repeng(control_vector: Any) -> SteeringVector:
    """A repeng ``ControlVector`` (or the path of its ``export_gguf`` file) as a SteeringVector."""
    if isinstance(control_vector, (str, os.PathLike)):
        return import_gguf(control_vector, source="repeng")
    directions = getattr(control_vector, "directions", None)
    if not isinstance(directions, Mapping):
        raise VectorFileError(
            f"from_repeng needs a repeng ControlVector or a .gguf path, got {type(control_vector).__name__}."
        )
    meta = {"imported_from": "repeng", "model_type": getattr(control_vector, "model_type", None)}
    return _vector(directions, meta, "repeng ControlVector")


def from_steering_vectors(vector: Any) -> SteeringVector:
    """A steering-vectors ``SteeringVector`` (decoder-block layers only) as a SteeringVector."""
    acts = getattr(vector, "layer_activations", None)
    if not isinstance(acts, Mapping):
        raise VectorFileError(
            f"from_steering_vectors needs a steering_vectors.SteeringVector, got {type(vector).__name__}."
        )
    kind = getattr(vector, "layer_type", "decoder_block")
    if kind != "decoder_block":
        raise VectorFileError(
            f"This steering-vectors vector patches {kind!r} layers; only 'decoder_block' vectors live in the "
            "residual stream this library steers. Train it with layer_type='decoder_block'."
        )
    return _vector(acts, {"imported_from": "steering-vectors"}, "steering-vectors SteeringVector")


def load_svec(path: str | os.PathLike[str]) -> SteeringVector:
    """Read an IBM activation-steering / AISteer360 ``.svec`` file (JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VectorFileError(f"{path} is not a readable .svec JSON file ({e}).") from e
    data = load_json(text, f"{path} is not a readable .svec JSON file")
    if not isinstance(data, dict) or not isinstance(data.get("directions"), dict):
        raise VectorFileError(f"{path}: expected a JSON object with a 'directions' object ({{layer: [floats]}}).")
    meta = {
        "imported_from": "activation-steering",
        "source_file": path.name,
        "model_type": data.get("model_type"),
        "explained_variances": data.get("explained_variances"),
    }
    return _vector(data["directions"], meta, str(path))


def to_svec(vector: SteeringVector, path: str | os.PathLike[str]) -> Path:
    """Write ``vector`` as an activation-steering ``.svec`` file (their ``SteeringVector.load`` reads it)."""
    path = Path(path)
    if path.suffix != ".svec":
        raise VectorFileError(f"activation-steering adds '.svec' to any other name; got {path.name!r}.")
    data = {
        "model_type": vector.metadata.get("model_type") or vector.metadata.get("model") or "unknown",
        "directions": {str(layer): d.tolist() for layer, d in vector.directions.items()},
        "explained_variances": {str(layer): 1.0 for layer in vector.layers},
    }
    atomic_write_bytes(path, json.dumps(data, allow_nan=False).encode())
    return path
