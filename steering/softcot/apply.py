"""Applying soft thoughts: the assistant's states, projected into the backbone's input embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..backends import backend_for
from ..errors import InvalidArgumentError
from ..hooks import Hook, StopForward, attached, output_tensor
from .model import SoftThoughts, assistant_inputs, placeholder_positions


def assistant_states(
    assistant: nn.Module, input_ids: Tensor, attention_mask: Tensor, positions: Tensor
) -> Float[Tensor, "batch k d_assistant"]:
    """The assistant's last decoder layer output at ``positions`` (one pass, stopped there)."""
    backend = backend_for(assistant)
    last = backend.layers(assistant)[-1]
    got: list[Tensor] = []

    def read(module: Any, args: Any, output: Any) -> None:
        h = output_tensor(output)
        got.append(h.gather(1, positions.to(h.device)[..., None].expand(-1, -1, h.shape[-1])))
        raise StopForward

    with attached([Hook(last, read)]), torch.no_grad():
        try:
            device = backend.device(assistant)
            backend.run(assistant, input_ids.to(device), attention_mask.to(device))
        except StopForward:
            pass
    return got[0].float()


@contextmanager
def soft_thoughts(
    backbone: nn.Module,
    assistant: nn.Module,
    projection: SoftThoughts,
    *,
    placeholder_id: int,
) -> Iterator[None]:
    """Inside the block, every prompt pass of ``backbone`` gets soft thoughts at its placeholders.

    The assistant runs once per prompt pass and reads each row's prompt followed by ``k``
    placeholders (wherever the backbone's own placeholders are); decode steps are untouched.
    """
    if assistant is backbone:
        raise InvalidArgumentError("Pass a frozen copy of the backbone as the assistant (copy.deepcopy), not itself.")
    backend = backend_for(backbone)
    embed = backend.unwrap(backbone).get_input_embeddings()  # type: ignore[operator]
    pending: dict[str, Tensor] = {}
    previous: dict[str, Tensor] = {}  # the last prompt pass (reused when generating without a cache)

    def prepare(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pending.clear()
        bound = backend.bind_inputs(module, args, kwargs)
        ids = bound.get("input_ids")
        if not isinstance(ids, Tensor) or (backend.past_length(bound) or 0) > 0:
            return
        where = placeholder_positions(ids, placeholder_id, projection.k)
        if where is None:
            return
        prev = previous.get("ids")
        # Generation without a KV cache re-runs the prompt each step (never reused across training steps).
        if prev is not None and not torch.is_grad_enabled() and prev.shape[0] == ids.shape[0]:
            if prev.shape[1] < ids.shape[1] and torch.equal(ids[:, : prev.shape[1]], prev):
                previous["ids"] = ids
                pending.update(thoughts=previous["thoughts"], where=where)
                return
        mask = bound.get("attention_mask")
        mask = mask if isinstance(mask, Tensor) and mask.ndim == 2 else torch.ones_like(ids)
        a_ids, a_mask = assistant_inputs(ids, mask, placeholder_id, projection.k)
        last_k = torch.arange(a_ids.shape[1] - projection.k, a_ids.shape[1], device=a_ids.device)
        states = assistant_states(assistant, a_ids, a_mask, last_k.expand(a_ids.shape[0], -1))
        pending["thoughts"] = projection(states.to(projection.proj.weight.device))
        pending["where"] = where
        previous.update(ids=ids, thoughts=pending["thoughts"])

    def inject(module: Any, args: Any, output: Tensor) -> Tensor | None:
        if "thoughts" not in pending:
            return None
        where, thoughts = pending.pop("where"), pending.pop("thoughts")
        index = where.to(output.device)[..., None].expand(-1, -1, output.shape[-1])
        return output.scatter(1, index, thoughts.to(output.dtype))

    owner = backend.inputs_module(backbone)
    with attached([Hook(owner, prepare, kind="pre", with_kwargs=True), Hook(embed, inject)]):
        yield
