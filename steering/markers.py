"""Token markers: the token sequences that trigger token-matched positions and spans.

A marker is a string (encoded by the tokenizer alone, without special tokens), a token id, or
a tuple of token ids. A marker "occurs at" position ``t`` when its last token is at ``t``.
Strings are matched as the token ids the tokenizer gives them on their own: a BPE tokenizer may
encode ``"\\n"`` differently inside a word, so check with ``tokenizer.encode`` when in doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .errors import UnknownOptionError

Marker = str | int | tuple[int, ...]


def encode_markers(markers: tuple[Marker, ...], tokenizer: Any, what: str) -> list[tuple[int, ...]]:
    """Token-id sequences for ``markers``; strings need a tokenizer."""
    out: list[tuple[int, ...]] = []
    for m in markers:
        if isinstance(m, bool):
            raise UnknownOptionError(f"{what}: marker {m!r} is a bool; pass a str, a token id or a tuple of ids.")
        if isinstance(m, int):
            out.append((m,))
        elif isinstance(m, tuple) and m and all(isinstance(i, int) for i in m):
            out.append(tuple(m))
        elif isinstance(m, str) and m:
            if tokenizer is None:
                raise UnknownOptionError(
                    f"{what}: marker {m!r} is a string, so a tokenizer is needed to encode it; pass "
                    "tokenizer=... (or give token ids instead of strings)."
                )
            ids = tokenizer(m, add_special_tokens=False)["input_ids"]
            if not ids:
                raise UnknownOptionError(f"{what}: marker {m!r} encodes to no tokens.")
            out.append(tuple(int(i) for i in ids))
        else:
            raise UnknownOptionError(f"{what}: marker {m!r} is not a non-empty str, an int token id or a tuple of ids.")
    if not out:
        raise UnknownOptionError(f"{what} needs at least one marker.")
    return out


def match_ends(tokens: torch.Tensor, patterns: list[tuple[int, ...]]) -> torch.Tensor:
    """``(B, T)`` bool: True where one of ``patterns`` ends at that position of ``tokens`` ``(B, T)``."""
    hit = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    for pat in patterns:
        n = len(pat)
        if n > tokens.shape[1]:
            continue
        ok = torch.ones((tokens.shape[0], tokens.shape[1] - n + 1), dtype=torch.bool, device=tokens.device)
        for j, tok in enumerate(pat):
            ok &= tokens[:, j : tokens.shape[1] - n + 1 + j] == tok
        hit[:, n - 1 :] |= ok
    return hit


@dataclass(frozen=True, init=False)
class Tokens:
    """Every position where one of the given token markers occurs.

    As an extraction ``position``: the mean over the completion positions where a marker occurs
    (e.g. step ends). As a steering ``scope``: steer at exactly those positions.

    Examples:
        >>> Tokens("\\n", 13).markers
        ('\\n', 13)
    """

    markers: tuple[Marker, ...]

    def __init__(self, *markers: Marker) -> None:
        object.__setattr__(self, "markers", tuple(markers))
        if not markers:
            raise UnknownOptionError("Tokens() needs at least one marker, e.g. Tokens('\\n').")

    def __str__(self) -> str:
        return f"Tokens{self.markers!r}"
