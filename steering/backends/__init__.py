"""Backend adapters: one module per runtime, each with the same few functions.

See ``README.md`` in this folder for the contract. :func:`backend_for` picks the adapter from the
model's type; heavy runtimes are imported only when such a model is passed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import nn

from ..errors import SteeringError


def backend_for(model: Any) -> ModuleType:
    """The adapter module for ``model``."""
    if isinstance(model, nn.Module):
        from . import hf

        return hf
    raise SteeringError(
        f"No backend for a {type(model).__module__}.{type(model).__name__}: pass a Hugging Face "
        "transformers model (an nn.Module with decoder layers)."
    )
