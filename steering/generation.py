"""Batched generation for measurement: texts, chain lengths in tokens, and wall time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Generation:
    text: str  # the completion only, special tokens removed
    n_tokens: int  # generated tokens up to and including the end-of-sequence token


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 32,
    do_sample: bool = False,
    seed: int | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> tuple[list[Generation], float]:
    """Complete every prompt (left-padded batches); returns the completions and the seconds spent.

    Runs inside whatever ``steer`` block is active. With ``do_sample``, ``seed`` makes it repeatable.
    """
    from tqdm.auto import tqdm

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[Generation] = []
    seconds = 0.0
    try:
        if seed is not None:
            torch.manual_seed(seed)
        device = next(model.parameters()).device
        for start in tqdm(range(0, len(prompts), batch_size), disable=not progress, desc="generate", leave=False):
            enc = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                ids = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=pad, **kwargs
                )
            seconds += time.perf_counter() - t0
            for row in ids[:, enc["input_ids"].shape[1] :].tolist():
                n = row.index(eos) + 1 if eos in row else len(row)
                out.append(Generation(tokenizer.decode(row[:n], skip_special_tokens=True), n))
    finally:
        tokenizer.padding_side = side
    return out, seconds
