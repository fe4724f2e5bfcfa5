"""Build contrastive pairs the model writes itself (as ASC does).

- :func:`build_pairs`: given prompts and the completions you want (e.g. concise chains in math
  notation), the model's own greedy completions become the other side: the vector then points from
  what the model does to what you want.
- :func:`own_pairs`: both sides are the model's: its answer when told one thing ("use as few steps
  as possible") against its answer when told another (or nothing), both read on the *plain* prompt,
  so the vector carries the instruction's effect without the instruction.

The model's text is kept exactly as it wrote it: its first token is what ``position="first"``
reads, so nothing is added to or stripped from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import PairError
from .evaluate.generation import Generation, generate
from .pairs import Pair
from .prompts import Prompt, with_instruction

Engine = Callable[[list[Prompt], int], tuple[list[Generation], float]]  # (prompts, max_new_tokens) -> replies, seconds


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
    engine: Engine | None = None,
    **generate_kwargs: Any,
) -> list[Pair]:
    """Pairs ``(prompt, given, model's own completion)``, the model's side as ``generated_side``.

    ``keep_if(prompt, generated_text) -> bool`` drops pairs whose generation is unusable (e.g. one
    that already is concise). ``generate_kwargs`` go to ``model.generate`` (greedy by default);
    ``engine(prompts, max_new_tokens)`` generates instead of ``model`` (as in :func:`own_pairs`).
    """
    if generated_side not in ("positive", "negative"):
        raise PairError(f"generated_side must be 'positive' or 'negative', got {generated_side!r}.")
    if len(prompts) != len(given):
        raise PairError(f"{len(prompts)} prompts but {len(given)} given completions; they must pair up.")
    opts = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "progress": progress, **generate_kwargs}
    gens, _ = engine(list(prompts), max_new_tokens) if engine else generate(model, tokenizer, list(prompts), **opts)
    pairs = []
    for prompt, want, got in zip(prompts, given, gens):
        if not got.text.strip() or (keep_if is not None and not keep_if(prompt, got.text)):
            continue
        pos, neg = (want, got.text) if generated_side == "negative" else (got.text, want)
        pairs.append(Pair(prompt, pos, neg))
    if not pairs:
        raise PairError("No pair survived: every generation was empty or rejected by keep_if.")
    return pairs


def own_pairs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    positive_instruction: str,
    negative_instruction: str = "",
    max_new_tokens: int | tuple[int, int] = 256,
    batch_size: int = 16,
    keep_if: Callable[[int, str, str], bool] | None = None,
    progress: bool | None = None,
    engine: Engine | None = None,
    **generate_kwargs: Any,
) -> list[Pair]:
    """Pairs ``(prompt, answer with positive_instruction, answer with negative_instruction)``.

    Each instruction is appended to the prompt (to the last user message of a chat) for generation
    only; the pair's prompt is the plain one. ``max_new_tokens`` is one limit or ``(positive,
    negative)``. Pairs with an empty side or identical sides are dropped, and so are those for which
    ``keep_if(index, positive_text, negative_text)`` is false (e.g. keep only pairs whose two answers
    are both right: ``index`` finds the gold answer). ``generate_kwargs`` go to ``model.generate``.
    ``engine(prompts, max_new_tokens)`` generates instead of ``model`` (e.g. a ``LlamaServer``'s
    ``generate`` bound to the tokenizer): the texts are the same kind, read on ``model`` later.
    """
    if not isinstance(positive_instruction, str) or not positive_instruction.strip():
        raise PairError(
            f"positive_instruction must be non-empty text (e.g. ' Use as few steps as possible.'), "
            f"got {positive_instruction!r}."
        )
    pos_max, neg_max = max_new_tokens if isinstance(max_new_tokens, tuple) else (max_new_tokens, max_new_tokens)
    sides = []
    for instruction, limit in ((positive_instruction, pos_max), (negative_instruction, neg_max)):
        asked = [with_instruction(p, instruction) for p in prompts]
        if engine is not None:
            gens, _ = engine(asked, limit)
        else:
            gens, _ = generate(
                model,
                tokenizer,
                asked,
                max_new_tokens=limit,
                batch_size=batch_size,
                progress=progress,
                **generate_kwargs,
            )
        sides.append([g.text for g in gens])
    pairs = []
    for i, (prompt, pos, neg) in enumerate(zip(prompts, *sides)):
        if not pos.strip() or not neg.strip() or pos.strip() == neg.strip():
            continue
        if keep_if is not None and not keep_if(i, pos, neg):
            continue
        pairs.append(Pair(prompt, pos, neg))
    if not pairs:
        raise PairError(
            f"No pair survived out of {len(prompts)} prompts: every pair had an empty or identical side, or "
            "keep_if rejected it. Check the instructions change the answers, and raise max_new_tokens."
        )
    return pairs
