"""Build contrastive pairs where one side is written by the model itself (as ASC does).

Given prompts and the completions you want (e.g. concise chains in math notation), the model's
own greedy completions become the other side: the vector then points from what the model does to
what you want.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from .atomic import atomic_write_bytes
from .errors import PairError
from .generation import generate
from .pairs import Pair


def build_pairs(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    given: list[str],
    *,
    generated_side: str = "negative",
    max_new_tokens: int = 256,
    batch_size: int = 16,
    keep_if: Any = None,
    **generate_kwargs: Any,
) -> list[Pair]:
    """Pairs ``(prompt, given, model's own completion)``, the model's side as ``generated_side``.

    ``keep_if(prompt, generated_text) -> bool`` drops pairs whose generation is unusable (e.g. one
    that already is concise). ``generate_kwargs`` go to ``model.generate`` (greedy by default).
    """
    if generated_side not in ("positive", "negative"):
        raise PairError(f"generated_side must be 'positive' or 'negative', got {generated_side!r}.")
    if len(prompts) != len(given):
        raise PairError(f"{len(prompts)} prompts but {len(given)} given completions; they must pair up.")
    gens, _ = generate(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, **generate_kwargs
    )
    pairs = []
    for prompt, want, got in zip(prompts, given, gens):
        text = got.text if got.text.startswith(" ") or not want.startswith(" ") else " " + got.text
        if not text.strip() or (keep_if is not None and not keep_if(prompt, text)):
            continue
        pos, neg = (want, text) if generated_side == "negative" else (text, want)
        pairs.append(Pair(prompt, pos, neg))
    if not pairs:
        raise PairError("No pair survived: every generation was empty or rejected by keep_if.")
    return pairs


def save_pairs(pairs: Iterable[Pair], path: str | os.PathLike[str]) -> None:
    """Write pairs as JSONL (atomically)."""
    lines = [
        json.dumps({"prompt": p.prompt, "positive": p.positive, "negative": p.negative}, ensure_ascii=False)
        for p in pairs
    ]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
