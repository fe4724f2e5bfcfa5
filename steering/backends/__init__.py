"""Backend adapters: one module per runtime, each with the same few functions.

See ``README.md`` in this folder for the contract (:class:`~steering.backends.base.Backend`).
:func:`backend_for` picks the adapter from the model's type; heavy runtimes are imported only when
such a model is passed.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from torch import nn

from ..errors import SteeringError
from .base import Backend, ModelInfo

# (package the model's class, or a base class, comes from) -> adapter module in this folder
_BY_PACKAGE = {"transformer_lens": "lens", "nnsight": "nnsight"}

__all__ = ["Backend", "ModelInfo", "backend_for"]


def backend_for(model: Any) -> Backend:
    """The adapter module for ``model``, prepared for use (see each adapter's ``prepare``)."""
    backend: Backend | None = None
    for cls in type(model).__mro__:
        adapter = _BY_PACKAGE.get(cls.__module__.partition(".")[0])
        if adapter is not None:
            backend = cast(Backend, importlib.import_module(f"{__name__}.{adapter}"))
            break
    if backend is None and isinstance(model, nn.Module):
        from . import hf

        backend = cast(Backend, hf)
    if backend is None:
        raise SteeringError(
            f"No backend for a {type(model).__module__}.{type(model).__name__}: pass a Hugging Face "
            "transformers model (an nn.Module with decoder layers), a TransformerLens TransformerBridge "
            "or an nnsight TransformersModel."
        )
    backend.prepare(model)
    return backend
