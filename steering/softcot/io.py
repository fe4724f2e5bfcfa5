"""Soft-thoughts files: the projection as safetensors, pinned to both models by the shared header format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..atomic import atomic_write_bytes
from ..errors import VectorFileError
from ..fileformat import from_bytes, to_bytes
from ..provenance import provenance
from .model import SoftThoughts

FORMAT = "steering.softcot"
FORMAT_VERSION = 1


def save_soft_thoughts(
    projection: SoftThoughts, path: str | os.PathLike[str], *, backbone: nn.Module, assistant: nn.Module, **extra: Any
) -> Path:
    """Write the projection as safetensors; its metadata names (and fingerprints) both models."""
    meta = {"k": projection.k, "backbone": provenance(backbone), "assistant": provenance(assistant), **extra}
    data = to_bytes(dict(projection.state_dict()), FORMAT, FORMAT_VERSION, meta)
    return atomic_write_bytes(path, data)


def load_soft_thoughts(path: str | os.PathLike[str]) -> tuple[SoftThoughts, dict[str, Any]]:
    """The projection and its metadata (check ``metadata["backbone"]`` against your model)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VectorFileError(f"{path} could not be read ({e.strerror or e}).") from None
    tensors, meta = from_bytes(data, FORMAT, FORMAT_VERSION, str(path))
    if "proj.weight" not in tensors or not isinstance(meta.get("k"), int):
        raise VectorFileError(f"{path}: a soft-thoughts file needs proj.weight and an integer k in its metadata.")
    weight = tensors["proj.weight"]  # (d_backbone, d_assistant)
    projection = SoftThoughts(weight.shape[1], weight.shape[0], int(meta["k"]))
    projection.load_state_dict(tensors)
    return projection.eval(), meta
