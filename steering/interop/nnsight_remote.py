"""Steered generation on nnsight models that run elsewhere (``remote=True``: NDIF).

Hooks cannot travel to a hosted model, so the vector's addition is written as torch operations
inside an nnsight generation trace, one step at a time. ``remote="local"`` serialises the trace and
runs it here exactly as a server would (what the tests use). Extraction on such a model is
:func:`steering.extract` with ``remote=`` (:func:`steering.backends.nnsight.read_remote`).

Scopes: ``"all"``, ``"prompt"``, ``"prompt_last"`` and ``"generated"``; operator: add. For the other
scopes and operators, run the model locally under :func:`steering.steer`.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from ..apply import check_compatible
from ..backends import backend_for
from ..backends.inputs import last_real
from ..errors import InvalidArgumentError, UnknownOptionError, UnsupportedModelError
from ..vector import SteeringVector

SCOPES = ("all", "prompt", "prompt_last", "generated")


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
    from ..backends import nnsight as adapter

    if backend_for(model) is not adapter:
        raise UnsupportedModelError(
            f"steering.interop.nnsight_remote.generate needs an nnsight model, got {type(model).__name__}; "
            "for a local model use `with steering.steer(...)` around its generate()."
        )
    if scope not in SCOPES:
        raise UnknownOptionError(f"Remote steering supports scope in {SCOPES}, got {scope!r}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InvalidArgumentError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}.")
    info = adapter.info(model, layer_path)
    check_compatible(vector, info, "hf", None, strict=False)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    envs = adapter.layer_envoys(model, layer_path)
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
