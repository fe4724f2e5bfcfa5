"""Batched generation for measurement: texts, token ids, lengths and wall time.

Prompts (text or chat messages) are encoded by :func:`steering.prompts.encode` and left-padded, so a
row generates the same tokens alone or in a batch; the length counts up to and including the first
end-of-sequence token (the tokenizer's and the model's generation config's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backends import backend_for
from ..backends.inputs import pad_id
from ..prompts import Prompt, batch


@dataclass(frozen=True)
class Generation:
    text: str  # the completion only, special tokens removed
    n_tokens: int  # generated tokens up to and including the end-of-sequence token
    ids: list[int] = field(default_factory=list, repr=False)  # those tokens
    finished: bool = True  # ended with an end-of-sequence token (not cut by max_new_tokens)


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the tokenizer's and the generation config's (often a list)."""
    ids: set[int] = set()
    for value in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 32,
    do_sample: bool = False,
    seed: int | None = None,
    progress: bool | None = False,
    **kwargs: Any,
) -> tuple[list[Generation], float]:
    """Complete every prompt (left-padded batches); returns the completions and the seconds spent.

    Runs inside whatever ``steer`` block is active. With ``do_sample``, ``seed`` makes it repeatable.
    ``kwargs`` go to ``generate`` (``temperature``, ``top_p``, ``logits_processor``, ...).
    """
    from tqdm.auto import tqdm

    backend = backend_for(model)
    runner = backend.unwrap(model)
    stops = stop_ids(runner, tokenizer)
    out: list[Generation] = []
    seconds = 0.0
    if seed is not None:
        torch.manual_seed(seed)
    device = backend.device(model)
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, disable=None if progress is None else not progress, desc="generate", leave=False):
        enc = batch(tokenizer, prompts[start : start + batch_size])
        t0 = time.perf_counter()
        with torch.no_grad():
            ids = runner.generate(  # type: ignore[operator]
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                pad_token_id=pad_id(tokenizer),
                **kwargs,
            )
        seconds += time.perf_counter() - t0
        for row in ids[:, enc["input_ids"].shape[1] :].tolist():
            end = next((i for i, t in enumerate(row) if t in stops), None)
            n = end + 1 if end is not None else len(row)
            out.append(Generation(tokenizer.decode(row[:n], skip_special_tokens=True), n, row[:n], end is not None))
    return out, seconds
