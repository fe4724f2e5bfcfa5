"""Backend adapters: one module per runtime, each with the same few functions.

See ``README.md`` in this folder for the contract (:class:`~steering.backends.base.Backend`).
:func:`backend_for` picks the adapter from the model's type; heavy runtimes are imported only when
such a model is passed.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from torch import nn

from ..errors import UnsupportedModelError
from .base import Backend, ModelInfo, RemoteBackend

# (package the model's class, or a base class, comes from) -> adapter module in this folder
_BY_PACKAGE = {"transformer_lens": "lens", "nnsight": "nnsight"}

__all__ = ["Backend", "ModelInfo", "RemoteBackend", "backend_for", "remote_backend"]


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
        raise UnsupportedModelError(
            f"No backend for a {type(model).__module__}.{type(model).__name__}: pass a Hugging Face "
            "transformers model (an nn.Module with decoder layers), a TransformerLens TransformerBridge "
            "or an nnsight TransformersModel."
        )
    backend.prepare(model)
    return backend


def remote_backend(model: Any) -> RemoteBackend:
    """The adapter for ``model`` if its models can run elsewhere (``REMOTE``), else a clear refusal."""
    backend = backend_for(model)
    if not backend.REMOTE:
        raise UnsupportedModelError(
            f"remote= needs a model that runs elsewhere (an nnsight model); got a {backend.NAME} one, "
            f"{type(model).__name__}. Drop remote= to run it locally."
        )
    return cast(RemoteBackend, backend)
