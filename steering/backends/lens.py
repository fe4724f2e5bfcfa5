"""Adapter for TransformerLens 4 ``TransformerBridge`` models.

A bridge wraps a Hugging Face model in place: its decoder layers become ``BlockBridge`` modules
whose ``hook_out`` point *is* ``blocks.L.hook_resid_post``. Steering and reading hook those
``HookPoint`` modules (through :mod:`steering.hooks`, like every backend), so the values are the
ones TransformerLens users see in ``run_with_cache``; positions and the KV cache are read where
the wrapped model's decoder receives them, exactly as for a plain Hugging Face model.

Weights processed by ``enable_compatibility_mode()`` (folded and centred) put the residual stream
in another basis: :func:`basis` says so, and vectors do not cross bases silently.

:func:`prepare` (called by ``backend_for`` the first time a bridge is passed, not on import: importing
this module must not change TransformerLens for code that never steers) installs
:func:`install_cache_fix`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from ..errors import LayerNotFoundError
from . import hf
from .base import ModelInfo

NAME = "transformer_lens"
REMOTE = False


def _hf(model: Any) -> nn.Module:
    return model.original_model


def layers(model: Any, override: str | None = None) -> list[nn.Module]:
    """The ``blocks.L.hook_resid_post`` hook points, in order (``override`` is for HF models only)."""
    hook_dict = model.hook_dict
    n = model.cfg.n_layers
    names = [f"blocks.{i}.hook_resid_post" for i in range(n)]
    missing = [name for name in names if name not in hook_dict]
    if missing:
        raise LayerNotFoundError(
            f"This TransformerBridge has no {missing[0]} hook point ({type(model.adapter).__name__}); "
            "steering needs the residual stream after each block."
        )
    return [hook_dict[name] for name in names]


def inputs_module(model: Any, override: str | None = None) -> nn.Module:
    return hf.inputs_module(_hf(model))


def info(model: Any, override: str | None = None) -> ModelInfo:
    inner = hf.info(_hf(model))
    return ModelInfo(
        name=inner.name,
        revision=inner.revision,
        hidden_size=int(model.cfg.d_model),
        n_layers=int(model.cfg.n_layers),
        architecture=inner.architecture,  # the wrapped model's class: the artefact is the same
        model_type=inner.model_type,
        max_positions=inner.max_positions,
    )


def basis(model: Any) -> str:
    """``"hf"`` unless ``enable_compatibility_mode()`` processed (folded/centred) the weights."""
    return "transformer_lens-processed" if getattr(model, "_weights_processed", False) else "hf"


def fingerprint(model: Any) -> str | None:
    # The bridge renames parameters (``..._original_component...``); name them as HF does.
    return hf.fingerprint(_hf(model), name=lambda n: n.replace("_original_component.", ""))


def unwrap(model: Any) -> nn.Module:
    """The wrapped transformers model; the bridge replaced its modules in place, so hooks still fire."""
    return _hf(model)


def forward(model: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """:func:`steering.backends.hf.forward` on the wrapped model."""
    return hf.forward(_hf(model), *args, **kwargs)


def prepare(model: Any) -> None:
    """Install :func:`install_cache_fix` (once) before a bridge is used."""
    install_cache_fix()


def run(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """One forward through the bridge; it derives position ids from the mask as we do."""
    model(input_ids, attention_mask=attention_mask, return_type=None)


def device(model: Any) -> torch.device:
    return hf.device(_hf(model))


bind_inputs = hf.bind_inputs
past_length = hf.past_length


def install_cache_fix() -> None:
    """Make TransformerLens 4.3 attention find the KV cache transformers 5 passes as ``cache=``.

    Its ``AttentionBridge._update_kv_cache`` looks only for ``past_key_values``/``layer_past``;
    with transformers >= 5 the cache arrives as ``cache``, is never updated, and every cached
    decoding step attends to itself alone (generation silently diverges from Hugging Face's).
    The fix renames the argument for that one method and is a no-op when TransformerLens passes
    the cache under a name it knows. ``tests/test_backends_cross.py`` fails if TL and HF greedy
    decoding diverge again. Idempotent.
    """
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    original = AttentionBridge._update_kv_cache
    if getattr(original, "_steering_cache_fix", False):
        return

    @functools.wraps(original)
    def _update_kv_cache(self: Any, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> Any:
        if kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None:
            cache = kwargs.get("cache")
            if cache is not None:
                kwargs["past_key_values"] = cache
        return original(self, k, v, **kwargs)

    _update_kv_cache._steering_cache_fix = True  # type: ignore[attr-defined]
    AttentionBridge._update_kv_cache = _update_kv_cache  # type: ignore[method-assign]
