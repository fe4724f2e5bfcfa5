"""The trained part of soft thoughts, and the placeholder tokens that mark where they go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..backends.inputs import left_pad, padding_side
from ..errors import InvalidArgumentError, ShapeMismatchError
from ..prompts import Prompt, encode


class SoftThoughts(nn.Module):
    """The trained part: one linear map from assistant states to backbone input embeddings."""

    def __init__(self, d_assistant: int, d_backbone: int, k: int, scale: float = 1.0) -> None:
        super().__init__()
        if k < 1:
            raise InvalidArgumentError(f"k (the number of soft thoughts) must be >= 1, got {k}.")
        self.k = k
        self.proj = nn.Linear(d_assistant, d_backbone)
        nn.init.normal_(self.proj.weight, std=scale / d_assistant**0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: Float[Tensor, "batch k d_assistant"]) -> Float[Tensor, "batch k d_backbone"]:
        return self.proj(states)


def placeholder_row(tokenizer: Any, prompt: Prompt, k: int, pid: int, where: str = "before") -> list[int]:
    """The backbone's input ids for one prompt: ``k`` placeholders after its leading BOS, or at its end."""
    ids = encode(tokenizer, prompt)
    if where == "after":
        return [*ids, *([pid] * k)]
    if where != "before":
        raise InvalidArgumentError(f"where must be 'before' or 'after' the prompt, got {where!r}.")
    head = 1 if ids and ids[0] == getattr(tokenizer, "bos_token_id", None) else 0
    return [*ids[:head], *([pid] * k), *ids[head:]]


def with_placeholders(
    tokenizer: Any, prompts: Sequence[Prompt], k: int, placeholder_id: int | None = None, where: str = "before"
) -> Any:
    """Left-padded encodings of the prompts with ``k`` placeholders ``"before"`` or ``"after"`` each."""
    pid = placeholder_id_for(tokenizer, placeholder_id)
    rows = [placeholder_row(tokenizer, p, k, pid, where) for p in prompts]
    with padding_side(tokenizer, "left"):
        return tokenizer.pad({"input_ids": rows}, return_tensors="pt")


def placeholder_id_for(tokenizer: Any, placeholder_id: int | None) -> int:
    """The placeholder token id: the one given, else the tokenizer's unk token (never the pad token)."""
    pid = placeholder_id if placeholder_id is not None else getattr(tokenizer, "unk_token_id", None)
    if not isinstance(pid, int) or pid == getattr(tokenizer, "pad_token_id", None):
        raise InvalidArgumentError(
            f"Soft thoughts need a placeholder token id that is not the pad token (got {pid!r}); pass "
            "placeholder_id= a token the prompts never contain (the tokenizer's unk token is the default)."
        )
    return pid


def placeholder_positions(ids: Tensor, pid: int, k: int) -> Tensor | None:
    """``(B, k)`` placeholder positions per row; ``None`` if this input has none."""
    hits = ids == pid
    counts = hits.sum(1)
    if not bool(counts.any()):
        return None
    if not bool((counts == k).all()):
        raise ShapeMismatchError(
            f"Each row needs exactly {k} placeholder tokens (id {pid}); got {counts.tolist()}. Build inputs with "
            "with_placeholders(), and make sure prompts do not contain the placeholder token."
        )
    order = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    return torch.where(hits, order, ids.shape[1]).sort(dim=1).values[:, :k]


def assistant_inputs(ids: Tensor, mask: Tensor, pid: int, k: int) -> tuple[Tensor, Tensor]:
    """What the assistant reads: each row's real tokens without placeholders, then ``k`` placeholders."""
    rows = []
    for r in range(ids.shape[0]):
        real = [int(t) for t in ids[r][mask[r].bool()] if int(t) != pid]
        rows.append(real + [pid] * k)
    out, out_mask = left_pad(rows, pad_id=0)
    return out.to(ids.device), out_mask.to(ids.device)
