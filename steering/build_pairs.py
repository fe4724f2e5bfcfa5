"""Build contrastive pairs where one side is written by the model itself (as ASC does).

Given prompts and the completions you want (e.g. concise chains in math notation), the model's
own greedy completions become the other side: the vector then points from what the model does to
what you want. The model's text is kept exactly as it wrote it: its first token is what
``position="first"`` reads, so nothing is added to or stripped from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import PairError
from .evaluate.generation import generate
from .pairs import Pair
from .prompts import Prompt


def build_pairs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    given: Sequence[str],
    *,
    generated_side: str = "negative",
    max_new_tokens: int = 256,
    batch_size: int = 16,
    keep_if: Callable[[Prompt, str], bool] | None = None,
    progress: bool | None = None,
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
        model,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        **generate_kwargs,
    )
    pairs = []
    for prompt, want, got in zip(prompts, given, gens):
        if not got.text.strip() or (keep_if is not None and not keep_if(prompt, got.text)):
            continue
        pos, neg = (want, got.text) if generated_side == "negative" else (got.text, want)
        pairs.append(Pair(prompt, pos, neg))
    if not pairs:
        raise PairError("No pair survived: every generation was empty or rejected by keep_if.")
    return pairs
