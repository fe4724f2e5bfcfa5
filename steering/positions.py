"""Which token positions extraction reads, per sequence, in that sequence's own (unpadded) coordinates.

A sequence is ``prompt + completion``; positions are resolved per row before padding, so left and
right padding read the same tokens. The activation read for a sequence is the mean over its
positions (one position for all but ``"mean"`` and :class:`~steering.Tokens`).

- ``"last"``: the last token of prompt + completion (the ASC recipe);
- ``"prompt_last"``: the last prompt token (identical for paired completions of the same prompt:
  such pairs give a zero vector there);
- ``"first"``: the first completion token, where a model commits to a style;
- ``"mean"``: the mean over the completion tokens;
- an ``int`` ``i``: completion token ``i`` (``0`` is ``"first"``, ``-1`` is ``"last"``);
- ``Tokens(...)``: the mean over the completion tokens where a marker occurs.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import PairError, UnknownOptionError
from .markers import Tokens, encode_markers, match_ends

Position = str | int | Tokens
NAMED = ("last", "prompt_last", "first", "mean")


def check_position(position: Any) -> None:
    """Fail early, before any forward pass, on a position this module cannot resolve."""
    if isinstance(position, Tokens) or (isinstance(position, int) and not isinstance(position, bool)):
        return
    if position not in NAMED:
        raise UnknownOptionError(
            f"Unknown position {position!r}; expected one of {list(NAMED)}, an int (index into the "
            "completion, negative from its end) or steering.Tokens(...)."
        )


def describe(position: Position) -> str:
    """A stable string for the vector's metadata."""
    return str(position) if not isinstance(position, str) else position


class PositionResolver:
    """Resolves a position for one ``(prompt_len, ids)`` sequence at a time."""

    def __init__(self, position: Position, tokenizer: Any) -> None:
        check_position(position)
        self.position = position
        self.patterns = (
            encode_markers(position.markers, tokenizer, "position=Tokens(...)")
            if isinstance(position, Tokens)
            else None
        )

    def __call__(self, prompt_len: int, ids: list[int], where: str) -> list[int]:
        n = len(ids)
        c = n - prompt_len  # completion length, >= 1 (checked by the caller)
        p = self.position
        if p == "last":
            return [n - 1]
        if p == "prompt_last":
            if prompt_len == 0:
                raise PairError(f"{where}: the prompt encodes to no tokens, so 'prompt_last' has nothing to read.")
            return [prompt_len - 1]
        if p == "first":
            return [prompt_len]
        if p == "mean":
            return list(range(prompt_len, n))
        if isinstance(p, int):
            if not -c <= p < c:
                raise PairError(
                    f"{where}: position={p} is outside its completion of {c} tokens; use an index in "
                    f"{-c}..{c - 1} or a named position such as 'last'."
                )
            return [prompt_len + p % c]
        hits = match_ends(torch.tensor([ids[prompt_len:]]), self.patterns or [])[0]
        found = (hits.nonzero().flatten() + prompt_len).tolist()
        if not found:
            raise PairError(
                f"{where}: none of the markers {getattr(p, 'markers', p)!r} occurs in the completion, so {p} has "
                "nothing to read. Pick markers every completion contains, or another position."
            )
        return found
