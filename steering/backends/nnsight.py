"""Adapter for nnsight 0.8 ``TransformersModel`` (and other nnsight wrappers of HF models).

nnsight wraps a Hugging Face model (``model._module``) and runs it through its own tracing
context. Run locally, its forward and ``generate`` execute the real modules, so steering and
reading hook those modules (through :mod:`steering.hooks`) exactly as for the bare model; the
extraction pass itself goes through ``model.trace``. A model loaded lazily (meta weights) is
dispatched on first use.

Hosted models (``remote=True``, NDIF) never run our hooks: :mod:`steering.backends.nnsight_remote`
expresses extraction and steering as nnsight interventions instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import hf
from .base import ModelInfo
from .inputs import position_ids

NAME = "nnsight"


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


def read_remote(*args: Any, **kwargs: Any) -> list[torch.Tensor]:
    from .nnsight_remote import read_remote as read

    return read(*args, **kwargs)


bind_inputs = hf.bind_inputs
past_length = hf.past_length
