"""What every backend adapter reports about a model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    name: str  # hub id or local path, "" when unknown
    revision: str | None
    hidden_size: int
    n_layers: int
    architecture: str
    model_type: str | None = None  # config.model_type, e.g. "llama" (GGUF model hints)
