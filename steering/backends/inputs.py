"""Model inputs built the same way everywhere: padded batches, position ids, each row's last real token.

Absolute positions come from the attention mask, so a left-padded row reads and writes the same
positions as the same row alone.

Examples:
    >>> ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    >>> ids.tolist(), position_ids(mask).tolist()
    ([[5, 6, 7], [0, 0, 8]], [[0, 1, 2], [0, 0, 0]])
    >>> last_real(mask).tolist()
    [2, 2]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor


def position_ids(mask: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """Each real token's index among its row's real tokens (padding gets 0)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, side: str = "left"
) -> tuple[Int[Tensor, "batch seq"], Int[Tensor, "batch seq"]]:
    """``(input_ids, attention_mask)`` of token-id rows padded to one width (``side``: left or right)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if side == "left" else 0
        ids[i, start : start + len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, start : start + len(row)] = 1
    return ids, mask


def last_real(mask: Int[Tensor, "batch seq"]) -> Int[Tensor, " batch"]:
    """Each row's last real (unpadded) position; ``-1`` for a row with none."""
    pos = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask.bool(), pos, -1).max(dim=1).values


def pad_id(tokenizer: Any) -> int:
    """The id to pad with: the pad token, else end of sequence, else unknown, else 0.

    Padded positions are masked and never read, so a tokenizer without a pad token is fine.
    """
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


@contextmanager
def padding_side(tokenizer: Any, side: str) -> Iterator[Any]:
    """Set ``tokenizer.padding_side`` for the block and restore it afterwards."""
    before = getattr(tokenizer, "padding_side", None)
    tokenizer.padding_side = side
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = before
