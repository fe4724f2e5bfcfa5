"""Extraction and steered generation on nnsight models that run elsewhere (``remote=True``: NDIF).

Hooks cannot travel to a hosted model, so here reads and the vector's addition are written as torch
operations inside nnsight traces, one step at a time. ``remote="local"`` serialises the trace and runs
it here exactly as a server would (what the tests use). Extraction: :func:`steering.extract` with
``remote=``; generation: :func:`generate` (also ``steering.remote.generate``).

Scopes: ``"all"``, ``"prompt"``, ``"prompt_last"`` and ``"generated"``; operator: add. For the other
scopes and operators, run the model locally under :func:`steering.steer`.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from ..apply import check_compatible
from ..errors import InvalidArgumentError, SteeringError, UnknownOptionError
from ..vector import SteeringVector
from . import backend_for, hf
from . import nnsight as adapter
from .inputs import last_real, position_ids

SCOPES = ("all", "prompt", "prompt_last", "generated")


def layer_envoys(model: Any, override: str | None = None) -> list[Any]:
    """The decoder layers as nnsight envoys (works on an undispatched, meta-weight model)."""
    env = model
    for part in hf.layer_path(model._module, override).split("."):
        env = getattr(env, part)
    return [env[i] for i in range(len(env))]


def read_remote(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    layers: list[int],
    idx: Tensor,
    weights: Tensor,
    remote: bool | str,
    override: str | None = None,
) -> list[Tensor]:
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


def generate(
    model: Any,
    vector: SteeringVector,
    strength: float = 1.0,
    *,
    input_ids: Int[Tensor, "batch seq"],
    attention_mask: Int[Tensor, "batch seq"] | None = None,
    max_new_tokens: int = 32,
    scope: str = "all",
    remote: bool | str = True,
    layer_path: str | None = None,
    **generate_kwargs: Any,
) -> Int[Tensor, "batch total"]:
    """Greedy (or any ``generate_kwargs``) generation with ``strength * vector`` added; returns token ids.

    Gives the same tokens as ``with steering.steer(model, vector, strength, scope=scope)`` around
    a local ``generate`` (tested for every scope here, with left padding).
    """
    if backend_for(model) is not adapter:
        raise SteeringError(
            f"steering.remote.generate needs an nnsight model, got {type(model).__name__}; "
            "for a local model use `with steering.steer(...)` around its generate()."
        )
    if scope not in SCOPES:
        raise UnknownOptionError(f"Remote steering supports scope in {SCOPES}, got {scope!r}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InvalidArgumentError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}.")
    info = adapter.info(model, layer_path)
    check_compatible(vector, info, "hf", None, strict=False)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    envs = layer_envoys(model, layer_path)
    adds = {layer: float(strength) * vector.directions[layer] for layer in vector.layers}
    rows = torch.arange(input_ids.shape[0])
    last = last_real(mask)
    on_prompt = scope in ("all", "prompt", "prompt_last")
    on_generated = scope in ("all", "generated")
    with model.generate(
        input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, remote=remote, **generate_kwargs
    ) as tracer:
        for step in tracer.iter[0:max_new_tokens]:
            if (step == 0 and on_prompt) or (step > 0 and on_generated):
                for layer in sorted(adds):
                    h = envs[layer].output
                    v = adds[layer].to(device=h.device, dtype=h.dtype)
                    if step == 0 and scope == "prompt_last":
                        h[rows, last] = h[rows, last] + v
                    else:
                        envs[layer].output = h + v
        out = tracer.result.save()
    return out
