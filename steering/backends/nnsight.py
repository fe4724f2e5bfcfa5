"""Adapter for nnsight 0.8 ``TransformersModel`` (and other nnsight wrappers of HF models).

nnsight wraps a Hugging Face model (``model._module``) and runs it through its own tracing
context. Run locally, its forward and ``generate`` execute the real modules, so steering and
reading hook those modules (through :mod:`steering.hooks`) exactly as for the bare model; the
extraction pass itself goes through ``model.trace``. A model loaded lazily (meta weights) is
dispatched on first use.

Hosted models (``remote=True``, NDIF) never run our hooks: :func:`read_remote` writes the extraction
read as torch operations inside an nnsight trace (``REMOTE = True``: this adapter supports
``extract(..., remote=)``), and :mod:`steering.interop.nnsight_remote` steers generation the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import hf
from .base import ModelInfo
from .inputs import position_ids

NAME = "nnsight"
REMOTE = True  # read_remote works: extraction can run where the model lives


def _hf(model: Any, dispatch: bool = True) -> nn.Module:
    if dispatch and not getattr(model, "dispatched", True):
        model.dispatch()  # a lazily loaded model holds meta tensors until dispatched
    return model._module


def layers(model: Any, override: str | None = None) -> list[nn.Module]:
    return hf.layers(_hf(model), override)


def inputs_module(model: Any, override: str | None = None) -> nn.Module:
    return hf.inputs_module(_hf(model), override)


def info(model: Any, override: str | None = None) -> ModelInfo:
    return hf.info(_hf(model, dispatch=False), override)  # config and structure only: meta is fine


def basis(model: Any) -> str:
    return "hf"


def fingerprint(model: Any) -> str | None:
    return hf.fingerprint(_hf(model))


def run(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """One forward through ``model.trace`` (position ids from the mask, as for HF models)."""
    with model.trace(
        input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask), use_cache=False
    ):
        pass


def forward(model: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """:func:`steering.backends.hf.forward` on the wrapped model."""
    return hf.forward(_hf(model), *args, **kwargs)


def unwrap(model: Any) -> nn.Module:
    return _hf(model)


def prepare(model: Any) -> None:
    """Nothing to set up: a lazily loaded model is dispatched when its weights are first needed."""


def device(model: Any) -> torch.device:
    return hf.device(_hf(model))


def layer_envoys(model: Any, override: str | None = None) -> list[Any]:
    """The decoder layers as nnsight envoys (works on an undispatched, meta-weight model)."""
    env = model
    for part in hf.layer_path(model._module, override).split("."):
        env = getattr(env, part)
    return [env[i] for i in range(len(env))]


def read_remote(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: list[int],
    idx: torch.Tensor,
    weights: torch.Tensor,
    remote: bool | str,
    override: str | None = None,
) -> list[torch.Tensor]:
    """``(B, d)`` weighted means of the ``idx`` positions at each of ``layers``, as one nnsight trace.

    Only torch operations run inside the trace, so it executes where the model lives
    (``remote=True``: NDIF; ``"local"``: serialised and run here, as a server would).
    """
    envs = layer_envoys(model, override)
    saved = []
    with model.trace(
        input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
        remote=remote,
    ):
        for layer in sorted(layers):
            h = envs[layer].output
            picked = h.gather(1, idx.to(h.device)[..., None].expand(-1, -1, h.shape[-1]))
            saved.append((picked.float() * weights.to(h.device)[..., None]).sum(1).detach().cpu().save())
    order = sorted(layers)
    return [saved[order.index(layer)] for layer in layers]


bind_inputs = hf.bind_inputs
past_length = hf.past_length
