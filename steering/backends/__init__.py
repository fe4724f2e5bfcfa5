"""Backend adapters: one module per runtime, each with the same few functions.

See ``README.md`` in this folder for the contract. :func:`backend_for` picks the adapter from the
model's type; heavy runtimes are imported only when such a model is passed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import SteeringError

# (package the model's class, or a base class, comes from) -> adapter module in this folder
_BY_PACKAGE = {"transformer_lens": "lens", "nnsight": "nnsight"}


def backend_for(model: Any) -> ModuleType:
    """The adapter module for ``model``."""
    for cls in type(model).__mro__:
        adapter = _BY_PACKAGE.get(cls.__module__.partition(".")[0])
        if adapter is not None:
            return importlib.import_module(f"{__name__}.{adapter}")
    if isinstance(model, nn.Module):
        from . import hf

        return hf
    raise SteeringError(
        f"No backend for a {type(model).__module__}.{type(model).__name__}: pass a Hugging Face "
        "transformers model (an nn.Module with decoder layers), a TransformerLens TransformerBridge "
        "or an nnsight TransformersModel."
    )
